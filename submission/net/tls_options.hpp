// The TLS settings of truefrom's listeners, applied to an OpenSSL server context. Shared by
// the server (submission/app) and the handshake benchmark (contrib/bench), so that what the
// benchmark measures is what serves. Header-only; OpenSSL only.
// Thread-safety: call before the context is shared.
#pragma once

#include <openssl/ssl.h>

namespace truefrom::net {

/// The TLS 1.2 suites offered unless [tls] ciphers says otherwise, in the server's order:
/// forward-secret key exchange (ECDHE, DHE) with an AEAD cipher (GCM, ChaCha20-Poly1305)
/// only. No static-RSA key exchange (no forward secrecy) and no CBC (Lucky13 and its kin).
/// TLS 1.3's suites are all forward-secret AEAD: OpenSSL's default set stays.
inline constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

/// TLS 1.2 and 1.3 only (RFC 8996), the suites above in the server's order, no
/// renegotiation (a client's request is refused), no compression (CRIME), OpenSSL's
/// interoperability workarounds; record buffers given back while idle; one TLS 1.3 session
/// ticket; reads ahead; sends the certificate file's chain as it is.
inline void configure_server_tls(SSL_CTX* ctx) {
  SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_SINGLE_DH_USE | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx, kDefaultTls12Ciphers);
  // DHE's group: OpenSSL picks a safe one matching the certificate's strength.
  SSL_CTX_set_dh_auto(ctx, 1);
  // An idle TLS session gives its record buffers back (about 34 KiB per connection).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // One TLS 1.3 session ticket per handshake (OpenSSL sends two): enough for a mail client's
  // next connection to resume, and each ticket costs an encryption and a record.
  SSL_CTX_set_num_tickets(ctx, 1);
  // Read what the socket has (up to a record buffer) in one read(): a record's header and
  // body are otherwise two system calls. TlsSocket::read_some() asks OpenSSL before it waits.
  SSL_CTX_set_read_ahead(ctx, 1);
  // The chain sent is the certificate file's, as the admin wrote it. Without this, OpenSSL
  // tries to build one from the context's (empty) trust store in every handshake whose
  // certificate file has no intermediates: 15 us of X509_verify_cert per handshake here,
  // for nothing sent.
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
}

}  // namespace truefrom::net
