#include "failover/etcd_client.hpp"

#include <openssl/evp.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace meridian::failover {

namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using proxy::error_code;
using proxy::use_awaitable;

struct etcd_client::connection {
  explicit connection(asio::any_io_executor ex, std::size_t ep) : stream(ex), endpoint(ep) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::size_t endpoint;
};

namespace {

std::string b64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unb64(std::string_view in) {
  if (in.empty()) return {};
  std::string out(3 * in.size() / 4 + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return {};
  std::size_t size = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as data: take it off again.
  if (in.size() >= 1 && in.back() == '=') --size;
  if (in.size() >= 2 && in[in.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

// The gateway writes 64-bit integers as strings, and leaves out fields that are zero.
std::int64_t int64_of(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

etcd_kv kv_of(const json& j) {
  etcd_kv kv;
  kv.key = unb64(j.value("key", ""));
  kv.value = unb64(j.value("value", ""));
  kv.create_revision = int64_of(j, "create_revision");
  kv.mod_revision = int64_of(j, "mod_revision");
  kv.version = int64_of(j, "version");
  kv.lease = int64_of(j, "lease");
  return kv;
}

std::vector<etcd_kv> kvs_of(const json& j) {
  std::vector<etcd_kv> out;
  if (auto it = j.find("kvs"); it != j.end() && it->is_array())
    for (const auto& kv : *it) out.push_back(kv_of(kv));
  return out;
}

json range_request(const std::string& key, bool prefix) {
  json r{{"key", b64(key)}};
  if (prefix) r["range_end"] = b64(prefix_end(key));
  return r;
}

json op_json(const etcd_op& op) {
  switch (op.what) {
    case etcd_op::kind::put: {
      json p{{"key", b64(op.key)}, {"value", b64(op.value)}};
      if (op.lease != 0) p["lease"] = std::to_string(op.lease);
      return json{{"request_put", p}};
    }
    case etcd_op::kind::erase:
      return json{{"request_delete_range", range_request(op.key, op.prefix)}};
    case etcd_op::kind::get:
      break;
  }
  return json{{"request_range", range_request(op.key, op.prefix)}};
}

json compare_json(const etcd_compare& c) {
  json j{{"key", b64(c.key)}, {"result", "EQUAL"}};
  switch (c.what) {
    case etcd_compare::target::value:
      j["target"] = "VALUE";
      j["value"] = b64(c.value);
      break;
    case etcd_compare::target::version:
      j["target"] = "VERSION";
      j["version"] = std::to_string(c.number);
      break;
    case etcd_compare::target::create_revision:
      j["target"] = "CREATE";
      j["create_revision"] = std::to_string(c.number);
      break;
    case etcd_compare::target::mod_revision:
      j["target"] = "MOD";
      j["mod_revision"] = std::to_string(c.number);
      break;
  }
  return j;
}

etcd_result<json> parse(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return tl::unexpected(std::string("etcd sent invalid JSON"));
  if (j.contains("error") || (j.contains("code") && j.contains("message")))
    return tl::unexpected("etcd: " + j.value("message", j.value("error", std::string("error"))));
  return j;
}

std::pair<std::string, std::string> host_port(const std::string& endpoint) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos) return {endpoint, "2379"};
  return {endpoint.substr(0, colon), endpoint.substr(colon + 1)};
}

}  // namespace

std::string prefix_end(std::string prefix) {
  // The first key after every key with this prefix: the prefix with its last byte incremented
  // (dropping trailing 0xff bytes); "\0" means the end of the keyspace.
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');
}

etcd_client::etcd_client(asio::any_io_executor executor, std::vector<std::string> endpoints,
                         std::chrono::milliseconds timeout)
    : executor_(executor), endpoints_(std::move(endpoints)), timeout_(timeout) {}

etcd_client::~etcd_client() { close(); }

void etcd_client::close() {
  for (auto& c : idle_) {
    error_code ignored;
    c->stream.socket().close(ignored);
  }
  idle_.clear();
}

awaitable<etcd_result<std::unique_ptr<etcd_client::connection>>> etcd_client::connect(std::size_t endpoint,
                                                                                       clock::time_point deadline) {
  auto [host, port] = host_port(endpoints_[endpoint]);
  asio::ip::tcp::resolver resolver(executor_);
  error_code ec;
  auto results = co_await resolver.async_resolve(host, port, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return tl::unexpected("cannot resolve " + endpoints_[endpoint] + ": " + ec.message());
  auto c = std::make_unique<connection>(executor_, endpoint);
  c->stream.expires_at(deadline);
  co_await c->stream.async_connect(results, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return tl::unexpected("cannot connect to etcd at " + endpoints_[endpoint] + ": " + ec.message());
  c->stream.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  co_return c;
}

awaitable<etcd_result<std::string>> etcd_client::call(const char* path, const std::string& body) {
  if (endpoints_.empty()) co_return tl::unexpected(std::string("no etcd endpoints configured"));
  const auto deadline = clock::now() + timeout_;
  std::string last_error;
  for (std::size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
    const std::size_t ep = (preferred_ + attempt) % endpoints_.size();
    // A pooled connection may have been closed by the server meanwhile: then one fresh try.
    for (int fresh = 0; fresh < 2; ++fresh) {
      std::unique_ptr<connection> c;
      bool pooled = false;
      if (fresh == 0) {
        for (auto it = idle_.begin(); it != idle_.end(); ++it) {
          if ((*it)->endpoint == ep) {
            c = std::move(*it);
            idle_.erase(it);
            pooled = true;
            break;
          }
        }
      }
      if (!c) {
        auto made = co_await connect(ep, deadline);
        if (!made) {
          last_error = made.error();
          break;  // next endpoint
        }
        c = std::move(*made);
      }
      http::request<http::string_body> req{http::verb::post, path, 11};
      req.set(http::field::host, endpoints_[ep]);
      req.set(http::field::content_type, "application/json");
      req.keep_alive(true);
      req.body() = body;
      req.prepare_payload();
      c->stream.expires_at(deadline);
      error_code ec;
      co_await http::async_write(c->stream, req, asio::redirect_error(use_awaitable, ec));
      http::response<http::string_body> res;
      if (!ec) co_await http::async_read(c->stream, c->buffer, res, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        last_error = "etcd at " + endpoints_[ep] + ": " + ec.message();
        if (pooled && clock::now() < deadline) continue;
        break;
      }
      if (res.keep_alive()) idle_.push_back(std::move(c));
      if (res.result() != http::status::ok) {
        auto j = parse(res.body());
        co_return tl::unexpected(j ? "etcd answered HTTP " + std::to_string(res.result_int()) : j.error());
      }
      preferred_ = ep;
      co_return std::move(res.body());
    }
  }
  co_return tl::unexpected(last_error);
}

awaitable<etcd_result<std::vector<etcd_kv>>> etcd_client::get(std::string key, bool prefix) {
  const std::string request = range_request(key, prefix).dump();
  auto body = co_await call("/v3/kv/range", request);
  if (!body) co_return tl::unexpected(body.error());
  auto j = parse(*body);
  if (!j) co_return tl::unexpected(j.error());
  co_return kvs_of(*j);
}

awaitable<etcd_result<std::int64_t>> etcd_client::put(std::string key, std::string value, std::int64_t lease) {
  json r{{"key", b64(key)}, {"value", b64(value)}};
  if (lease != 0) r["lease"] = std::to_string(lease);
  const std::string request = r.dump();
  auto body = co_await call("/v3/kv/put", request);
  if (!body) co_return tl::unexpected(body.error());
  auto j = parse(*body);
  if (!j) co_return tl::unexpected(j.error());
  co_return int64_of(j->value("header", json::object()), "revision");
}

awaitable<etcd_result<std::int64_t>> etcd_client::erase(std::string key, bool prefix) {
  const std::string request = range_request(key, prefix).dump();
  auto body = co_await call("/v3/kv/deleterange", request);
  if (!body) co_return tl::unexpected(body.error());
  auto j = parse(*body);
  if (!j) co_return tl::unexpected(j.error());
  co_return int64_of(*j, "deleted");
}

awaitable<etcd_result<etcd_txn_result>> etcd_client::txn(std::vector<etcd_compare> compares,
                                                         std::vector<etcd_op> success, std::vector<etcd_op> failure) {
  json r{{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const auto& c : compares) r["compare"].push_back(compare_json(c));
  for (const auto& op : success) r["success"].push_back(op_json(op));
  for (const auto& op : failure) r["failure"].push_back(op_json(op));
  const std::string request = r.dump();
  auto body = co_await call("/v3/kv/txn", request);
  if (!body) co_return tl::unexpected(body.error());
  auto j = parse(*body);
  if (!j) co_return tl::unexpected(j.error());
  etcd_txn_result out;
  out.succeeded = j->value("succeeded", false);
  out.revision = int64_of(j->value("header", json::object()), "revision");
  for (const auto& resp : j->value("responses", json::array()))
    if (auto range = resp.find("response_range"); range != resp.end()) out.ranges.push_back(kvs_of(*range));
  co_return out;
}

awaitable<etcd_result<std::int64_t>> etcd_client::grant(std::chrono::seconds ttl) {
  const std::string request = "{\"TTL\":\"" + std::to_string(ttl.count()) + "\"}";
  auto body = co_await call("/v3/lease/grant", request);
  if (!body) co_return tl::unexpected(body.error());
  auto j = parse(*body);
  if (!j) co_return tl::unexpected(j.error());
  const auto id = int64_of(*j, "ID");
  if (id == 0) co_return tl::unexpected("etcd granted no lease: " + j->value("error", std::string("no ID")));
  co_return id;
}

awaitable<etcd_result<std::int64_t>> etcd_client::keep_alive(std::int64_t lease) {
  const std::string request = "{\"ID\":\"" + std::to_string(lease) + "\"}";
  auto body = co_await call("/v3/lease/keepalive", request);
  if (!body) co_return tl::unexpected(body.error());
  // A stream with one message: {"result": {...,"TTL": n}}; no TTL means the lease is gone.
  auto line = body->substr(0, body->find('\n'));
  auto j = parse(line);
  if (!j) co_return tl::unexpected(j.error());
  co_return int64_of(j->value("result", json::object()), "TTL");
}

awaitable<etcd_result<void>> etcd_client::revoke(std::int64_t lease) {
  const std::string request = "{\"ID\":\"" + std::to_string(lease) + "\"}";
  auto body = co_await call("/v3/lease/revoke", request);
  if (!body) co_return tl::unexpected(body.error());
  auto j = parse(*body);
  if (!j) co_return tl::unexpected(j.error());
  co_return etcd_result<void>{};
}

awaitable<std::string> etcd_client::watch(std::string key, bool prefix, std::int64_t from_revision,
                                          std::function<bool(const std::vector<etcd_event>&, std::int64_t)> on_events) {
  if (endpoints_.empty()) co_return "no etcd endpoints configured";
  auto made = co_await connect(preferred_ % endpoints_.size(), clock::now() + timeout_);
  if (!made) co_return made.error();
  auto& c = **made;
  json create = range_request(key, prefix);
  if (from_revision > 0) create["start_revision"] = std::to_string(from_revision);
  http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
  req.set(http::field::host, endpoints_[c.endpoint]);
  req.set(http::field::content_type, "application/json");
  req.body() = json{{"create_request", create}}.dump();
  req.prepare_payload();
  error_code ec;
  co_await http::async_write(c.stream, req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return "etcd watch: " + ec.message();
  c.stream.expires_never();  // a watch waits as long as nothing changes
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  co_await http::async_read_header(c.stream, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return "etcd watch: " + ec.message();
  if (parser.get().result() != http::status::ok) co_return "etcd watch: HTTP " + std::to_string(parser.get().result_int());
  std::string pending;
  char chunk[8192];
  for (;;) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    co_await http::async_read_some(c.stream, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return "etcd watch: " + ec.message();
    pending.append(chunk, sizeof chunk - parser.get().body().size);
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      const auto line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.empty()) continue;
      auto j = parse(line);
      if (!j) co_return j.error();
      const auto& result = j->value("result", json::object());
      if (result.value("canceled", false)) co_return "etcd cancelled the watch: " + result.value("cancel_reason", std::string());
      std::vector<etcd_event> events;
      for (const auto& e : result.value("events", json::array())) {
        etcd_event ev;
        ev.deleted = e.value("type", std::string()) == "DELETE";
        ev.kv = kv_of(e.value("kv", json::object()));
        events.push_back(std::move(ev));
      }
      const auto revision = int64_of(result.value("header", json::object()), "revision");
      if (!events.empty() || result.value("created", false))
        if (!on_events(events, revision)) co_return std::string();
    }
    if (parser.is_done()) co_return "etcd ended the watch";
  }
}

}  // namespace meridian::failover
