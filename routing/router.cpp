#include "routing/router.hpp"

namespace meridian::routing {

route_decision choose_node(const topology& topo, const route_request& /*request*/) {
  // Every statement goes to the primary until read/write splitting lands.
  return route_decision{topo.primary()};
}

}  // namespace meridian::routing
