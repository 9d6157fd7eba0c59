#include "protocol/md5.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace meridian::protocol {

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 0xf]);
  }
  return out;
}

std::string md5_stored_secret(std::string_view password, std::string_view user) {
  std::string input(password);
  input.append(user);
  return "md5" + md5_hex(input);
}

std::string md5_response(std::string_view stored_secret, std::string_view salt) {
  std::string input(stored_secret.substr(3));
  input.append(salt);
  return "md5" + md5_hex(input);
}

bool is_md5_secret(std::string_view secret) {
  if (secret.size() != 35 || secret.substr(0, 3) != "md5") return false;
  for (char c : secret.substr(3))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool md5_verify(std::string_view stored_secret, std::string_view salt, std::string_view response) {
  if (!is_md5_secret(stored_secret)) return false;
  auto expected = md5_response(stored_secret, salt);
  return expected.size() == response.size() && CRYPTO_memcmp(expected.data(), response.data(), expected.size()) == 0;
}

}  // namespace meridian::protocol
