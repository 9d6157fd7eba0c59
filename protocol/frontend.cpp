#include "protocol/frontend.hpp"

#include "protocol/codec.hpp"

namespace meridian::protocol::fe {

namespace {

bool read_target_kind(body_reader& in, target_kind& kind) {
  auto c = static_cast<char>(in.u8());
  if (c != 'S' && c != 'P') return false;
  kind = static_cast<target_kind>(c);
  return true;
}

// Formats, values and (optionally) result formats, as Bind and FunctionCall lay them out; into
// `p`, or only checked when `p` is null (Bind is checked on every call: no vectors built).
bool read_parameters(body_reader& in, bind_parameters* p, bool bind_layout) {
  auto nformats = in.i16();
  if (nformats < 0) return false;
  for (int i = 0; i < nformats && !in.failed(); ++i) {
    auto f = in.i16();
    if (f != 0 && f != 1) return false;
    if (p) p->formats.push_back(f);
  }
  auto nvalues = in.i16();
  if (nvalues < 0) return false;
  // Format count must be 0, 1 or equal to the number of parameters.
  if (nformats > 1 && nformats != nvalues) return false;
  for (int i = 0; i < nvalues && !in.failed(); ++i) {
    auto len = in.i32();
    if (len == -1) {
      if (p) p->values.emplace_back(std::nullopt);
    } else if (len < -1) {
      return false;
    } else {
      auto value = in.bytes(static_cast<std::size_t>(len));
      if (p) p->values.emplace_back(value);
    }
  }
  if (bind_layout) {
    auto nresult = in.i16();
    if (nresult < 0) return false;
    for (int i = 0; i < nresult && !in.failed(); ++i) {
      auto f = in.i16();
      if (f != 0 && f != 1) return false;
      if (p) p->result_formats.push_back(f);
    }
  } else {
    auto f = in.i16();
    if (f != 0 && f != 1) return false;
    if (p) p->result_formats.push_back(f);
  }
  return !in.failed();
}

void write_parameters(message_writer& w, const bind_parameters& p, bool bind_layout) {
  w.i16(static_cast<std::int16_t>(p.formats.size()));
  for (auto f : p.formats) w.i16(f);
  w.i16(static_cast<std::int16_t>(p.values.size()));
  for (const auto& v : p.values) {
    if (!v) {
      w.i32(-1);
    } else {
      w.i32(static_cast<std::int32_t>(v->size())).bytes(*v);
    }
  }
  if (bind_layout) {
    w.i16(static_cast<std::int16_t>(p.result_formats.size()));
    for (auto f : p.result_formats) w.i16(f);
  } else {
    w.i16(p.result_formats.empty() ? std::int16_t{0} : p.result_formats.front());
  }
}

}  // namespace

result<query> parse_query(std::string_view body) {
  // One string and its terminator, nothing after: checked directly (one per statement).
  const auto end = body.find('\0');
  if (end == std::string_view::npos || end + 1 != body.size()) return violation("invalid Query message format");
  return query{body.substr(0, end)};
}

result<parse> parse_parse(std::string_view body) {
  body_reader in(body);
  parse m;
  m.statement = in.cstring();
  m.sql = in.cstring();
  auto n = in.i16();
  if (n < 0) return violation("invalid Parse message format");
  if (static_cast<std::size_t>(n) * 4 != in.remaining()) return violation("invalid Parse message format");
  m.param_types.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) m.param_types.push_back(in.i32());
  return complete_or_violation(in, std::move(m), "Parse");
}

result<bind> parse_bind(std::string_view body) {
  body_reader in(body);
  bind m;
  m.portal = in.cstring();
  m.statement = in.cstring();
  m.tail = in.rest();
  if (in.failed()) return violation("invalid Bind message format");
  body_reader tail(m.tail);
  if (!read_parameters(tail, nullptr, true) || !tail.complete()) return violation("invalid Bind message format");
  return m;
}

result<bind_parameters> parse_bind_parameters(std::string_view tail) {
  body_reader in(tail);
  bind_parameters p;
  if (!read_parameters(in, &p, true)) return violation("invalid Bind message format");
  return complete_or_violation(in, std::move(p), "Bind");
}

result<describe> parse_describe(std::string_view body) {
  body_reader in(body);
  describe m;
  if (!read_target_kind(in, m.kind)) return violation("invalid DESCRIBE message subtype");
  m.name = in.cstring();
  return complete_or_violation(in, m, "Describe");
}

result<execute> parse_execute(std::string_view body) {
  body_reader in(body);
  execute m;
  m.portal = in.cstring();
  m.max_rows = in.i32();
  return complete_or_violation(in, m, "Execute");
}

result<close> parse_close(std::string_view body) {
  body_reader in(body);
  close m;
  if (!read_target_kind(in, m.kind)) return violation("invalid CLOSE message subtype");
  m.name = in.cstring();
  return complete_or_violation(in, m, "Close");
}

result<copy_data> parse_copy_data(std::string_view body) { return copy_data{body}; }

result<copy_fail> parse_copy_fail(std::string_view body) {
  body_reader in(body);
  copy_fail m{in.cstring()};
  return complete_or_violation(in, m, "CopyFail");
}

result<function_call> parse_function_call(std::string_view body) {
  body_reader in(body);
  function_call m;
  m.function_oid = in.i32();
  if (!read_parameters(in, &m.arguments, false)) return violation("invalid FunctionCall message format");
  return complete_or_violation(in, std::move(m), "FunctionCall");
}

result<password_message> parse_password_message(std::string_view body) {
  body_reader in(body);
  password_message m{in.cstring()};
  return complete_or_violation(in, m, "PasswordMessage");
}

result<sasl_initial_response> parse_sasl_initial_response(std::string_view body) {
  body_reader in(body);
  sasl_initial_response m;
  m.mechanism = in.cstring();
  auto len = in.i32();
  if (len < -1) return violation("invalid SASLInitialResponse message format");
  if (len >= 0) m.data = in.bytes(static_cast<std::size_t>(len));
  return complete_or_violation(in, m, "SASLInitialResponse");
}

result<sasl_response> parse_sasl_response(std::string_view body) { return sasl_response{body}; }

result<bool> parse_empty(std::string_view body, const char* what) {
  if (!body.empty()) return violation(std::string("invalid ") + what + " message format");
  return true;
}

result<bool> validate(char type, std::string_view body) {
  auto ok = [](const auto& r) -> result<bool> {
    if (!r) return tl::unexpected(r.error());
    return true;
  };
  switch (type) {
    case frontend_type::query: return ok(parse_query(body));
    case frontend_type::parse: return ok(parse_parse(body));
    case frontend_type::bind: return ok(parse_bind(body));
    case frontend_type::describe: return ok(parse_describe(body));
    case frontend_type::execute: return ok(parse_execute(body));
    case frontend_type::close: return ok(parse_close(body));
    case frontend_type::copy_data: return true;
    case frontend_type::copy_fail: return ok(parse_copy_fail(body));
    case frontend_type::function_call: return ok(parse_function_call(body));
    case frontend_type::sync: return parse_empty(body, "Sync");
    case frontend_type::flush: return parse_empty(body, "Flush");
    case frontend_type::terminate: return parse_empty(body, "Terminate");
    case frontend_type::copy_done: return parse_empty(body, "CopyDone");
    default: return violation(std::string("invalid frontend message type ") + std::to_string(static_cast<int>(static_cast<unsigned char>(type))));
  }
}

void serialize(const query& m, std::string& out) { message_writer(out, frontend_type::query).cstring(m.sql); }

void serialize(const parse& m, std::string& out) {
  message_writer w(out, frontend_type::parse);
  w.cstring(m.statement).cstring(m.sql).i16(static_cast<std::int16_t>(m.param_types.size()));
  for (auto t : m.param_types) w.i32(t);
}

void serialize(const bind& m, std::string& out) {
  message_writer(out, frontend_type::bind).cstring(m.portal).cstring(m.statement).bytes(m.tail);
}

void serialize_bind_parameters(const bind_parameters& p, std::string& out) {
  // Written without a header: the caller appends it as a bind's tail.
  std::string tmp;
  {
    message_writer w(tmp, 0);
    write_parameters(w, p, true);
  }
  out.append(tmp, 4);
}

void serialize(const describe& m, std::string& out) {
  message_writer(out, frontend_type::describe).u8(static_cast<std::uint8_t>(m.kind)).cstring(m.name);
}

void serialize(const execute& m, std::string& out) {
  message_writer(out, frontend_type::execute).cstring(m.portal).i32(m.max_rows);
}

void serialize(const close& m, std::string& out) {
  message_writer(out, frontend_type::close).u8(static_cast<std::uint8_t>(m.kind)).cstring(m.name);
}

void serialize(const copy_data& m, std::string& out) { message_writer(out, frontend_type::copy_data).bytes(m.data); }

void serialize(const copy_fail& m, std::string& out) { message_writer(out, frontend_type::copy_fail).cstring(m.message); }

void serialize(const function_call& m, std::string& out) {
  message_writer w(out, frontend_type::function_call);
  w.i32(m.function_oid);
  write_parameters(w, m.arguments, false);
}

void serialize(const password_message& m, std::string& out) {
  message_writer(out, frontend_type::password).cstring(m.password);
}

void serialize(const sasl_initial_response& m, std::string& out) {
  message_writer w(out, frontend_type::password);
  w.cstring(m.mechanism);
  if (m.data) {
    w.i32(static_cast<std::int32_t>(m.data->size())).bytes(*m.data);
  } else {
    w.i32(-1);
  }
}

void serialize(const sasl_response& m, std::string& out) { message_writer(out, frontend_type::password).bytes(m.data); }

void serialize_empty(char type, std::string& out) { message_writer(out, type); }

}  // namespace meridian::protocol::fe
