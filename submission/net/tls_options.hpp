// The TLS settings of truefrom's listeners, applied to an OpenSSL server context. Shared by
// the server (submission/app) and the handshake benchmark (contrib/bench), so that what the
// benchmark measures is what serves. Header-only; OpenSSL only.
// Thread-safety: call before the context is shared.
#pragma once

#include <openssl/ssl.h>

namespace truefrom::net {

/// TLS 1.2 and 1.3 only (RFC 8996), no renegotiation, no compression (CRIME), OpenSSL's
/// interoperability workarounds; record buffers given back while idle; one TLS 1.3 session
/// ticket; reads ahead; sends the certificate file's chain as it is.
inline void configure_server_tls(SSL_CTX* ctx) {
  SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_SINGLE_DH_USE | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_COMPRESSION);
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
