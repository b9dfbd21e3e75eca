// The listeners and the I/O threads: accepts connections on the STARTTLS and implicit-TLS
// endpoints, bounds concurrent sessions, runs one Connection per client on its own strand,
// and stops gracefully on SIGTERM/SIGINT (every session gets 421, then the threads end).
// Thread-safety: construct, listen() and run() from one thread; stop() from any.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "submission/net/connection.hpp"

namespace truefrom::net {

class Server {
 public:
  /// `io` outlives the server; run() runs it.
  Server(boost::asio::io_context& io, ConnectionContext context, std::size_t max_connections);
  ~Server();

  /// Replaces the sessions' context; before run(). The listeners can so be bound before
  /// the rest is built (as root, before the privilege drop).
  void set_context(ConnectionContext context) { context_ = std::move(context); }
  /// Binds host:port. On failure returns false with a message.
  bool listen(const std::string& host, std::uint16_t port, bool implicit_tls, std::string& error);
  /// Serves on `threads` I/O threads until SIGTERM/SIGINT or stop(); returns when all
  /// sessions have ended (or after a grace period).
  void run(unsigned threads);
  void stop();
  /// Called once when the server starts to stop (on the I/O loop), before the sessions end.
  void set_on_stopping(std::function<void()> f) { on_stopping_ = std::move(f); }

 private:
  struct Listener;
  boost::asio::awaitable<void> accept_loop(Listener& listener);
  bool admit(Listener& listener, boost::asio::ip::tcp::socket& socket,
             const policy::IpAddress& client);
  static void refuse(boost::asio::ip::tcp::socket socket, bool implicit_tls,
                     const smtp::Reply& reply);
  static std::string describe(const boost::asio::ip::tcp::socket& socket);
  void forget(const std::shared_ptr<Connection>& c);

  boost::asio::io_context& io_;
  // Registered at construction: a SIGTERM that comes while the rest starts (the ports
  // already accept) waits for run() and stops the server then, instead of killing it.
  boost::asio::signal_set signals_;
  // SIGHUP (a terminal closed, an admin's reload): answered with a log line, never the
  // default action (which would end the server and orphan its embedded PostgreSQL).
  boost::asio::signal_set hangups_;
  void wait_for_hangup();
  std::function<void()> on_stopping_;
  ConnectionContext context_;
  std::size_t max_connections_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::mutex mutex_;
  std::set<std::shared_ptr<Connection>> connections_;
  bool stopping_ = false;
  // Giving memory back after a burst: the most connections since the last trim.
  std::size_t peak_since_trim_ = 0;
  // Shared with the trim job, which may outlive the server at shutdown.
  std::shared_ptr<std::atomic<bool>> trimming_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace truefrom::net
