// The client side of one SMTP session, for the benchmark tools: TCP connect, replies
// (RFC 5321 4.2, multi-line), commands, message bodies, STARTTLS (RFC 3207) and implicit TLS
// (RFC 8314). Every wait is bounded by a timeout (a watchdog closes the socket).
//
// Certificates are not verified (benchmarks run against self-signed servers), but every
// handshake is a full one: no session is ever offered for resumption, as with real clients
// coming from different hosts.
//
// One SmtpClient serves many sessions in turn (open() starts a new one). It must outlive
// the io_context's run(): its watchdog's handler refers to it.
// Thread-safety: one client is used by one coroutine on one io_context.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace truefrom::bench {

/// One reply: its code and its lines' texts joined with " / ".
struct SmtpReply {
  int code = 0;
  std::string text;

  bool positive() const { return code >= 200 && code < 400; }
  /// "550 5.7.1 text" on one line, for reports.
  std::string to_string() const;
};

/// A session cannot go on: I/O failure, timeout, closed connection or malformed reply.
/// what() says what failed and in which step ("timeout after 30 s waiting for the reply
/// to DATA").
class SessionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A client TLS context for benchmarks: TLS 1.2 or newer, no certificate verification, no
/// session cache and no tickets (every connection makes a full handshake).
boost::asio::ssl::context make_client_tls_context();

class SmtpClient {
 public:
  SmtpClient(const boost::asio::any_io_executor& executor, boost::asio::ssl::context& tls,
             std::chrono::milliseconds timeout);
  SmtpClient(const SmtpClient&) = delete;
  SmtpClient& operator=(const SmtpClient&) = delete;

  /// Closes any previous session and connects to `endpoint`; with `implicit_tls` the TLS
  /// handshake follows at once (RFC 8314). Throws SessionError.
  boost::asio::awaitable<void> open(const boost::asio::ip::tcp::endpoint& endpoint,
                                    bool implicit_tls);
  /// Reads one complete reply. `step` names what it answers, for error texts.
  boost::asio::awaitable<SmtpReply> read_reply(std::string_view step);
  /// Sends `line` and CRLF, then reads the reply. `step` names the command for error texts
  /// (a command may carry secrets, e.g. AUTH PLAIN, so it is never quoted).
  boost::asio::awaitable<SmtpReply> command(std::string_view line, std::string_view step);
  /// Writes `data` whole (a command or a whole message with its final ".").
  boost::asio::awaitable<void> write(std::string_view data, std::string_view step);
  /// After a 220 to STARTTLS: refuses to go on when the server sent more bytes before the
  /// handshake (they would be plaintext trusted as if they came over TLS), then handshakes.
  boost::asio::awaitable<void> start_tls();

  bool tls_active() const { return tls_active_; }
  /// Closes the connection (if any); the client can open() again.
  void close();
  /// Closes and stops the watchdog, so that the io_context can run out of work.
  void shutdown();
  /// Stops watching the time: an idle connection may stay open as long as it likes.
  void disarm() { armed_ = false; }

 private:
  void arm();
  void watch();
  [[noreturn]] void fail(std::string_view step, const boost::system::error_code& ec);

  boost::asio::any_io_executor executor_;
  boost::asio::ssl::context& tls_;
  std::chrono::milliseconds timeout_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> stream_;
  boost::asio::steady_timer watchdog_;
  std::chrono::steady_clock::time_point deadline_;
  bool armed_ = false;
  bool waiting_ = false;
  bool stopped_ = false;
  bool timed_out_ = false;
  bool tls_active_ = false;
  std::string input_;
  std::string output_;
};

/// RFC 4648 base64, for AUTH PLAIN (RFC 4616).
std::string base64(std::string_view bytes);

}  // namespace truefrom::bench
