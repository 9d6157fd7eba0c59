// meridian: the region-aware PostgreSQL proxy.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "proxy/asio.hpp"
#include "proxy/config.hpp"
#include "proxy/worker.hpp"

namespace {

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
  if (check_only) {
    std::cout << "configuration " << config_path << " is valid\n";
    return 0;
  }

  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [" + cfg.region + "] %v");
  std::signal(SIGPIPE, SIG_IGN);

  proxy::shared_state shared;
  shared.cfg = std::make_shared<const proxy::config>(cfg);
  auto topology = routing::make_configured_topology(cfg.nodes);
  shared.stats = std::make_unique<proxy::metrics>(*topology);
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

  proxy::asio::signal_set signals(workers.front()->io(), SIGINT, SIGTERM);
  signals.async_wait([&](const proxy::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}: draining", sig);
    for (auto& w : workers) w->begin_shutdown();
  });

  spdlog::info("meridian listening on {}:{} (region {}, {} thread(s), {} node(s))", cfg.listen_host, cfg.listen_port,
               cfg.region, cfg.threads, cfg.nodes.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < workers.size(); ++i) threads.emplace_back([&, i] { workers[i]->run(); });
  workers.front()->run();
  for (auto& t : threads) t.join();
  spdlog::info("meridian stopped");
  return 0;
}
