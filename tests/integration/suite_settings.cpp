// Where this suite's sandbox is: compiled into each suite with its own definitions (ports,
// directory), the rest of the support code once for all. The same variables in the environment
// override them.
#include <cstdlib>
#include <string>

#include "support.hpp"

namespace meridian::testing {

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}
}  // namespace

int sandbox::pg_port(int region) { return env_int("MERIDIAN_PG_PORT", MERIDIAN_TEST_PG_PORT) + region; }
int sandbox::meridian_port(int region) { return env_int("MERIDIAN_PORT", MERIDIAN_TEST_PORT) + region; }
int sandbox::metrics_port(int region) { return env_int("MERIDIAN_METRICS_PORT", MERIDIAN_TEST_METRICS_PORT) + region; }
int sandbox::etcd_port(int region) { return env_int("MERIDIAN_ETCD_PORT", MERIDIAN_TEST_ETCD_PORT) + region; }
std::string sandbox::dir() {
  const char* v = std::getenv("MERIDIAN_SANDBOX_DIR");
  return v ? v : MERIDIAN_TEST_SANDBOX_DIR;
}
std::string sandbox::repo() {
  const char* v = std::getenv("MERIDIAN_REPO");
  return v ? v : MERIDIAN_TEST_REPO;
}
std::string sandbox::build_dir() { return MERIDIAN_TEST_BUILD_DIR; }
std::string sandbox::meridian_binary() { return MERIDIAN_TEST_BINARY; }
std::string sandbox::meridianctl_binary() { return MERIDIAN_TEST_CTL; }

}  // namespace meridian::testing
