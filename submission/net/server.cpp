#include "submission/net/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <thread>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "submission/policy/temporary_failures.hpp"
#include "submission/runtime/log.hpp"

namespace truefrom::net {

using runtime::log_error;
using runtime::log_info;

using runtime::log_warning;
namespace {
namespace asio = boost::asio;
using asio::ip::tcp;
constexpr std::chrono::seconds kShutdownGrace{15};
// Memory goes back to the system after the session count fell by at least this many.
constexpr std::size_t kTrimAfterDrop = 256;
}  // namespace

struct Server::Listener {
  explicit Listener(asio::io_context& io) : acceptor(io) {}
  tcp::acceptor acceptor;
  bool implicit_tls = false;
  std::string name;
};

Server::Server(asio::io_context& io, ConnectionContext context, std::size_t max_connections)
    : io_(io),
      signals_(io, SIGINT, SIGTERM),
      hangups_(io, SIGHUP),
      context_(std::move(context)),
      max_connections_(max_connections) {}

Server::~Server() = default;

bool Server::listen(const std::string& host, std::uint16_t port, bool implicit_tls,
                    std::string& error) {
  auto l = std::make_unique<Listener>(io_);
  l->implicit_tls = implicit_tls;
  l->name = host + ":" + std::to_string(port) + (implicit_tls ? " (implicit TLS)" : " (STARTTLS)");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    error = "cannot listen on " + l->name + ": \"" + host + "\" is not an IP address";
    return false;
  }
  const tcp::endpoint ep(address, port);
  l->acceptor.open(ep.protocol(), ec);
  if (!ec) l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) l->acceptor.bind(ep, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error =
        "cannot listen on " + l->name + ": " + ec.message() +
        (ec == asio::error::address_in_use ? " (another server uses this port?)" : "") +
        (ec == asio::error::access_denied ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                                          : "");
    return false;
  }
  log_info("listening on " + l->name);
  listeners_.push_back(std::move(l));
  return true;
}

void Server::forget(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(mutex_);
  connections_.erase(c);
  if (stopping_ && connections_.empty()) io_.stop();
  // After a burst (thousands of sessions, tens of KiB each with TLS) the allocator keeps the
  // freed memory: hand it back to the system once the count has at least halved, by a few
  // hundred sessions. malloc_trim walks every arena (milliseconds for a large heap): on the
  // workers.
  const std::size_t now = connections_.size();
  if (peak_since_trim_ >= now + kTrimAfterDrop && now <= peak_since_trim_ / 2 && context_.workers &&
      !trimming_->exchange(true)) {
    peak_since_trim_ = now;
    asio::post(*context_.workers, [flag = trimming_] {
#ifdef __GLIBC__
      ::malloc_trim(0);
#endif
      *flag = false;
    });
  }
}

// A refused connection: on a STARTTLS port the reply is written (421, then the socket
// closes); on an implicit-TLS port there is no TLS session to speak in, so it just closes.
void Server::refuse(tcp::socket socket, bool implicit_tls, const smtp::Reply& reply) {
  auto s = std::make_shared<tcp::socket>(std::move(socket));
  if (implicit_tls) {
    boost::system::error_code ec;
    s->close(ec);
    return;
  }
  auto text = std::make_shared<std::string>(reply.serialize());
  asio::async_write(*s, asio::buffer(*text),
                    [s, text](const boost::system::error_code&, std::size_t) {
                      boost::system::error_code ec;
                      s->shutdown(tcp::socket::shutdown_both, ec);
                      s->close(ec);
                    });
}

std::string Server::describe(const tcp::socket& socket) {
  boost::system::error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  return ec ? std::string("unknown") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

// The abuse controls at connect: a network blocked by login throttling, or over its
// connection limits, is refused with 421 before any session state exists.
bool Server::admit(Listener& listener, tcp::socket& socket, const policy::IpAddress& client) {
  const auto now = std::chrono::steady_clock::now();
  if (context_.throttle) {
    const auto gate = context_.throttle->check(client, now);
    if (gate.blocked) {
      const auto minutes =
          std::chrono::duration_cast<std::chrono::minutes>(gate.retry_after).count() + 1;
      log_warning("throttle: refused connection from " + describe(socket) + ": network " +
                  policy::client_network(client) + " is blocked (" + std::to_string(gate.failures) +
                  " failed logins), " + std::to_string(minutes) + " minute(s) left");
      refuse(std::move(socket), listener.implicit_tls,
             policy::temporary::network_blocked_at_connect(minutes));
      return false;
    }
  }
  if (context_.connection_limits) {
    const std::string why = context_.connection_limits->admit(client, now);
    if (!why.empty()) {
      log_warning("limits: refused connection from " + describe(socket) + ": " + why);
      refuse(std::move(socket), listener.implicit_tls,
             policy::temporary::too_many_connections(true));
      return false;
    }
  }
  return true;
}

asio::awaitable<void> Server::accept_loop(Listener& listener) {
  for (;;) {
    boost::system::error_code ec;
    // One strand per connection: its socket's and its coroutine's.
    auto strand = asio::make_strand(io_);
    tcp::socket socket = co_await listener.acceptor.async_accept(
        strand, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !listener.acceptor.is_open()) co_return;
      log_warning("accept on " + listener.name + ": " + ec.message());
      continue;
    }
    // Every reply is written whole; Nagle would only hold the next one back until the
    // client's delayed ACK (tens of milliseconds per exchange).
    socket.set_option(tcp::no_delay(true), ec);
    std::optional<policy::IpAddress> client;
    {
      const auto ep = socket.remote_endpoint(ec);
      if (!ec) client = policy::parse_ip(ep.address().to_string());
    }
    if (client && !admit(listener, socket, *client)) continue;
    std::shared_ptr<Connection> conn;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        if (client && context_.connection_limits) context_.connection_limits->release(*client);
        co_return;
      }
      if (connections_.size() >= max_connections_) {
        if (client && context_.connection_limits) context_.connection_limits->release(*client);
        log_warning("refused connection from " + describe(socket) + ": " +
                    std::to_string(connections_.size()) +
                    " sessions open ([server] max_connections)");
        refuse(std::move(socket), listener.implicit_tls,
               policy::temporary::too_many_connections(false));
        continue;
      }
      conn =
          std::make_shared<Connection>(std::move(socket), context_, listener.implicit_tls, client);
      connections_.insert(conn);
      peak_since_trim_ = std::max(peak_since_trim_, connections_.size());
    }
    // The connection's coroutine runs on the strand its socket is bound to. Its slot is
    // given back however it ends: the completion handler runs after a throw too.
    asio::co_spawn(strand, conn->run(), [this, conn](std::exception_ptr failure) {
      if (failure) {
        try {
          std::rethrow_exception(failure);
        } catch (const std::exception& e) {
          log_error("internal error: session ended by an exception: " + std::string(e.what()));
        } catch (...) {
          log_error("internal error: session ended by an unknown exception");
        }
      }
      if (context_.connection_limits && conn->client()) {
        context_.connection_limits->release(*conn->client());
      }
      forget(conn);
    });
  }
}

void Server::stop() {
  asio::post(io_, [this] {
    std::vector<std::shared_ptr<Connection>> live;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      live.assign(connections_.begin(), connections_.end());
    }
    log_info("stopping: closing listeners; " + std::to_string(live.size()) +
             " session(s) end once their transactions are answered (at most [server] "
             "drain_timeout, " +
             std::to_string(context_.drain_timeout.count()) + " s)");
    boost::system::error_code hec;
    hangups_.cancel(hec);
    if (on_stopping_) on_stopping_();
    for (auto& l : listeners_) {
      boost::system::error_code ec;
      l->acceptor.close(ec);
    }
    for (auto& c : live) c->stop();
    if (live.empty()) {
      io_.stop();
      return;
    }
    // Transactions under way have drain_timeout to finish; then every session still open
    // gets its 421 at once, and the I/O threads end at most kShutdownGrace later.
    auto timer = std::make_shared<asio::steady_timer>(io_, context_.drain_timeout);
    timer->async_wait([this, timer](auto) {
      std::vector<std::shared_ptr<Connection>> still;
      {
        std::lock_guard lock(mutex_);
        still.assign(connections_.begin(), connections_.end());
      }
      if (!still.empty()) {
        log_warning("stopping: " + std::to_string(still.size()) +
                    " session(s) still open after [server] drain_timeout (" +
                    std::to_string(context_.drain_timeout.count()) + " s): ending them now");
      }
      for (auto& c : still) c->stop(true);
      timer->expires_after(kShutdownGrace);
      timer->async_wait([this, timer](auto) { io_.stop(); });
    });
  });
}

void Server::wait_for_hangup() {
  hangups_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    log_warning(
        "SIGHUP: this version does not reload its configuration; nothing was changed and "
        "serving goes on (restart truefrom to apply a new configuration)");
    wait_for_hangup();
  });
}

void Server::run(unsigned threads) {
  wait_for_hangup();
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) stop();
  });
  for (auto& l : listeners_) asio::co_spawn(io_, accept_loop(*l), asio::detached);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([this] { io_.run(); });
  // Once stopping, the io_context runs out of work when the last session ends (the grace
  // timer keeps it alive at most kShutdownGrace).
  io_.run();
  for (auto& t : pool) t.join();
}

}  // namespace truefrom::net
