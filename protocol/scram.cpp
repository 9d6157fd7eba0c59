#include "protocol/scram.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <vector>

namespace meridian::protocol {

namespace {

// A server asking for more PBKDF2 iterations is refused: the salted password is computed on the
// worker's thread, and a million iterations already hold it for about half a second (250 times
// PostgreSQL's default of 4,096).
constexpr int max_iterations = 1'000'000;

sha256_digest hmac(const unsigned char* key, std::size_t key_len, std::string_view data) {
  sha256_digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out.data(), &len);
  return out;
}

sha256_digest hmac(const sha256_digest& key, std::string_view data) { return hmac(key.data(), key.size(), data); }

sha256_digest sha256(const sha256_digest& in) {
  sha256_digest out{};
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

sha256_digest salted_password(std::string_view password, std::string_view salt, int iterations) {
  sha256_digest out{};
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                    EVP_sha256(), static_cast<int>(out.size()), out.data());
  return out;
}

std::string_view as_view(const sha256_digest& d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

std::string random_nonce() {
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof raw) != 1) return {};
  return base64_encode({reinterpret_cast<const char*>(raw), sizeof raw});
}

// Splits "a=x,b=y,…" into attributes in order; values may contain '=' but not ','.
struct attribute {
  char name;
  std::string_view value;
};

std::optional<std::vector<attribute>> split_attributes(std::string_view text) {
  std::vector<attribute> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    if (item.size() < 2 || item[1] != '=') return std::nullopt;
    out.push_back({item[0], item.substr(2)});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

bool printable_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char ch : nonce) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

bool decode_digest(std::string_view b64, sha256_digest& out) {
  auto raw = base64_decode(b64);
  if (!raw || raw->size() != out.size()) return false;
  std::copy(raw->begin(), raw->end(), reinterpret_cast<char*>(out.data()));
  return true;
}

}  // namespace

std::string base64_encode(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
          c == '='))
      return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  auto n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::optional<scram_verifier> scram_verifier::parse(std::string_view text) {
  constexpr std::string_view prefix = "SCRAM-SHA-256$";
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  text.remove_prefix(prefix.size());
  auto colon = text.find(':');
  auto dollar = text.find('$');
  if (colon == std::string_view::npos || dollar == std::string_view::npos || colon > dollar) return std::nullopt;
  scram_verifier v;
  auto iter_text = text.substr(0, colon);
  auto [p, ec] = std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), v.iterations);
  if (ec != std::errc{} || p != iter_text.data() + iter_text.size() || v.iterations <= 0) return std::nullopt;
  auto salt = base64_decode(text.substr(colon + 1, dollar - colon - 1));
  if (!salt || salt->empty()) return std::nullopt;
  v.salt = std::move(*salt);
  auto keys = text.substr(dollar + 1);
  auto kc = keys.find(':');
  if (kc == std::string_view::npos) return std::nullopt;
  if (!decode_digest(keys.substr(0, kc), v.stored_key) || !decode_digest(keys.substr(kc + 1), v.server_key))
    return std::nullopt;
  return v;
}

scram_verifier scram_verifier::from_password(std::string_view password, std::string_view salt, int iterations) {
  scram_verifier v;
  v.iterations = iterations;
  v.salt = std::string(salt);
  auto sp = salted_password(password, salt, iterations);
  v.stored_key = sha256(hmac(sp, "Client Key"));
  v.server_key = hmac(sp, "Server Key");
  return v;
}

std::string scram_verifier::to_string() const {
  return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" + base64_encode(salt) + "$" +
         base64_encode(as_view(stored_key)) + ":" + base64_encode(as_view(server_key));
}

scram_server::scram_server(scram_verifier verifier, std::string server_nonce, std::optional<std::string> channel_binding)
    : verifier_(std::move(verifier)),
      server_nonce_(server_nonce.empty() ? random_nonce() : std::move(server_nonce)),
      channel_binding_(std::move(channel_binding)) {}

tl::expected<std::string, scram_failure> scram_server::client_first(std::string_view message, bool plus) {
  auto bad = tl::unexpected(scram_failure::malformed);
  auto unbound = tl::unexpected(scram_failure::channel_binding);
  // gs2-header: cbind-flag "," [authzid] ","; cbind-flag is "n", "y" or "p=<type>".
  if (message.empty()) return bad;
  const auto flag_end = message.find(',');
  if (flag_end == std::string_view::npos) return bad;
  const auto flag = message.substr(0, flag_end);
  if (flag == "p=tls-server-end-point") {
    if (!plus || !channel_binding_) return unbound;
    bound_ = true;
  } else if (flag.starts_with("p=")) {
    return unbound;  // a binding type we do not support
  } else if (flag == "n" || flag == "y") {
    if (plus) return bad;  // SCRAM-SHA-256-PLUS without binding
    // "y": the client could bind but believes the server cannot. Over TLS we offered it, so
    // something in between removed the offer.
    if (flag == "y" && channel_binding_) return unbound;
  } else {
    return bad;
  }
  const auto second_comma = message.find(',', flag_end + 1);
  if (second_comma != flag_end + 1) return bad;  // authzid is not supported, as in PostgreSQL
  gs2_header_ = std::string(message.substr(0, second_comma + 1));
  auto bare = message.substr(second_comma + 1);
  auto attrs = split_attributes(bare);
  if (!attrs || attrs->size() < 2) return bad;
  if ((*attrs)[0].name != 'n' || (*attrs)[1].name != 'r') return bad;  // n= may be empty; reserved 'm' refused
  auto client_nonce = (*attrs)[1].value;
  if (!printable_nonce(client_nonce) || server_nonce_.empty()) return bad;
  client_first_bare_ = std::string(bare);
  combined_nonce_ = std::string(client_nonce) + server_nonce_;
  server_first_ = "r=" + combined_nonce_ + ",s=" + base64_encode(verifier_.salt) + ",i=" +
                  std::to_string(verifier_.iterations);
  return server_first_;
}

tl::expected<std::string, scram_failure> scram_server::client_final(std::string_view message) {
  auto bad = tl::unexpected(scram_failure::malformed);
  auto proof_pos = message.rfind(",p=");
  if (proof_pos == std::string_view::npos || server_first_.empty()) return bad;
  auto without_proof = message.substr(0, proof_pos);
  auto attrs = split_attributes(without_proof);
  if (!attrs || attrs->size() < 2 || (*attrs)[0].name != 'c' || (*attrs)[1].name != 'r') return bad;
  auto binding = base64_decode((*attrs)[0].value);
  if (!binding) return bad;
  const std::string expected = bound_ ? gs2_header_ + *channel_binding_ : gs2_header_;
  if (binding->size() != expected.size() || CRYPTO_memcmp(binding->data(), expected.data(), expected.size()) != 0)
    return bound_ ? tl::unexpected(scram_failure::channel_binding) : bad;
  if ((*attrs)[1].value != combined_nonce_) return bad;
  sha256_digest proof{};
  if (!decode_digest(message.substr(proof_pos + 3), proof)) return bad;

  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  auto client_signature = hmac(verifier_.stored_key, auth_message);
  sha256_digest client_key{};
  for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] = proof[i] ^ client_signature[i];
  auto computed = sha256(client_key);
  if (CRYPTO_memcmp(computed.data(), verifier_.stored_key.data(), computed.size()) != 0)
    return tl::unexpected(scram_failure::wrong_proof);
  auto server_signature = hmac(verifier_.server_key, auth_message);
  proven_ = scram_keys{client_key, verifier_.server_key};
  return "v=" + base64_encode(as_view(server_signature));
}

scram_client::scram_client(std::string password, std::string user, std::string client_nonce,
                           std::optional<std::string> channel_binding)
    : password_(std::move(password)),
      user_(std::move(user)),
      client_nonce_(client_nonce.empty() ? random_nonce() : std::move(client_nonce)),
      channel_binding_(std::move(channel_binding)) {}

scram_client::scram_client(scram_keys keys, std::string client_nonce)
    : keys_(keys), client_nonce_(client_nonce.empty() ? random_nonce() : std::move(client_nonce)) {}

std::string scram_client::client_first() {
  gs2_header_ = channel_binding_ ? "p=tls-server-end-point,," : "n,,";
  client_first_bare_ = "n=" + user_ + ",r=" + client_nonce_;
  return gs2_header_ + client_first_bare_;
}

result<std::string> scram_client::server_first(std::string_view message) {
  auto attrs = split_attributes(message);
  if (!attrs || attrs->size() < 3 || (*attrs)[0].name != 'r' || (*attrs)[1].name != 's' || (*attrs)[2].name != 'i')
    return violation("malformed SCRAM server-first-message");
  auto nonce = (*attrs)[0].value;
  if (nonce.size() <= client_nonce_.size() || nonce.substr(0, client_nonce_.size()) != client_nonce_ ||
      !printable_nonce(nonce))
    return violation("SCRAM server nonce does not extend the client nonce");
  auto salt = base64_decode((*attrs)[1].value);
  if (!salt || salt->empty()) return violation("malformed SCRAM salt");
  int iterations = 0;
  auto it = (*attrs)[2].value;
  auto [p, ec] = std::from_chars(it.data(), it.data() + it.size(), iterations);
  if (ec != std::errc{} || p != it.data() + it.size() || iterations <= 0 || iterations > max_iterations)
    return violation("invalid SCRAM iteration count");

  sha256_digest client_key{}, server_key{};
  if (keys_) {
    client_key = keys_->client_key;
    server_key = keys_->server_key;
  } else {
    auto sp = salted_password(password_, *salt, iterations);
    client_key = hmac(sp, "Client Key");
    server_key = hmac(sp, "Server Key");
  }
  auto stored_key = sha256(client_key);
  const std::string without_proof =
      "c=" + base64_encode(gs2_header_ + channel_binding_.value_or(std::string())) + ",r=" + std::string(nonce);
  const std::string auth_message = client_first_bare_ + "," + std::string(message) + "," + without_proof;
  auto client_signature = hmac(stored_key, auth_message);
  sha256_digest proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ client_signature[i];
  server_signature_ = hmac(server_key, auth_message);
  return without_proof + ",p=" + base64_encode(as_view(proof));
}

bool scram_client::server_final(std::string_view message) const {
  if (message.substr(0, 2) != "v=") return false;
  sha256_digest got{};
  if (!decode_digest(message.substr(2), got)) return false;
  return CRYPTO_memcmp(got.data(), server_signature_.data(), got.size()) == 0;
}

}  // namespace meridian::protocol
