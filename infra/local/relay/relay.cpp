#include "infra/local/relay/relay.hpp"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <deque>
#include <set>
#include <stdexcept>

namespace meridian::relay {

using clock = std::chrono::steady_clock;
using proxy::error_code;
using proxy::use_awaitable;

namespace {

endpoint parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("relay config: '" + text + "' is not host:port");
  endpoint e{text.substr(0, colon), 0};
  int port = 0;
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (const std::exception&) {
    port = 0;
  }
  if (port <= 0 || port > 65535) throw std::runtime_error("relay config: bad port in '" + text + "'");
  e.port = static_cast<std::uint16_t>(port);
  return e;
}

}  // namespace

relay_config load_relay_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("relay config " + path + ": " + e.what());
  }
  relay_config c;
  c.control_path = root["control"].as<std::string>("");
  if (root["buffer_limit"]) c.buffer_limit = root["buffer_limit"].as<std::size_t>();
  for (const auto& r : root["regions"]) {
    auto name = r["name"].as<std::string>();
    c.regions.push_back(name);
    for (const auto& s : r["sources"]) c.source_region[s.as<std::string>()] = name;
  }
  if (c.regions.empty()) throw std::runtime_error("relay config " + path + ": no regions");
  network_rules known(c.regions);
  for (const auto& d : root["delays"]) {
    auto between = d["between"];
    if (!between.IsSequence() || between.size() != 2) throw std::runtime_error("relay config: delays need between: [a, b]");
    delay_config dc{between[0].as<std::string>(), between[1].as<std::string>(), std::chrono::milliseconds(d["ms"].as<long>())};
    if (!known.is_region(dc.a) || !known.is_region(dc.b)) throw std::runtime_error("relay config: delay between unknown regions");
    c.delays.push_back(std::move(dc));
  }
  for (const auto& s : root["services"]) {
    service_config sc;
    sc.name = s["name"].as<std::string>();
    sc.region = sc.name.substr(0, sc.name.find('/'));
    if (sc.name.find('/') == std::string::npos || !known.is_region(sc.region))
      throw std::runtime_error("relay config: service '" + sc.name + "' is not <region>/<name>");
    for (const auto& l : s["listen"]) sc.listen.push_back(parse_endpoint(l.as<std::string>()));
    sc.target = parse_endpoint(s["target"].as<std::string>());
    c.services.push_back(std::move(sc));
  }
  return c;
}

// One relayed TCP connection: a client in region `from_` talking to a service. Two directions,
// each a queue of chunks stamped with the time they may be delivered.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(relay& r, tcp::socket client, std::string from, const service_config& to)
      : relay_(r),
        client_(std::move(client)),
        server_(client_.get_executor()),
        from_(std::move(from)),
        to_{to.name, to.region},
        target_(to.target),
        wake_(client_.get_executor(), clock::time_point::max()),
        up_(client_.get_executor()),
        down_(client_.get_executor()) {
    relay_.opened();
  }
  ~connection() { relay_.closed(); }

  static void start(const std::shared_ptr<connection>& self) {
    asio::co_spawn(self->client_.get_executor(), run(self), asio::detached);
  }

  // Every waiter of this connection re-checks its condition. The timer never expires, so
  // cancelling it only ends the waits pending now.
  void wake() { wake_.cancel(); }
  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    client_.close(ec);
    server_.close(ec);
    up_.due.cancel();
    down_.due.cancel();
    wake();
  }

 private:
  struct chunk {
    clock::time_point due;
    std::vector<char> bytes;
    bool eof = false;
  };
  struct direction {
    explicit direction(const asio::any_io_executor& ex) : due(ex) {}
    std::deque<chunk> queue;
    std::size_t queued = 0;
    asio::steady_timer due;
  };

  bool held() const { return relay_.blocked(from_, to_); }
  tcp::socket& source(bool upstream) { return upstream ? client_ : server_; }
  tcp::socket& sink(bool upstream) { return upstream ? server_ : client_; }
  direction& dir(bool upstream) { return upstream ? up_ : down_; }

  awaitable<void> wait() {
    error_code ec;
    co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
  }

  // Client bytes are read (and queued) at once; the server is dialled once the link lets a
  // packet through, one one-way delay later (the SYN's trip).
  static awaitable<void> run(std::shared_ptr<connection> self) {
    asio::co_spawn(self->client_.get_executor(), reader(self, true), asio::detached);
    while (!self->closed_ && self->held() && !self->client_gone_) co_await self->wait();
    if (self->closed_ || self->client_gone_) {
      self->close();
      co_return;
    }
    auto trip = self->relay_.delay(self->from_, self->to_);
    if (trip.count() > 0) {
      error_code ec;
      self->up_.due.expires_after(trip);
      co_await self->up_.due.async_wait(asio::redirect_error(use_awaitable, ec));
      if (self->closed_) co_return;
    }
    error_code ec;
    auto address = asio::ip::make_address(self->target_.host, ec);
    if (!ec) {
      tcp::endpoint target(address, self->target_.port);
      co_await self->server_.async_connect(target, asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      spdlog::info("relay: {} -> {}: connect to {}:{} failed: {}", self->from_, self->to_.name, self->target_.host,
                   self->target_.port, ec.message());
      self->close();
      co_return;
    }
    self->server_.set_option(tcp::no_delay(true), ec);
    auto ex = self->client_.get_executor();
    asio::co_spawn(ex, writer(self, true), asio::detached);
    asio::co_spawn(ex, reader(self, false), asio::detached);
    asio::co_spawn(ex, writer(self, false), asio::detached);
  }

  static awaitable<void> reader(std::shared_ptr<connection> self, bool upstream) {
    auto& d = self->dir(upstream);
    auto& from = self->source(upstream);
    std::vector<char> buffer(64 * 1024);
    for (;;) {
      while (!self->closed_ && d.queued >= self->relay_.buffer_limit()) co_await self->wait();
      if (self->closed_) co_return;
      error_code ec;
      std::size_t n = co_await from.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
      auto due = clock::now() + self->relay_.delay(self->from_, self->to_);
      // A delay lowered by a command must not let bytes overtake the ones before them.
      if (!d.queue.empty() && d.queue.back().due > due) due = d.queue.back().due;
      if (ec) {
        if (upstream) self->client_gone_ = true;
        d.queue.push_back(chunk{due, {}, true});
        self->wake();
        co_return;
      }
      d.queue.push_back(chunk{due, std::vector<char>(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n)), false});
      d.queued += n;
      self->wake();
    }
  }

  static awaitable<void> writer(std::shared_ptr<connection> self, bool upstream) {
    auto& d = self->dir(upstream);
    auto& to = self->sink(upstream);
    for (;;) {
      if (self->closed_) co_return;
      if (d.queue.empty()) {
        co_await self->wait();
        continue;
      }
      auto due = d.queue.front().due;
      if (clock::now() < due) {
        error_code ec;
        d.due.expires_at(due);
        co_await d.due.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      if (self->held()) {
        co_await self->wait();
        continue;
      }
      chunk c = std::move(d.queue.front());
      d.queue.pop_front();
      d.queued -= c.bytes.size();
      self->wake();  // room for the reader
      error_code ec;
      if (c.eof) {
        to.shutdown(tcp::socket::shutdown_send, ec);
        if (++self->finished_ == 2 || ec) self->close();
        co_return;
      }
      co_await asio::async_write(to, asio::buffer(c.bytes), asio::redirect_error(use_awaitable, ec));
      if (ec) {
        self->close();
        co_return;
      }
    }
  }

  relay& relay_;
  tcp::socket client_;
  tcp::socket server_;
  std::string from_;
  service_ref to_;
  endpoint target_;
  asio::steady_timer wake_;
  direction up_;
  direction down_;
  bool closed_ = false;
  bool client_gone_ = false;
  int finished_ = 0;

  friend class relay;
};

relay::relay(asio::io_context& io, relay_config config)
    : io_(io), config_(std::move(config)), rules_(config_.regions) {
  for (const auto& d : config_.delays) rules_.set_delay(d.a, d.b, d.one_way);
  for (const auto& s : config_.services)
    for (const auto& e : s.listen) {
      error_code ec;
      auto address = asio::ip::make_address(e.host, ec);
      if (ec) throw std::runtime_error("relay: bad listen address " + e.host);
      auto l = std::make_unique<listener>(listener{tcp::acceptor(io_), &s});
      tcp::endpoint at(address, e.port);
      l->acceptor.open(at.protocol());
      l->acceptor.set_option(tcp::acceptor::reuse_address(true));
      l->acceptor.bind(at, ec);
      if (ec) throw std::runtime_error("relay: cannot listen on " + e.host + ":" + std::to_string(e.port) + ": " + ec.message());
      l->acceptor.listen(asio::socket_base::max_listen_connections);
      listeners_.push_back(std::move(l));
    }
  if (!config_.control_path.empty()) {
    ::unlink(config_.control_path.c_str());
    control_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(config_.control_path));
  }
}

relay::~relay() = default;

void relay::start() {
  for (auto& l : listeners_) asio::co_spawn(io_, accept_loop(*l), asio::detached);
  if (control_) asio::co_spawn(io_, control_loop(), asio::detached);
}

void relay::stop() {
  stopping_ = true;
  error_code ec;
  for (auto& l : listeners_) l->acceptor.close(ec);
  if (control_) control_->close(ec);
  for (const auto& w : live_)
    if (auto c = w.lock()) c->close();
}

std::string relay::command(std::string_view line) {
  auto known = [this](const std::string& name) {
    for (const auto& s : config_.services)
      if (s.name == name) return true;
    return false;
  };
  std::string reply = rules_.apply(line, known);
  if (reply.rfind("error", 0) != 0) {
    spdlog::info("relay: {}", line);
    for (auto it = live_.begin(); it != live_.end();) {
      if (auto c = it->lock()) {
        c->wake();
        ++it;
      } else {
        it = live_.erase(it);
      }
    }
  }
  return reply;
}

std::string relay::region_of_source(const asio::ip::address& a) const {
  auto it = config_.source_region.find(a.to_string());
  return it == config_.source_region.end() ? std::string() : it->second;
}

std::chrono::milliseconds relay::delay(const std::string& from, const service_ref& to) const {
  return rules_.delay(from, to.region);
}

awaitable<void> relay::accept_loop(listener& l) {
  for (;;) {
    tcp::socket s(io_);
    error_code ec;
    co_await l.acceptor.async_accept(s, asio::redirect_error(use_awaitable, ec));
    if (stopping_) co_return;
    if (ec) continue;
    s.set_option(tcp::no_delay(true), ec);
    auto peer = s.remote_endpoint(ec);
    if (ec) continue;
    std::string from = region_of_source(peer.address());
    if (from.empty()) from = l.service->region;  // the host itself: local to the service
    auto c = std::make_shared<connection>(*this, std::move(s), from, *l.service);
    if (live_.size() > 2 * open_ + 64) std::erase_if(live_, [](const auto& w) { return w.expired(); });
    live_.insert(c);
    connection::start(c);
  }
}

awaitable<void> relay::control_loop() {
  for (;;) {
    asio::local::stream_protocol::socket s(io_);
    error_code ec;
    co_await control_->async_accept(s, asio::redirect_error(use_awaitable, ec));
    if (stopping_) co_return;
    if (ec) continue;
    asio::co_spawn(io_, control_session(std::move(s)), asio::detached);
  }
}

awaitable<void> relay::control_session(asio::local::stream_protocol::socket s) {
  std::string line;
  error_code ec;
  co_await asio::async_read_until(s, asio::dynamic_buffer(line, 4096), '\n', asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  line.resize(line.find('\n'));
  std::string reply = command(line) + "\n";
  co_await asio::async_write(s, asio::buffer(reply), asio::redirect_error(use_awaitable, ec));
}

}  // namespace meridian::relay
