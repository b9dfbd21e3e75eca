#include "submission/net/tls_socket.hpp"

#include <openssl/err.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

namespace truefrom::net {

namespace asio = boost::asio;
using asio::ip::tcp;

TlsSocket::TlsSocket(tcp::socket& socket, SSL_CTX* ctx) : socket_(socket), ssl_(SSL_new(ctx)) {
  boost::system::error_code ignored;
  socket_.native_non_blocking(true, ignored);
  if (ssl_) {
    SSL_set_fd(ssl_, socket_.native_handle());
    SSL_set_accept_state(ssl_);
  }
}

TlsSocket::~TlsSocket() { SSL_free(ssl_); }

asio::awaitable<bool> TlsSocket::wait_for(int result, boost::system::error_code& ec,
                                          std::string* why) {
  const int err = SSL_get_error(ssl_, result);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    co_await socket_.async_wait(
        err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
        asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }
  if (err == SSL_ERROR_ZERO_RETURN) {
    ec = asio::error::eof;  // the peer's close_notify
  } else if (err == SSL_ERROR_SYSCALL && errno != 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
  } else if (err == SSL_ERROR_SYSCALL) {
    ec = asio::error::eof;  // closed without close_notify
    if (why) *why = "stream truncated";
  } else {
    ec = asio::error::connection_aborted;
    if (why) {
      char text[256];
      ERR_error_string_n(ERR_peek_last_error(), text, sizeof text);
      *why = text;
    }
  }
  ERR_clear_error();
  co_return false;
}

asio::awaitable<std::string> TlsSocket::handshake() {
  if (!ssl_) co_return "cannot create a TLS session (out of memory?)";
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return std::string{};
    boost::system::error_code ec;
    std::string why;
    if (!co_await wait_for(r, ec, &why)) co_return why.empty() ? ec.message() : why;
  }
}

asio::awaitable<std::size_t> TlsSocket::read_some(char* data, std::size_t size,
                                                  boost::system::error_code& ec) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, data, size, &n);
    if (r == 1) co_return n;
    if (!co_await wait_for(r, ec, nullptr)) co_return 0;
  }
}

asio::awaitable<void> TlsSocket::write_all(const char* data, std::size_t size,
                                           boost::system::error_code& ec) {
  while (size > 0) {
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    // A retried write passes the same buffer, as OpenSSL requires.
    const int r = SSL_write_ex(ssl_, data, size, &n);
    if (r == 1) {
      data += n;
      size -= n;
      continue;
    }
    if (!co_await wait_for(r, ec, nullptr)) co_return;
  }
}

}  // namespace truefrom::net
