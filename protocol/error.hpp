#pragma once
// Errors Meridian itself reports to clients, as ErrorResponse messages with a SQLSTATE.
#include <string>
#include <string_view>

namespace meridian::protocol {

namespace sqlstate {
inline constexpr std::string_view protocol_violation = "08P01";
inline constexpr std::string_view connection_failure = "08006";
inline constexpr std::string_view connection_exception = "08000";
inline constexpr std::string_view invalid_authorization = "28000";
inline constexpr std::string_view invalid_password = "28P01";
inline constexpr std::string_view too_many_connections = "53300";
inline constexpr std::string_view idle_in_transaction_timeout = "25P03";
inline constexpr std::string_view feature_not_supported = "0A000";
inline constexpr std::string_view admin_shutdown = "57P01";
inline constexpr std::string_view cannot_connect_now = "57P03";
inline constexpr std::string_view invalid_catalog_name = "3D000";
inline constexpr std::string_view query_canceled = "57014";
inline constexpr std::string_view internal_error = "XX000";
inline constexpr std::string_view invalid_parameter_value = "22023";
inline constexpr std::string_view undefined_object = "42704";
inline constexpr std::string_view transaction_resolution_unknown = "08007";
inline constexpr std::string_view in_failed_sql_transaction = "25P02";
}  // namespace sqlstate

enum class severity { error, fatal };

// Appends an ErrorResponse with severity (S and V), SQLSTATE (C) and message (M).
void append_error(std::string& out, severity sev, std::string_view code, std::string_view message);

}  // namespace meridian::protocol
