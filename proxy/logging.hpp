#pragma once
// Log output: spdlog, as text lines or one JSON object per line (log.format), with the region
// in every line. Messages carry the client's connection id ([c42]) where there is one.
#include <string>
#include <string_view>

namespace meridian::proxy {

// Sets level and format for every logger; safe to call again on reload.
void configure_logging(const std::string& level, bool json, const std::string& region);

// `text` escaped for a JSON string (quotes, backslashes, control characters).
[[nodiscard]] std::string json_escape(std::string_view text);

}  // namespace meridian::proxy
