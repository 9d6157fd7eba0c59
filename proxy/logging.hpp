#pragma once
// Log output: spdlog, as text lines or one JSON object per line (log.format), with the region
// in every line. Messages carry the client's connection id ([c42]) where there is one.
#include <atomic>
#include <string>
#include <string_view>

namespace meridian::proxy {

// Sets level and format for every logger; safe to call again on reload.
void configure_logging(const std::string& level, bool json, const std::string& region);

// Whether trace lines are wanted (log.level trace), as configure_logging last set it. The data
// path asks per message; spdlog's own check goes through its registry's default logger (a
// function-local static and two calls), which costs more there than the relaying around it.
inline std::atomic<bool> trace_logging{false};
[[nodiscard]] inline bool tracing() { return trace_logging.load(std::memory_order_relaxed); }

// `text` escaped for a JSON string (quotes, backslashes, control characters).
[[nodiscard]] std::string json_escape(std::string_view text);

}  // namespace meridian::proxy
