// Server-side TLS on a connected TCP socket, OpenSSL reading and writing the socket itself
// (a socket BIO on the non-blocking descriptor) while Asio only waits for readiness. Unlike
// asio::ssl::stream, which keeps two 17 KiB staging buffers and a 2 x 17 KiB BIO pair per
// connection for its whole life, an idle session holds only OpenSSL's state: with
// SSL_MODE_RELEASE_BUFFERS its record buffers are freed between records.
// Cancelling or closing the socket ends a pending operation with an error.
// Thread-safety: one connection's strand at a time, like the socket.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string>

namespace truefrom::net {

class TlsSocket {
 public:
  /// `socket` outlives this object and is made non-blocking.
  TlsSocket(boost::asio::ip::tcp::socket& socket, SSL_CTX* ctx);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  SSL* native_handle() { return ssl_; }
  /// Empty on success; otherwise the reason (for the log).
  boost::asio::awaitable<std::string> handshake();
  /// Reads at least one octet; 0 with `ec` set at the end of the stream or on an error.
  boost::asio::awaitable<std::size_t> read_some(char* data, std::size_t size,
                                                boost::system::error_code& ec);
  boost::asio::awaitable<void> write_all(const char* data, std::size_t size,
                                         boost::system::error_code& ec);

 private:
  // Waits as OpenSSL asked after `result`; false (with ec or `why`) when it cannot go on.
  boost::asio::awaitable<bool> wait_for(int result, boost::system::error_code& ec,
                                        std::string* why);

  boost::asio::ip::tcp::socket& socket_;
  SSL* ssl_ = nullptr;
};

}  // namespace truefrom::net
