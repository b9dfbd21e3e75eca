#include "submission/app/tls_context.hpp"

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <cstdio>

#include "submission/net/tls_options.hpp"
#include "submission/runtime/log.hpp"

namespace truefrom::app {

std::unique_ptr<boost::asio::ssl::context> make_tls_context(const Config& c, std::string& error) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  net::configure_server_tls(native);
  if (!c.tls_ciphers.empty() && SSL_CTX_set_cipher_list(native, c.tls_ciphers.c_str()) != 1) {
    error = "[tls] ciphers \"" + c.tls_ciphers +
            "\" names no TLS 1.2 cipher this OpenSSL offers (see `openssl ciphers -v "
            "'LIST'`; the default is " +
            net::kDefaultTls12Ciphers + ")";
    return nullptr;
  }
  if (!c.tls_ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(native, c.tls_ciphersuites.c_str()) != 1) {
    error = "[tls] ciphersuites \"" + c.tls_ciphersuites +
            "\" is not a list of TLS 1.3 suites this OpenSSL knows (e.g. "
            "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256)";
    return nullptr;
  }
  if (c.tls_min_version != 0) SSL_CTX_set_min_proto_version(native, c.tls_min_version);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(c.certificate.string(), ec);
  if (ec) {
    error = "cannot load [tls] certificate " + c.certificate.string() + ": " + ec.message() +
            " (it must be a PEM file with the server certificate first)";
    return nullptr;
  }
  ctx->use_private_key_file(c.private_key.string(), ssl::context::pem, ec);
  if (ec) {
    error = ec.message().find("key values mismatch") != std::string::npos
                ? "[tls] private_key " + c.private_key.string() + " does not match certificate " +
                      c.certificate.string() + " (give the key the certificate was made for)"
                : "cannot load [tls] private_key " + c.private_key.string() + ": " + ec.message();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    error = "[tls] private_key " + c.private_key.string() + " does not match certificate " +
            c.certificate.string();
    return nullptr;
  }
  // Read once, at start (as root before the privilege drop): nobody else needs to read it.
  struct stat st {};
  if (::stat(c.private_key.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    runtime::log_warning("[tls] private_key " + c.private_key.string() + " has mode " + mode +
                         ": other users can read it; run: chmod 600 " + c.private_key.string());
  }
  return ctx;
}

}  // namespace truefrom::app
