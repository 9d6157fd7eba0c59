// meridianctl: the operator's command line, talking to any Meridian's admin API.
//
//   meridianctl [--url http://HOST:PORT] [--token-file FILE] COMMAND
//     status [--json]     topology, epoch, leader, and every region's view of every node
//     promote NODE        promote a replica now (the primary must be lost to a majority)
//     switchover NODE     planned switchover to a caught-up replica
//     rejoin NODE         bring a fenced old primary back as a replica (failover.rejoin_command)
//     pause | resume      hold or release new transactions in every region
// The URL and token may also come from MERIDIAN_ADMIN_URL and MERIDIAN_ADMIN_TOKEN.
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "proxy/asio.hpp"

namespace {

// A promotion or rejoin by command hook (RDS) can take many minutes.
constexpr std::chrono::seconds operation_timeout{20 * 60};

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = meridian::proxy::asio;
using json = nlohmann::json;

struct reply {
  int status = 0;
  std::string body;
};

meridian::proxy::awaitable<reply> exchange(beast::tcp_stream& stream, asio::ip::tcp::resolver::results_type endpoints,
                                           http::request<http::string_body> req) {
  co_await stream.async_connect(endpoints, meridian::proxy::use_awaitable);
  co_await http::async_write(stream, req, meridian::proxy::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, meridian::proxy::use_awaitable);
  co_return reply{static_cast<int>(res.result_int()), res.body()};
}

// One request, bounded by `timeout` from connecting to the last byte of the answer.
reply call(const std::string& url, const std::string& token, http::verb verb, const std::string& path,
           const std::string& body, std::chrono::seconds timeout) {
  // http://host:port
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) throw std::runtime_error("the URL must start with http://");
  auto hostport = url.substr(prefix.size());
  while (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("the URL needs a port");
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1));
  beast::tcp_stream stream(io);
  stream.expires_after(timeout);
  http::request<http::string_body> req{verb, path, 11};
  req.set(http::field::host, hostport);
  req.set(http::field::authorization, "Bearer " + token);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  std::exception_ptr failure;
  reply out;
  asio::co_spawn(io, exchange(stream, std::move(endpoints), std::move(req)), [&](std::exception_ptr e, reply r) {
    failure = e;
    out = std::move(r);
  });
  io.run();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const boost::system::system_error& e) {
      if (e.code() == beast::error::timeout)
        throw std::runtime_error(url + " gave no answer within " + std::to_string(timeout.count()) + " s");
      throw;
    }
  }
  return out;
}

std::string read_token(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

std::string one_decimal(double x) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << x;
  return out.str();
}

// The last failover, switchover or operator action as the leader recorded it.
void print_last_failover(const json& f) {
  auto text = [&](const char* key) { return f.contains(key) && f[key].is_string() ? f[key].get<std::string>() : std::string(); };
  auto ms = [&](const char* key) { return f.contains(key) && f[key].is_number() ? std::to_string(f[key].get<long long>()) + " ms" : std::string("-"); };
  std::cout << "\nlast failover: " << text("state");
  if (f.contains("epoch")) std::cout << ", epoch " << f["epoch"].dump();
  if (!text("from").empty()) std::cout << ", " << text("kind") << " " << text("from") << " -> " << text("to");
  if (f.contains("timeline")) std::cout << " (timeline " << f["timeline"].dump() << ")";
  if (!text("leader").empty()) std::cout << ", by " << text("leader");
  if (!text("begun_by").empty()) std::cout << " (begun by " << text("begun_by") << ")";
  std::cout << "\n";
  if (!text("reason").empty()) std::cout << "  why: " << text("reason") << "\n";
  if (!text("choice").empty()) std::cout << "  choice: " << text("choice") << "\n";
  if (f.contains("candidates") && f["candidates"].is_array() && !f["candidates"].empty()) {
    std::cout << "  candidates:";
    const char* separator = " ";
    for (const auto& c : f["candidates"]) {
      std::cout << separator << c.value("node", "?") << " (rank " << c.value("rank", 0) << ", "
                << (c.contains("distance_ms") ? one_decimal(c.value("distance_ms", 0.0)) + " ms from the primary"
                                              : std::string("distance unknown"))
                << ", received " << c.value("received", "?")
                << ", " << c.value("behind_bytes", 0) << " bytes behind the primary, lag "
                << (c.contains("lag_ms") ? std::to_string(c.value("lag_ms", 0)) + " ms" : std::string("unknown")) << ")";
      separator = ", ";
    }
    std::cout << "\n";
  }
  if (f.contains("window_bytes"))
    std::cout << "  async window at promotion: " << f["window_bytes"].dump() << " bytes"
              << (f.contains("window_ms") ? ", " + f["window_ms"].dump() + " ms" : std::string())
              << (f.contains("blind_ms") ? "; unseen by any replica for up to " + f["blind_ms"].dump() +
                                               " ms after the majority lost sight of it"
                                         : std::string())
              << "\n";
  if (f.contains("promote_ms")) {
    std::cout << "  timeline: detection " << ms("detection_ms") << ", promoted +" << ms("promote_ms") << ", published +"
              << ms("publish_ms");
    if (f.contains("ending_to_promote_ms"))
      std::cout << " (" << ms("ending_to_promote_ms") << " after the old epoch's ending)";
    if (f.contains("repoint_ms")) std::cout << ", other replicas streaming +" << ms("repoint_ms");
    if (f.contains("repoint_after_takeover_ms")) std::cout << ", other replicas streaming " << ms("repoint_after_takeover_ms") << " after the takeover";
    std::cout << "\n";
  }
  if (f.contains("repoint_errors") && f["repoint_errors"].is_array() && !f["repoint_errors"].empty())
    for (const auto& e : f["repoint_errors"]) std::cout << "  repoint error: " << (e.is_string() ? e.get<std::string>() : e.dump()) << "\n";
}

void print_status(const json& s) {
  const auto& t = s.value("topology", json::object());
  std::cout << "region " << s.value("region", "?") << " (" << s.value("coordination", "?") << "), leader "
            << s.value("leader", std::string("(none)")) << (s.value("leading", false) ? " (this one)" : "") << "\n";
  std::cout << "epoch " << t.value("epoch", 0) << ": primary " << t.value("primary", "?");
  if (t.contains("fenced") && !t["fenced"].empty()) {
    std::cout << ", fenced:";
    for (const auto& f : t["fenced"]) std::cout << " " << f.get<std::string>();
  }
  std::cout << (s.value("paused", false) ? ", new transactions PAUSED" : "") << "\n";
  if (!t.value("reason", std::string()).empty()) std::cout << "  (" << t.value("reason", std::string()) << ")\n";
  if (s.contains("write_authority")) {
    // Whether this Meridian may send writes to the primary (the etcd majority's confirmation).
    const auto& a = s["write_authority"];
    std::cout << "write authority: ";
    if (a.value("alone", false)) {
      std::cout << "held (no etcd: this Meridian decides alone)\n";
    } else if (a.value("held", false)) {
      std::cout << "held for epoch " << a.value("epoch", 0) << ", " << a.value("remaining_ms", 0) << " ms left";
    } else {
      std::cout << "NOT HELD for epoch " << a.value("epoch", 0) << ": writes are refused";
    }
    if (!a.value("alone", false)) {
      const long long ago = a.value("last_confirmed_ms_ago", -1LL);
      std::cout << " (last renewal confirmed " << (ago < 0 ? std::string("never") : std::to_string(ago) + " ms ago")
                << ", lapses " << a.value("lapses", 0) << ")\n";
    }
  }
  if (s.contains("ending")) {
    const auto& e = s["ending"];
    std::cout << "epoch " << e.value("epoch", 0) << " is ending (leader " << e.value("leader", std::string("?"))
              << "): no write authority is renewed; " << e.value("why", std::string()) << "\n";
  }
  std::cout << "\n" << std::left << std::setw(16) << "seen from" << std::setw(16) << "node" << std::setw(16) << "state"
            << std::setw(10) << "timeline" << std::setw(14) << "position" << std::setw(10) << "lag ms" << std::setw(12)
            << "lag bytes" << "rtt ms\n";
  for (const auto& v : s.value("views", json::array())) {
    const json nodes = v.value("nodes", json::object());
    for (const auto& [name, n] : nodes.items()) {
      std::string state = !n.value("probed", false) ? "unprobed"
                          : !n.value("reachable", false)
                              ? "down " + std::to_string(n.value("unreachable_ms", 0)) + " ms"
                              : (n.value("in_recovery", false) ? "replica" : "primary");
      if (n.value("in_recovery", false) && n.value("reachable", false))
        state += n.value("readable", false) ? " reads" : " no reads";
      const bool replica = n.value("in_recovery", false);
      std::cout << std::setw(16) << v.value("region", "?") << std::setw(16) << name << std::setw(16) << state
                << std::setw(10) << n.value("timeline", 0) << std::setw(14)
                << (replica ? n.value("replay", "") : n.value("wal", "")) << std::setw(10)
                << (replica && n.contains("lag_ms") ? std::to_string(n.value("lag_ms", 0)) : std::string("-"))
                << std::setw(12) << (replica ? std::to_string(n.value("lag_bytes", 0)) : std::string("-"))
                << (n.contains("rtt_us") ? one_decimal(n.value("rtt_us", 0.0) / 1000.0) : std::string("-")) << "\n";
    }
  }
  if (s.contains("last_failover")) print_last_failover(s["last_failover"]);
}

int usage() {
  std::cerr << "usage: meridianctl [--url http://HOST:PORT] [--token-file FILE] "
               "status [--json] | promote NODE | switchover NODE | rejoin NODE | pause | resume\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url = std::getenv("MERIDIAN_ADMIN_URL") ? std::getenv("MERIDIAN_ADMIN_URL") : "http://127.0.0.1:6480";
  std::string token = std::getenv("MERIDIAN_ADMIN_TOKEN") ? std::getenv("MERIDIAN_ADMIN_TOKEN") : "";
  std::vector<std::string> args;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--url" && i + 1 < argc) {
        url = argv[++i];
      } else if (a == "--token-file" && i + 1 < argc) {
        token = read_token(argv[++i]);
      } else if (a == "--help" || a == "-h") {
        usage();
        return 0;
      } else {
        args.push_back(a);
      }
    }
    if (args.empty()) return usage();
    const auto& command = args[0];
    reply r;
    if (command == "status") {
      r = call(url, token, http::verb::get, "/v1/status", "", std::chrono::seconds(30));
      if (r.status == 200 && !(args.size() > 1 && args[1] == "--json")) {
        print_status(json::parse(r.body));
        return 0;
      }
    } else if ((command == "promote" || command == "switchover" || command == "rejoin") && args.size() == 2) {
      r = call(url, token, http::verb::post, "/v1/" + command, json{{"node", args[1]}}.dump(), operation_timeout);
    } else if ((command == "pause" || command == "resume") && args.size() == 1) {
      r = call(url, token, http::verb::post, "/v1/" + command, "{}", std::chrono::seconds(60));
    } else {
      return usage();
    }
    auto j = json::parse(r.body, nullptr, false);
    if (r.status != 200) {
      std::cerr << "meridianctl: " << (j.is_object() ? j.value("error", r.body) : r.body) << " (HTTP " << r.status
                << ")\n";
      return 1;
    }
    std::cout << (j.is_object() && j.contains("result") ? j["result"].get<std::string>() : r.body) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "meridianctl: " << e.what() << "\n";
    return 1;
  }
}
