#include "protocol/backend.hpp"

#include "protocol/codec.hpp"

namespace meridian::protocol::be {


std::string_view error_fields::get(char code) const {
  for (const auto& [c, v] : fields)
    if (c == code) return v;
  return {};
}

result<authentication> parse_authentication(std::string_view body) {
  body_reader in(body);
  authentication m;
  m.code = static_cast<auth_code>(in.i32());
  m.payload = in.rest();
  if (in.failed()) return violation("invalid Authentication message format");
  if (m.code == auth_code::md5_password && m.payload.size() != 4) return violation("invalid AuthenticationMD5Password salt");
  return m;
}

result<backend_key_data> parse_backend_key_data(std::string_view body) {
  body_reader in(body);
  backend_key_data m;
  m.process_id = in.i32();
  m.secret_key = in.i32();
  return complete_or_violation(in, m, "BackendKeyData");
}

result<parameter_status> parse_parameter_status(std::string_view body) {
  body_reader in(body);
  parameter_status m;
  m.name = in.cstring();
  m.value = in.cstring();
  return complete_or_violation(in, m, "ParameterStatus");
}

result<ready_for_query> parse_ready_for_query(std::string_view body) {
  // One per statement relayed: read directly rather than through a body_reader.
  const char c = body.empty() ? '\0' : body[0];
  if (c != 'I' && c != 'T' && c != 'E') return violation("invalid ReadyForQuery status");
  if (body.size() != 1) return violation("invalid ReadyForQuery message format");
  return ready_for_query{static_cast<tx_status>(c)};
}

result<command_complete> parse_command_complete(std::string_view body) {
  body_reader in(body);
  command_complete m{in.cstring()};
  return complete_or_violation(in, m, "CommandComplete");
}

result<row_description> parse_row_description(std::string_view body) {
  body_reader in(body);
  row_description m;
  auto n = in.i16();
  if (n < 0) return violation("invalid RowDescription message format");
  m.fields.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n && !in.failed(); ++i) {
    field_description f;
    f.name = in.cstring();
    f.table_oid = in.i32();
    f.column = in.i16();
    f.type_oid = in.i32();
    f.type_size = in.i16();
    f.type_modifier = in.i32();
    f.format = in.i16();
    m.fields.push_back(f);
  }
  return complete_or_violation(in, std::move(m), "RowDescription");
}

result<data_row> parse_data_row(std::string_view body) {
  body_reader in(body);
  data_row m;
  auto n = in.i16();
  if (n < 0) return violation("invalid DataRow message format");
  m.columns.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n && !in.failed(); ++i) {
    auto len = in.i32();
    if (len == -1) {
      m.columns.emplace_back(std::nullopt);
    } else if (len < -1) {
      return violation("invalid DataRow column length");
    } else {
      m.columns.emplace_back(in.bytes(static_cast<std::size_t>(len)));
    }
  }
  return complete_or_violation(in, std::move(m), "DataRow");
}

result<error_fields> parse_error_fields(std::string_view body) {
  body_reader in(body);
  error_fields m;
  for (;;) {
    auto code = static_cast<char>(in.u8());
    if (in.failed()) break;
    if (code == 0) return complete_or_violation(in, std::move(m), "ErrorResponse");
    auto value = in.cstring();
    m.fields.emplace_back(code, value);
  }
  return violation("invalid ErrorResponse message format");
}

result<parameter_description> parse_parameter_description(std::string_view body) {
  body_reader in(body);
  parameter_description m;
  auto n = in.i16();
  if (n < 0) return violation("invalid ParameterDescription message format");
  for (int i = 0; i < n && !in.failed(); ++i) m.types.push_back(in.i32());
  return complete_or_violation(in, std::move(m), "ParameterDescription");
}

result<copy_response> parse_copy_response(char type, std::string_view body) {
  body_reader in(body);
  copy_response m;
  m.type = type;
  m.format = static_cast<std::int8_t>(in.u8());
  auto n = in.i16();
  if (n < 0) return violation("invalid CopyResponse message format");
  for (int i = 0; i < n && !in.failed(); ++i) m.column_formats.push_back(in.i16());
  return complete_or_violation(in, std::move(m), "CopyResponse");
}

result<notification> parse_notification(std::string_view body) {
  body_reader in(body);
  notification m;
  m.process_id = in.i32();
  m.channel = in.cstring();
  m.payload = in.cstring();
  return complete_or_violation(in, m, "NotificationResponse");
}

result<function_call_response> parse_function_call_response(std::string_view body) {
  body_reader in(body);
  function_call_response m;
  auto len = in.i32();
  if (len < -1) return violation("invalid FunctionCallResponse message format");
  if (len >= 0) m.value = in.bytes(static_cast<std::size_t>(len));
  return complete_or_violation(in, m, "FunctionCallResponse");
}

result<negotiate_protocol_version> parse_negotiate_protocol_version(std::string_view body) {
  body_reader in(body);
  negotiate_protocol_version m;
  m.newest_minor = in.i32();
  auto n = in.i32();
  if (n < 0) return violation("invalid NegotiateProtocolVersion message format");
  for (int i = 0; i < n && !in.failed(); ++i) m.unrecognized_options.push_back(in.cstring());
  return complete_or_violation(in, std::move(m), "NegotiateProtocolVersion");
}

result<std::vector<std::string_view>> sasl_mechanisms(const authentication& m) {
  if (m.code != auth_code::sasl) return violation("not an AuthenticationSASL message");
  body_reader in(m.payload);
  std::vector<std::string_view> out;
  for (;;) {
    auto name = in.cstring();
    if (in.failed()) return violation("invalid AuthenticationSASL mechanism list");
    if (name.empty()) break;
    out.push_back(name);
  }
  if (!in.complete()) return violation("invalid AuthenticationSASL mechanism list");
  return out;
}

void serialize(const authentication& m, std::string& out) {
  message_writer(out, backend_type::authentication).i32(static_cast<std::int32_t>(m.code)).bytes(m.payload);
}

void serialize_auth_sasl(const std::vector<std::string_view>& mechanisms, std::string& out) {
  message_writer w(out, backend_type::authentication);
  w.i32(static_cast<std::int32_t>(auth_code::sasl));
  for (auto mech : mechanisms) w.cstring(mech);
  w.u8(0);
}

void serialize(const backend_key_data& m, std::string& out) {
  message_writer(out, backend_type::backend_key_data).i32(m.process_id).i32(m.secret_key);
}

void serialize(const parameter_status& m, std::string& out) {
  message_writer(out, backend_type::parameter_status).cstring(m.name).cstring(m.value);
}

void serialize(const ready_for_query& m, std::string& out) {
  message_writer(out, backend_type::ready_for_query).u8(static_cast<std::uint8_t>(m.status));
}

void serialize(const command_complete& m, std::string& out) {
  message_writer(out, backend_type::command_complete).cstring(m.tag);
}

void serialize(const row_description& m, std::string& out) {
  message_writer w(out, backend_type::row_description);
  w.i16(static_cast<std::int16_t>(m.fields.size()));
  for (const auto& f : m.fields)
    w.cstring(f.name).i32(f.table_oid).i16(f.column).i32(f.type_oid).i16(f.type_size).i32(f.type_modifier).i16(f.format);
}

void serialize(const data_row& m, std::string& out) {
  message_writer w(out, backend_type::data_row);
  w.i16(static_cast<std::int16_t>(m.columns.size()));
  for (const auto& c : m.columns) {
    if (c) {
      w.i32(static_cast<std::int32_t>(c->size())).bytes(*c);
    } else {
      w.i32(-1);
    }
  }
}

void serialize(char type, const error_fields& m, std::string& out) {
  message_writer w(out, type);
  for (const auto& [code, value] : m.fields) w.u8(static_cast<std::uint8_t>(code)).cstring(value);
  w.u8(0);
}

void serialize(const parameter_description& m, std::string& out) {
  message_writer w(out, backend_type::parameter_description);
  w.i16(static_cast<std::int16_t>(m.types.size()));
  for (auto t : m.types) w.i32(t);
}

void serialize(const copy_response& m, std::string& out) {
  message_writer w(out, m.type);
  w.u8(static_cast<std::uint8_t>(m.format)).i16(static_cast<std::int16_t>(m.column_formats.size()));
  for (auto f : m.column_formats) w.i16(f);
}

void serialize(const notification& m, std::string& out) {
  message_writer(out, backend_type::notification_response).i32(m.process_id).cstring(m.channel).cstring(m.payload);
}

void serialize(const function_call_response& m, std::string& out) {
  message_writer w(out, backend_type::function_call_response);
  if (m.value) {
    w.i32(static_cast<std::int32_t>(m.value->size())).bytes(*m.value);
  } else {
    w.i32(-1);
  }
}

void serialize(const negotiate_protocol_version& m, std::string& out) {
  message_writer w(out, backend_type::negotiate_protocol_version);
  w.i32(m.newest_minor).i32(static_cast<std::int32_t>(m.unrecognized_options.size()));
  for (auto o : m.unrecognized_options) w.cstring(o);
}

void serialize_empty(char type, std::string& out) { message_writer(out, type); }

}  // namespace meridian::protocol::be
