// The admin console's query loop (session::serve_console): simple queries only, each a console
// command answered from the console_backend.
#include <spdlog/spdlog.h>

#include <cctype>

#include "protocol/backend.hpp"
#include "protocol/codec.hpp"
#include "protocol/error.hpp"
#include "protocol/frontend.hpp"
#include "proxy/console.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace meridian::proxy {

namespace pr = meridian::protocol;
namespace fe_t = pr::frontend_type;

namespace {

constexpr std::size_t max_console_message = 1u << 20;
constexpr std::string_view syntax_error = "42601";
constexpr std::string_view not_in_prerequisite_state = "55000";

void append_notice(std::string& out, std::string_view message) {
  std::string body;
  for (const auto& [code, value] :
       std::initializer_list<std::pair<char, std::string_view>>{{'S', "NOTICE"}, {'V', "NOTICE"}, {'C', "00000"}, {'M', message}}) {
    body += code;
    body.append(value);
    body += '\0';
  }
  body += '\0';
  out += 'N';
  const auto at = out.size();
  out.append(4, '\0');
  pr::put_i32(out.data() + at, static_cast<std::int32_t>(body.size() + 4));
  out += body;
}

void append_ready_idle(std::string& out) { pr::be::serialize(pr::be::ready_for_query{pr::tx_status::idle}, out); }

}  // namespace

awaitable<void> session::serve_console() {
  auto* console = worker_.console();
  bool skipping = false;  // after an extended-protocol message: until Sync
  for (;;) {
    for (;;) {
      const auto f = next_client_frame(max_console_message);
      if (f.state == client_frame::status::violation) {
        co_await fatal(pr::sqlstate::protocol_violation, violation_);
        co_return;
      }
      if (f.state == client_frame::status::need_more) break;
      const auto m = f.msg;
      std::string out;
      if (m.type == fe_t::terminate) co_return;
      if (m.type == fe_t::query) {
        auto q = pr::fe::parse_query(m.body);
        if (!q) {
          const std::string why = q.error().message;
          co_await fatal(pr::sqlstate::protocol_violation, why);
          co_return;
        }
        const std::string sql(q->sql);
        in_.consume(m.wire_size);
        if (sql.find_first_not_of(" \t\r\n;") == std::string::npos) {
          pr::be::serialize_empty(pr::backend_type::empty_query_response, out);
        } else if (auto cmd = parse_console_command(sql); !cmd) {
          pr::append_error(out, pr::severity::error, syntax_error, cmd.error());
        } else if (is_show(*cmd)) {
          spdlog::debug("[c{}] console: SHOW {}", id_, console_command_name(*cmd));
          const console_command c = *cmd;
          auto t = co_await console->show(c);
          append_table(out, t);
        } else {
          spdlog::info("[c{}] console: {} by {}", id_, console_command_name(*cmd), user_);
          const console_command c = *cmd;
          auto done = co_await console->act(c);
          if (done) {
            append_notice(out, *done);
            std::string tag(console_command_name(*cmd));
            for (auto& ch : tag) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            pr::be::serialize(pr::be::command_complete{tag}, out);
          } else {
            pr::append_error(out, pr::severity::error, not_in_prerequisite_state, done.error());
          }
        }
        append_ready_idle(out);
      } else if (m.type == fe_t::sync) {
        in_.consume(m.wire_size);
        skipping = false;
        append_ready_idle(out);
      } else if (m.type == fe_t::flush) {
        in_.consume(m.wire_size);
      } else {  // any other known type (next_client_frame refused the unknown ones)
        in_.consume(m.wire_size);
        if (!skipping)
          pr::append_error(out, pr::severity::error, pr::sqlstate::feature_not_supported,
                           "the admin console takes simple queries only");
        skipping = true;
      }
      if (!out.empty() && !co_await write_client(out)) co_return;
    }
    if (shutdown_requested_) {
      co_await fatal(pr::sqlstate::admin_shutdown, "terminating connection due to administrator command");
      co_return;
    }
    if (client_closed_ || !co_await read_client()) {
      if (shutdown_requested_) co_await fatal(pr::sqlstate::admin_shutdown, "terminating connection due to administrator command");
      co_return;
    }
  }
}

}  // namespace meridian::proxy
