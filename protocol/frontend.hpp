#pragma once
// Codecs for every typed frontend (client → server) message. Parsed messages are views into the
// caller's buffer; parse_* take the body (after the 5-byte header) and reject anything malformed.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/message_types.hpp"
#include "protocol/result.hpp"

namespace meridian::protocol::fe {

struct query {
  std::string_view sql;
  bool operator==(const query&) const = default;
};

struct parse {
  std::string_view statement;
  std::string_view sql;
  std::vector<std::int32_t> param_types;
  bool operator==(const parse&) const = default;
};

// Bind keeps its parameter section as a validated raw view: forwarding and renaming the statement
// never needs the values, so they are not copied apart. bind_parameters() walks them when needed.
struct bind {
  std::string_view portal;
  std::string_view statement;
  std::string_view tail;  // format codes, parameters, result format codes
  bool operator==(const bind&) const = default;
};

struct bind_parameters {
  std::vector<std::int16_t> formats;
  std::vector<std::optional<std::string_view>> values;
  std::vector<std::int16_t> result_formats;
  bool operator==(const bind_parameters&) const = default;
};

enum class target_kind : char { statement = 'S', portal = 'P' };

struct describe {
  target_kind kind = target_kind::statement;
  std::string_view name;
  bool operator==(const describe&) const = default;
};

struct execute {
  std::string_view portal;
  std::int32_t max_rows = 0;
  bool operator==(const execute&) const = default;
};

struct close {
  target_kind kind = target_kind::statement;
  std::string_view name;
  bool operator==(const close&) const = default;
};

struct copy_data {
  std::string_view data;
  bool operator==(const copy_data&) const = default;
};

struct copy_fail {
  std::string_view message;
  bool operator==(const copy_fail&) const = default;
};

struct function_call {
  std::int32_t function_oid = 0;
  bind_parameters arguments;  // formats, values; result_formats holds the single result format
  bool operator==(const function_call&) const = default;
};

struct password_message {
  std::string_view password;
  bool operator==(const password_message&) const = default;
};

struct sasl_initial_response {
  std::string_view mechanism;
  std::optional<std::string_view> data;
  bool operator==(const sasl_initial_response&) const = default;
};

struct sasl_response {
  std::string_view data;
  bool operator==(const sasl_response&) const = default;
};

[[nodiscard]] result<query> parse_query(std::string_view body);
[[nodiscard]] result<parse> parse_parse(std::string_view body);
[[nodiscard]] result<bind> parse_bind(std::string_view body);
[[nodiscard]] result<bind_parameters> parse_bind_parameters(std::string_view tail);
[[nodiscard]] result<describe> parse_describe(std::string_view body);
[[nodiscard]] result<execute> parse_execute(std::string_view body);
[[nodiscard]] result<close> parse_close(std::string_view body);
[[nodiscard]] result<copy_data> parse_copy_data(std::string_view body);
[[nodiscard]] result<copy_fail> parse_copy_fail(std::string_view body);
[[nodiscard]] result<function_call> parse_function_call(std::string_view body);
[[nodiscard]] result<password_message> parse_password_message(std::string_view body);
[[nodiscard]] result<sasl_initial_response> parse_sasl_initial_response(std::string_view body);
[[nodiscard]] result<sasl_response> parse_sasl_response(std::string_view body);
// Sync, Flush, Terminate and CopyDone have empty bodies.
[[nodiscard]] result<bool> parse_empty(std::string_view body, const char* what);

// Structural check of any frontend message of the query phase, without keeping the result.
[[nodiscard]] result<bool> validate(char type, std::string_view body);

void serialize(const query& m, std::string& out);
void serialize(const parse& m, std::string& out);
void serialize(const bind& m, std::string& out);
void serialize(const describe& m, std::string& out);
void serialize(const execute& m, std::string& out);
void serialize(const close& m, std::string& out);
void serialize(const copy_data& m, std::string& out);
void serialize(const copy_fail& m, std::string& out);
void serialize(const function_call& m, std::string& out);
void serialize(const password_message& m, std::string& out);
void serialize(const sasl_initial_response& m, std::string& out);
void serialize(const sasl_response& m, std::string& out);
void serialize_bind_parameters(const bind_parameters& p, std::string& out);
void serialize_empty(char type, std::string& out);

}  // namespace meridian::protocol::fe
