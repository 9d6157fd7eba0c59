#pragma once
// PostgreSQL's md5 password scheme: stored secret "md5" + md5(password || user);
// the wire response to a 4-byte salt is "md5" + md5(hex(md5(password || user)) || salt).
#include <string>
#include <string_view>

namespace meridian::protocol {

[[nodiscard]] std::string md5_hex(std::string_view data);
[[nodiscard]] std::string md5_stored_secret(std::string_view password, std::string_view user);
// stored_secret is the "md5…" form of md5_stored_secret.
[[nodiscard]] std::string md5_response(std::string_view stored_secret, std::string_view salt);
[[nodiscard]] bool md5_verify(std::string_view stored_secret, std::string_view salt, std::string_view response);
[[nodiscard]] bool is_md5_secret(std::string_view secret);

}  // namespace meridian::protocol
