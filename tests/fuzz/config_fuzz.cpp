// Configuration text: any input either loads or is refused with a config_error; nothing else
// may escape, crash or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  try {
    (void)meridian::proxy::load_config_string(yaml, "/nonexistent");
  } catch (const meridian::proxy::config_error&) {
  }
  return 0;
}
