#include "proxy/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

namespace meridian::proxy {

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

namespace {

// %J: the message as a JSON string's contents.
class json_message final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const auto escaped = json_escape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_message>(); }
};

}  // namespace

void configure_logging(const std::string& level, bool json, const std::string& region) {
  spdlog::set_level(spdlog::level::from_str(level));
  trace_logging.store(spdlog::get_level() <= spdlog::level::trace, std::memory_order_relaxed);
  if (!json) {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [" + region + "] %v");
    return;
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<json_message>('J').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","region":")" +
                                                     json_escape(region) + R"(","message":"%J"})");
  spdlog::set_formatter(std::move(formatter));
}

}  // namespace meridian::proxy
