// meridian: the region-aware PostgreSQL proxy.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <future>
#include <mutex>
#include <iostream>
#include <set>
#include <thread>

#include "failover/coordinator.hpp"
#include "failover/node_monitor.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/asio.hpp"
#include "proxy/config.hpp"
#include "proxy/logging.hpp"
#include "proxy/reload.hpp"
#include "proxy/server_console.hpp"
#include "proxy/worker.hpp"

namespace {

meridian::failover::monitor_settings monitor_settings(const meridian::proxy::config& cfg,
                                                      const meridian::routing::topology& topology) {
  meridian::failover::monitor_settings m;
  m.login = {{"user", cfg.monitor.user},
             {"dbname", cfg.monitor.database},
             {"sslmode", cfg.monitor.sslmode},
             {"application_name", "meridian-monitor " + cfg.region}};
  if (!cfg.monitor.password.empty()) m.login.emplace_back("password", cfg.monitor.password);
  m.interval = cfg.monitor.interval;
  m.timeout = cfg.monitor.timeout;
  // The history must reach back past the largest lag limit, with room to spare.
  std::chrono::milliseconds largest{0};
  for (const auto& n : topology.nodes) largest = std::max(largest, n.max_lag);
  m.history = std::max<std::chrono::milliseconds>(std::chrono::minutes(5), largest * 10);
  m.policy.region = cfg.region;
  m.policy.readmit_ratio = cfg.lag_readmit_ratio;
  for (const auto& name : cfg.replica_order)
    if (auto id = topology.find(name)) m.policy.preference.push_back(*id);
  return m;
}

meridian::failover::coordinator_settings coordinator_settings(const meridian::proxy::config& cfg) {
  meridian::failover::coordinator_settings c;
  c.region = cfg.region;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  c.id = cfg.region + "/" + host + "/" + std::to_string(getpid());
  c.etcd = cfg.coordination.etcd;
  c.prefix = "/meridian/" + cfg.coordination.cluster + "/";
  c.lease_ttl = cfg.coordination.lease_ttl;
  c.authority_margin = cfg.coordination.authority_margin;
  std::set<std::string> regions;
  for (const auto& n : cfg.nodes) regions.insert(n.region);
  c.regions = cfg.coordination.regions != 0 ? cfg.coordination.regions : regions.size();
  c.interval = cfg.monitor.interval;
  c.detection = cfg.failover.detection;
  c.detection_refused = cfg.failover.detection_refused;
  c.automatic = cfg.failover.enabled() && cfg.failover.automatic;
  c.candidates.order = cfg.failover.candidate_order;
  c.candidates.measured = cfg.failover.measured_distance;
  c.candidates.prefer_ahead_bytes = cfg.failover.prefer_ahead_bytes;
  c.candidates.max_loss_bytes = cfg.failover.max_data_loss_bytes;
  c.admin.login = {{"user", cfg.failover.user},
                   {"dbname", cfg.failover.database},
                   {"sslmode", cfg.failover.sslmode},
                   {"application_name", "meridian-failover " + cfg.region}};
  if (!cfg.failover.password.empty()) c.admin.login.emplace_back("password", cfg.failover.password);
  c.admin.promote_timeout = cfg.failover.promote_timeout;
  c.admin.catch_up_timeout = cfg.failover.catch_up_timeout;
  c.admin.repoint_timeout = cfg.failover.repoint_timeout;
  c.admin.primary_conninfo = cfg.failover.primary_conninfo;
  c.admin.promote_command = cfg.failover.promote_command;
  c.admin.repoint_command = cfg.failover.repoint_command;
  c.admin.fence_command = cfg.failover.fence_command;
  c.admin.rejoin_command = cfg.failover.rejoin_command;
  return c;
}

// Holds or releases new transactions on every worker (each on its own thread).
void pause_workers(std::vector<std::unique_ptr<meridian::proxy::worker>>& workers, bool paused) {
  for (auto& w : workers)
    meridian::proxy::asio::post(w->io(), [w = w.get(), paused] { paused ? w->pause() : w->resume(); });
}

// The admin API's answers: status, promote, pause, resume.
meridian::proxy::admin_handler admin_routes(const meridian::proxy::config& cfg,
                                            std::vector<std::unique_ptr<meridian::proxy::worker>>& workers,
                                            meridian::failover::coordinator* coordinator,
                                            meridian::proxy::console_backend& console) {
  using meridian::proxy::admin_request;
  using meridian::proxy::admin_response;
  auto error = [](int status, const std::string& message) {
    return admin_response{status, nlohmann::json{{"error", message}}.dump()};
  };
  auto set_pause = [&workers](bool paused) { pause_workers(workers, paused); };
  return [&cfg, coordinator, error, set_pause, &console](const admin_request& r) -> meridian::proxy::awaitable<admin_response> {
    // The console's SHOW tables as JSON: GET /v1/show/pools, /v1/show/clients, ...
    if (r.method == "GET" && r.path.starts_with("/v1/show/")) {
      auto c = meridian::proxy::console_command_named(r.path.substr(9));
      if (!c || !meridian::proxy::is_show(*c)) co_return error(404, "unknown table " + r.path.substr(9));
      const auto which = *c;
      auto t = co_await console.show(which);
      co_return admin_response{200, meridian::proxy::table_json(t)};
    }
    if (r.method == "GET" && r.path == "/v1/status") {
      if (!coordinator) co_return admin_response{200, nlohmann::json{{"region", cfg.region}, {"coordination", "none"}}.dump()};
      std::string body = co_await coordinator->status_json();
      co_return admin_response{200, std::move(body)};
    }
    if (r.method != "POST") co_return error(405, "use GET /v1/status or POST an action");
    auto body = nlohmann::json::parse(r.body.empty() ? std::string("{}") : r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) co_return error(400, "the body must be a JSON object");
    if (r.path == "/v1/pause" || r.path == "/v1/resume") {
      const bool paused = r.path == "/v1/pause";
      if (!coordinator) {
        set_pause(paused);
        co_return admin_response{200, nlohmann::json{{"paused", paused}}.dump()};
      }
      auto done = co_await coordinator->request_pause(paused);
      if (!done) co_return error(503, done.error());
      co_return admin_response{200, nlohmann::json{{"paused", paused}}.dump()};
    }
    // Operations on one node, carried out by the coordinator (the leader, through etcd).
    using node_action = meridian::proxy::awaitable<tl::expected<std::string, std::string>> (
        meridian::failover::coordinator::*)(const std::string&);
    static const std::pair<std::string_view, node_action> node_actions[] = {
        {"/v1/promote", &meridian::failover::coordinator::request_promote},
        {"/v1/switchover", &meridian::failover::coordinator::request_switchover},
        {"/v1/rejoin", &meridian::failover::coordinator::request_rejoin},
    };
    for (const auto& [path, action] : node_actions) {
      if (r.path != path) continue;
      if (!coordinator) co_return error(409, "failover is not configured on this Meridian");
      const std::string node = body.value("node", std::string());
      auto done = co_await (coordinator->*action)(node);
      if (!done) co_return error(409, done.error());
      co_return admin_response{200, nlohmann::json{{"result", *done}}.dump()};
    }
    co_return error(404, "unknown path " + r.path);
  };
}

// Every client and server connection is a descriptor: take what the hard limit allows and say
// when that is fewer than max_clients needs.
void raise_descriptor_limit(const meridian::proxy::config& cfg) {
  rlimit l{};
  if (getrlimit(RLIMIT_NOFILE, &l) != 0) return;
  if (l.rlim_cur < l.rlim_max) {
    l.rlim_cur = l.rlim_max;
    setrlimit(RLIMIT_NOFILE, &l);
    getrlimit(RLIMIT_NOFILE, &l);
  }
  // A client, its server connection, and some to spare for listeners, probes and etcd.
  const auto wanted = static_cast<rlim_t>(cfg.max_clients) * 2 + 64;
  if (l.rlim_cur != RLIM_INFINITY && l.rlim_cur < wanted)
    spdlog::warn("open file limit is {}: fewer than limits.max_clients ({}) needs; raise it (ulimit -n, LimitNOFILE)",
                 l.rlim_cur, cfg.max_clients);
}

void apply_logging(const meridian::proxy::config& cfg) {
  meridian::proxy::configure_logging(cfg.log_level, cfg.log_json, cfg.region);
}

// SIGHUP and the console's RELOAD: read the configuration file again and, when it is valid and
// changes nothing that takes a restart, put it in force — on every worker, for the login
// throttle and the auth.query cache, the log level, and the certificates (new connections; open
// ones keep theirs). Anything wrong leaves the running configuration as it was, and says why.
// Every snapshot ever in force stays alive in `kept` (sessions point into the one they began
// with; a few kilobytes per reload).
// The node list and read policy of `next` handed to the node monitor (on its thread), or, with
// no monitor, the configured topology handed to the workers. The monitor may refuse (removing
// the primary): that refuses the reload.
void apply_nodes(const meridian::proxy::config& next, meridian::failover::node_monitor* monitor,
                 meridian::proxy::shared_state& shared, std::vector<std::unique_ptr<meridian::proxy::worker>>& workers) {
  using namespace meridian;
  auto configured = routing::make_configured_topology(next.nodes, next.region);
  if (!monitor) {
    shared.stats->node_health(*configured);
    for (auto& w : workers) proxy::asio::post(w->io(), [w = w.get(), configured] { w->set_topology(configured); });
    return;
  }
  auto settings = monitor_settings(next, *configured);
  if (monitor->io().get_executor().running_in_this_thread()) {
    if (auto r = monitor->reconfigure(configured, std::move(settings)); !r) throw proxy::config_error(r.error());
    return;
  }
  auto outcome = std::make_shared<std::promise<tl::expected<void, std::string>>>();
  auto result = outcome->get_future();
  proxy::asio::post(monitor->io(), [monitor, configured, settings = std::move(settings), outcome]() mutable {
    outcome->set_value(monitor->reconfigure(configured, std::move(settings)));
  });
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    throw proxy::config_error("the node monitor did not take the new node list within 10 s");
  if (auto r = result.get(); !r) throw proxy::config_error(r.error());
}

tl::expected<std::string, std::string> reload_config(const std::string& path, meridian::proxy::shared_state& shared,
                                                     std::vector<std::unique_ptr<meridian::proxy::worker>>& workers,
                                                     meridian::failover::node_monitor* monitor,
                                                     std::vector<meridian::proxy::config_ptr>& kept) {
  using namespace meridian;
  static std::mutex one_at_a_time;  // SIGHUP on one thread, RELOAD from a console on another
  std::lock_guard lock(one_at_a_time);
  const auto running = shared.cfg.load();
  try {
    auto next = proxy::load_config_file(path);
    proxy::align_nodes(*running, next);
    if (auto setting = proxy::needs_restart(*running, next))
      throw proxy::config_error(*setting + " changed, which takes a restart; nothing was applied");
    auto material = proxy::load_tls_material(next);
    auto changed = proxy::changed_settings(*running, next);
    // The TLS of every node, added ones included, is in place before pools may connect to them.
    const auto old_material = shared.tls.load();
    shared.tls.store(material);
    try {
      apply_nodes(next, monitor, shared, workers);
    } catch (...) {
      shared.tls.store(old_material);
      throw;
    }
    auto snapshot = std::make_shared<const proxy::config>(std::move(next));
    kept.push_back(snapshot);
    shared.cfg.store(snapshot);
    shared.logins.set_settings(proxy::login_throttle::settings{snapshot->max_auth_failures, snapshot->auth_failure_window,
                                                               snapshot->auth_failure_delay,
                                                               snapshot->auth_failure_max_delay});
    shared.users.set_ttl(snapshot->auth_query.cache);
    apply_logging(*snapshot);
    for (auto& w : workers) proxy::asio::post(w->io(), [w = w.get(), snapshot] { w->apply_config(snapshot); });
    std::string list;
    for (const auto& c : changed) list += (list.empty() ? "" : ", ") + c;
    const std::string what = "reloaded " + path + (list.empty() ? ": no setting changed (certificate files read again)"
                                                                 : ": " + list + " (certificate files read again)");
    spdlog::info("{}", what);
    return what;
  } catch (const std::exception& e) {
    spdlog::error("reload of {} refused, the running configuration stays: {}", path, e.what());
    return tl::unexpected("reload of " + path + " refused, the running configuration stays: " + e.what());
  }
}

void usage() {
  std::cerr << "usage: meridian --config FILE [--check-config]\n"
               "  --config FILE     YAML configuration (see README: Configuration)\n"
               "  --check-config    validate the configuration and exit\n";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace meridian;
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    usage();
    return 2;
  }

  proxy::config cfg;
  try {
    cfg = proxy::load_config_file(config_path);
  } catch (const proxy::config_error& e) {
    std::cerr << "meridian: invalid configuration " << config_path << ": " << e.what() << "\n";
    return 1;
  }
  std::shared_ptr<const proxy::tls_material> tls;
  try {
    tls = proxy::load_tls_material(cfg);
  } catch (const proxy::config_error& e) {
    std::cerr << "meridian: invalid configuration " << config_path << ": " << e.what() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << "configuration " << config_path << " is valid\n";
    return 0;
  }

  apply_logging(cfg);
  std::signal(SIGPIPE, SIG_IGN);
  raise_descriptor_limit(cfg);

  proxy::shared_state shared;
  std::vector<proxy::config_ptr> kept{std::make_shared<const proxy::config>(cfg)};
  shared.cfg.store(kept.front());
  shared.tls.store(tls);
  shared.users.set_ttl(cfg.auth_query.cache);
  shared.logins.set_settings(proxy::login_throttle::settings{
      cfg.max_auth_failures, cfg.auth_failure_window, cfg.auth_failure_delay, cfg.auth_failure_max_delay});
  auto topology = routing::make_configured_topology(cfg.nodes, cfg.region);
  shared.stats = std::make_unique<proxy::metrics>(*topology, cfg.threads, cfg.region);
  // With etcd, no write reaches the primary before the majority has confirmed the epoch
  // (failover/write_lease): not even in the moment between listening and the coordinator.
  if (!cfg.coordination.etcd.empty()) shared.authority.revoke(0);
  if (cfg.metrics_port != 0) {
    try {
      shared.stats->serve(cfg.metrics_host, cfg.metrics_port);
    } catch (const std::exception& e) {
      spdlog::critical("cannot serve metrics on {}:{}: {}", cfg.metrics_host, cfg.metrics_port, e.what());
      return 1;
    }
    spdlog::info("metrics on http://{}:{}/metrics", cfg.metrics_host, cfg.metrics_port);
  }

  std::vector<std::unique_ptr<proxy::worker>> workers;
  try {
    for (unsigned i = 0; i < cfg.threads; ++i) {
      workers.push_back(std::make_unique<proxy::worker>(shared, i, topology));
      workers.back()->listen();
    }
  } catch (const std::exception& e) {
    spdlog::critical("cannot listen on {}:{}: {}", cfg.listen_host, cfg.listen_port, e.what());
    return 1;
  }
  for (auto& w : workers) shared.workers.push_back(w.get());

  std::unique_ptr<failover::node_monitor> monitor;
  std::unique_ptr<failover::coordinator> coordinator;
  if (cfg.monitor.enabled()) {
    auto* stats = shared.stats.get();
    monitor = std::make_unique<failover::node_monitor>(
        monitor_settings(cfg, *topology), topology, [&workers, stats](routing::topology_ptr t) {
          stats->node_health(*t);
          for (auto& w : workers) proxy::asio::post(w->io(), [w = w.get(), t] { w->set_topology(t); });
        });
    monitor->start();
    spdlog::info("node monitor probing {} node(s) every {} ms as {}", cfg.nodes.size(), cfg.monitor.interval.count(),
                 cfg.monitor.user);
    if (cfg.failover.enabled() || !cfg.coordination.etcd.empty()) {
      std::string primary;
      for (const auto& n : cfg.nodes)
        if (n.configured_role == routing::node_role::primary) primary = n.name;
      auto settings = coordinator_settings(cfg);
      settings.quiet = [stats = shared.stats.get()](const std::string& node) { return stats->servers_in_use(node) == 0; };
      coordinator = std::make_unique<failover::coordinator>(std::move(settings), *monitor, primary, shared.authority);
      if (!cfg.coordination.etcd.empty()) {
        shared.stats->watch_authority(shared.authority);
        coordinator->on_authority([stats = shared.stats.get()](failover::authority_clock::change c, std::uint64_t, const std::string&) {
          if (c == failover::authority_clock::change::lapsed) stats->authority_lapsed();
        });
      }
      coordinator->on_failover([stats = shared.stats.get()](const failover::candidate_choice& choice,
                                                            std::optional<std::int64_t> blind_ms) {
        stats->failover_decision(choice, blind_ms);
      });
      coordinator->on_fence([stats = shared.stats.get()](bool lifted) { stats->self_fence(lifted); });
      coordinator->start();
    }
  } else {
    spdlog::warn("no monitor configured: replicas are taken as healthy and caught up (configure monitor.user)");
  }

  if (coordinator) {
    coordinator->on_pause([&workers](bool paused) { pause_workers(workers, paused); });
  }
  // The admin console (database "meridian") and the admin API's SHOW tables.
  std::vector<proxy::worker*> worker_ptrs;
  for (auto& w : workers) worker_ptrs.push_back(w.get());
  proxy::server_console console(
      worker_ptrs, shared, coordinator.get(), monitor ? &monitor->io() : nullptr,
      proxy::server_console::hooks{[&] { return reload_config(config_path, shared, workers, monitor.get(), kept); },
                                   [&workers](bool paused) { pause_workers(workers, paused); },
                                   [&workers] {
                                     spdlog::info("SHUTDOWN from the console: draining");
                                     for (auto& w : workers) w->begin_shutdown();
                                   }});
  for (auto& w : workers) w->set_console(&console);
  std::unique_ptr<proxy::admin_server> admin;
  if (cfg.admin_port != 0) {
    // On the coordinator's thread when there is one: its handlers use the coordinator.
    auto& admin_io = monitor ? monitor->io() : workers.front()->io();
    admin = std::make_unique<proxy::admin_server>(admin_io, cfg.admin_token,
                                                  admin_routes(cfg, workers, coordinator.get(), console));
    try {
      admin->listen(cfg.admin_host, cfg.admin_port);
    } catch (const std::exception& e) {
      spdlog::critical("cannot serve the admin API on {}:{}: {}", cfg.admin_host, cfg.admin_port, e.what());
      return 1;
    }
    spdlog::info("admin API on http://{}:{}", cfg.admin_host, cfg.admin_port);
  }

  proxy::asio::signal_set signals(workers.front()->io(), SIGINT, SIGTERM);
  signals.async_wait([&](const proxy::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}: draining", sig);
    for (auto& w : workers) w->begin_shutdown();
  });

  proxy::asio::signal_set hangup(workers.front()->io(), SIGHUP);
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](const proxy::error_code& ec, int) {
      if (ec) return;
      (void)reload_config(config_path, shared, workers, monitor.get(), kept);
      await_hangup();
    });
  };
  await_hangup();

  spdlog::info("meridian listening on {}:{} (region {}, {} thread(s), {} node(s))", cfg.listen_host, cfg.listen_port,
               cfg.region, cfg.threads, cfg.nodes.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < workers.size(); ++i) threads.emplace_back([&, i] { workers[i]->run(); });
  workers.front()->run();
  for (auto& t : threads) t.join();
  if (admin) admin->close();
  if (monitor) monitor->stop();  // the coordinator runs on the monitor's thread: stopped with it
  coordinator.reset();
  spdlog::info("meridian stopped");
  return 0;
}
