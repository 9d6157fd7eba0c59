#include "proxy/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace meridian::proxy {

namespace {

std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

}  // namespace

std::string certificate_end_point_hash(X509* cert) {
  int md_nid = NID_undef;
  if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr)) return {};
  if (md_nid == NID_md5 || md_nid == NID_sha1) md_nid = NID_sha256;
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  if (!md) return {};
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert, md, hash, &len)) return {};
  return std::string(reinterpret_cast<const char*>(hash), len);
}

std::shared_ptr<const upstream_tls> make_upstream_tls(const server_tls_config& cfg) {
  if (cfg.sslmode == "disable") return nullptr;
  auto tls = std::make_shared<upstream_tls>();
  tls->mode = cfg.sslmode;
  SSL_CTX* ctx = tls->context.native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (cfg.sslmode == "verify-ca" || cfg.sslmode == "verify-full") {
    if (SSL_CTX_load_verify_locations(ctx, cfg.root_cert.c_str(), nullptr) != 1)
      throw config_error("sslrootcert: cannot load " + cfg.root_cert + ": " + openssl_error());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // encryption only, as libpq's require
  }
  return tls;
}

std::shared_ptr<const server_tls> make_server_tls(const tls_config& cfg) {
  auto tls = std::make_shared<server_tls>();
  SSL_CTX* ctx = tls->context.native_handle();
  ERR_clear_error();
  const int min = cfg.min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  if (!SSL_CTX_set_min_proto_version(ctx, min)) throw config_error("tls.min_version: " + openssl_error());
  // No renegotiation, no compression, a fresh key per session.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert_file.c_str()) != 1)
    throw config_error("tls.cert: cannot load " + cfg.cert_file + ": " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    throw config_error("tls.key: cannot load " + cfg.key_file + ": " + openssl_error());
  if (SSL_CTX_check_private_key(ctx) != 1) throw config_error("tls.key does not match tls.cert: " + openssl_error());
  tls->end_point_hash = certificate_end_point_hash(SSL_CTX_get0_certificate(ctx));
  if (tls->end_point_hash.empty()) throw config_error("tls.cert: cannot hash the certificate for channel binding");
  return tls;
}

std::shared_ptr<const tls_material> load_tls_material(const config& cfg) {
  auto m = std::make_shared<tls_material>();
  if (cfg.tls.client != client_tls::disable) m->client = make_server_tls(cfg.tls);
  for (const auto& t : cfg.node_tls) m->nodes.push_back(make_upstream_tls(t));
  return m;
}

}  // namespace meridian::proxy
