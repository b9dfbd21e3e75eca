// RelayConnection: one connection of the relay client (relay_client.cpp) to a relay: the
// socket (plain, or TLS after STARTTLS), the watchdog that closes it when the timeout of
// what it waits for passes (RFC 5321 4.5.3.2: the connection, the greeting, each reply,
// the message), and the ClientSession whose bytes it moves (exchange()).
// Private to submission/relay.
// Thread-safety: used by one coroutine at a time, on the executor it arms the watchdog
// with; `cut`, `generation` and `armed_at` may be read from other threads (queue flush).
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "submission/relay/client_session.hpp"
#include "submission/relay/relay_client.hpp"  // RelayOptions

namespace truefrom::relay {

/// Milliseconds of the steady clock (RelayConnection::armed_at).
std::int64_t steady_ms();

struct RelayConnection {
  using Clock = std::chrono::steady_clock;
  /// What one read takes from the socket (replies are short; a pipelined group's are a few).
  static constexpr std::size_t kReadSize = 16 * 1024;

  RelayConnection(const boost::asio::any_io_executor& ex, boost::asio::ssl::context& ctx,
                  const RelayOptions& o, std::size_t host_index);

  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream;
  boost::asio::steady_timer timer;
  ClientSession session;
  std::size_t host = 0;  ///< index into RelayOptions::hosts
  bool tls = false;
  bool expired = false;                      ///< the watchdog closed the socket
  std::atomic<bool> cut{false};              ///< closed by RelayClient::cut_stuck (queue flush)
  std::atomic<std::uint64_t> generation{0};  ///< counts arm() and disarm()
  std::atomic<std::int64_t> armed_at{0};     ///< steady_ms() of the last arm(); 0: disarmed
  std::string waiting;                       ///< what the armed timeout waits for
  std::chrono::seconds armed_for{0};
  std::vector<char> input = std::vector<char>(kReadSize);
  std::string relay;  ///< host:port
  Clock::time_point idle_since;
  bool expiry_pending = false;  ///< the pool's idle timer runs for it (under the pool's mutex)

  /// Closes the socket if `timeout` passes before disarm() (or the next arm()); `what` names
  /// what it waits for in the error. The watchdog runs on `ex`, the executor using the
  /// socket; one of an earlier arm() whose timer fired late sees another generation and
  /// leaves the socket alone.
  void arm(const boost::asio::any_io_executor& ex, std::chrono::seconds timeout,
           const std::shared_ptr<RelayConnection>& self, std::string what);
  void disarm() {
    ++generation;
    armed_at = 0;
    timer.cancel();
  }
  void close() {
    boost::system::error_code ignored;
    disarm();
    stream.next_layer().close(ignored);
  }

  /// What a socket error says to an admin (a timeout or a cut named as such).
  std::string transport_error(const boost::system::error_code& ec) const;

  /// Moves bytes between the socket and the session until the session has an event other
  /// than NeedData. A socket error becomes a Failed event with the socket's words. Each wait
  /// has its phase's timeout (RFC 5321 4.5.3.2): the greeting, each reply to a command
  /// (`reply_timeout`), the message's write and the reply to its end (data); the timeout of
  /// a reply starts again when a whole reply came (bytes that do not end one do not count).
  /// `message_written` tells that the message went out (the relay may have it).
  boost::asio::awaitable<ClientEvent> exchange(const std::shared_ptr<RelayConnection>& self,
                                               const RelayOptions& o,
                                               std::chrono::seconds reply_timeout,
                                               bool& message_written);

 private:
  static boost::asio::awaitable<void> watchdog(std::shared_ptr<RelayConnection> self,
                                               std::uint64_t gen);
};

}  // namespace truefrom::relay
