#pragma once
// Codecs for every backend (server → client) message. Parsed messages are views into the
// caller's buffer; parse_* take the body (after the 5-byte header).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/message_types.hpp"
#include "protocol/result.hpp"

namespace meridian::protocol::be {

// 'R': the code plus whatever follows it (salt, SASL mechanisms or data).
struct authentication {
  auth_code code = auth_code::ok;
  std::string_view payload;
  bool operator==(const authentication&) const = default;
};

struct backend_key_data {
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
  bool operator==(const backend_key_data&) const = default;
};

struct parameter_status {
  std::string_view name;
  std::string_view value;
  bool operator==(const parameter_status&) const = default;
};

struct ready_for_query {
  tx_status status = tx_status::idle;
  bool operator==(const ready_for_query&) const = default;
};

struct command_complete {
  std::string_view tag;
  bool operator==(const command_complete&) const = default;
};

struct field_description {
  std::string_view name;
  std::int32_t table_oid = 0;
  std::int16_t column = 0;
  std::int32_t type_oid = 0;
  std::int16_t type_size = 0;
  std::int32_t type_modifier = 0;
  std::int16_t format = 0;
  bool operator==(const field_description&) const = default;
};

struct row_description {
  std::vector<field_description> fields;
  bool operator==(const row_description&) const = default;
};

struct data_row {
  std::vector<std::optional<std::string_view>> columns;
  bool operator==(const data_row&) const = default;
};

// ErrorResponse and NoticeResponse: (code, value) fields.
struct error_fields {
  std::vector<std::pair<char, std::string_view>> fields;
  [[nodiscard]] std::string_view get(char code) const;
  bool operator==(const error_fields&) const = default;
};

struct parameter_description {
  std::vector<std::int32_t> types;
  bool operator==(const parameter_description&) const = default;
};

// CopyInResponse ('G'), CopyOutResponse ('H'), CopyBothResponse ('W').
struct copy_response {
  char type = backend_type::copy_in_response;
  std::int8_t format = 0;
  std::vector<std::int16_t> column_formats;
  bool operator==(const copy_response&) const = default;
};

struct notification {
  std::int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
  bool operator==(const notification&) const = default;
};

struct function_call_response {
  std::optional<std::string_view> value;
  bool operator==(const function_call_response&) const = default;
};

struct negotiate_protocol_version {
  std::int32_t newest_minor = 0;
  std::vector<std::string_view> unrecognized_options;
  bool operator==(const negotiate_protocol_version&) const = default;
};

[[nodiscard]] result<authentication> parse_authentication(std::string_view body);
[[nodiscard]] result<backend_key_data> parse_backend_key_data(std::string_view body);
[[nodiscard]] result<parameter_status> parse_parameter_status(std::string_view body);
[[nodiscard]] result<ready_for_query> parse_ready_for_query(std::string_view body);
[[nodiscard]] result<command_complete> parse_command_complete(std::string_view body);
[[nodiscard]] result<row_description> parse_row_description(std::string_view body);
[[nodiscard]] result<data_row> parse_data_row(std::string_view body);
[[nodiscard]] result<error_fields> parse_error_fields(std::string_view body);
[[nodiscard]] result<parameter_description> parse_parameter_description(std::string_view body);
[[nodiscard]] result<copy_response> parse_copy_response(char type, std::string_view body);
[[nodiscard]] result<notification> parse_notification(std::string_view body);
[[nodiscard]] result<function_call_response> parse_function_call_response(std::string_view body);
[[nodiscard]] result<negotiate_protocol_version> parse_negotiate_protocol_version(std::string_view body);
// The SASL mechanisms listed by AuthenticationSASL.
[[nodiscard]] result<std::vector<std::string_view>> sasl_mechanisms(const authentication& m);

void serialize(const authentication& m, std::string& out);
void serialize(const backend_key_data& m, std::string& out);
void serialize(const parameter_status& m, std::string& out);
void serialize(const ready_for_query& m, std::string& out);
void serialize(const command_complete& m, std::string& out);
void serialize(const row_description& m, std::string& out);
void serialize(const data_row& m, std::string& out);
void serialize(char type, const error_fields& m, std::string& out);  // 'E' or 'N'
void serialize(const parameter_description& m, std::string& out);
void serialize(const copy_response& m, std::string& out);
void serialize(const notification& m, std::string& out);
void serialize(const function_call_response& m, std::string& out);
void serialize(const negotiate_protocol_version& m, std::string& out);
// ParseComplete, BindComplete, CloseComplete, NoData, EmptyQueryResponse, PortalSuspended, CopyDone.
void serialize_empty(char type, std::string& out);
void serialize_auth_sasl(const std::vector<std::string_view>& mechanisms, std::string& out);

}  // namespace meridian::protocol::be
