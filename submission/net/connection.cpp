#include "submission/net/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <stdexcept>

#include "submission/net/connection_state.hpp"
#include "submission/runtime/fault_injection.hpp"
#include "submission/runtime/log.hpp"

namespace truefrom::net {

using runtime::log_info;

asio::awaitable<void> Connection::State::watchdog() {
  while (!closed) {
    boost::system::error_code ec;
    timer.expires_at(deadline);
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (closed) break;
    if (Clock::now() < deadline) continue;
    if (busy && !timed_out) {  // checked again once we have answered
      deadline = Clock::now() + ctx.idle_timeout;
      continue;
    }
    if (!timed_out) {
      timed_out = true;
      deadline = Clock::now() + kGoodbyeGrace;
      if (reading) socket.cancel(ec);
    } else {
      socket.close(ec);
      break;
    }
  }
}

void Connection::State::client_clock_from_now() {
  busy = false;
  if (timed_out) return;  // the goodbye's grace period runs
  deadline = std::min(Clock::now() + ctx.idle_timeout, session_deadline);
  data_since_deadline = 0;
}

asio::awaitable<bool> Connection::State::flush() {
  if (!session.has_output()) co_return true;
  client_clock_from_now();
  const std::string out = session.take_output();
  boost::system::error_code ec;
  if (tls) {
    co_await tls_stream->write_all(out.data(), out.size(), ec);
  } else {
    co_await asio::async_write(socket, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return !ec;
}

asio::awaitable<bool> Connection::State::read_more() {
  if (shutdown_due()) {
    session.shutting_down();
    co_return true;
  }
  if (timed_out) {
    session.timed_out();
    co_return true;
  }
  const bool in_data = session.receiving_data();
  boost::system::error_code ec;
  std::size_t n = 0;
  reading = true;
  if (tls) {
    n = co_await tls_stream->read_some(read_buffer.get(), kReadBuffer, ec);
  } else {
    n = co_await socket.async_read_some(asio::buffer(read_buffer.get(), kReadBuffer),
                                        asio::redirect_error(asio::use_awaitable, ec));
  }
  reading = false;
  if (ec) {
    if (timed_out) {
      session.timed_out();
      co_return true;
    }
    if (shutdown_due()) {
      session.shutting_down();
      co_return true;
    }
    co_return false;
  }
  if (in_data && (data_since_deadline += n) >= kDataBlock) client_clock_from_now();
  if (!in_data && !login.empty() && ctx.identities->changes() != seen_changes) {
    co_await end_if_suspended();
  }
  session.receive(std::string_view(read_buffer.get(), n));
  co_return true;
}

asio::awaitable<bool> Connection::State::handshake() {
  deadline = std::min(Clock::now() + ctx.idle_timeout, session_deadline);
  reading = true;
  tls_stream = std::make_unique<TlsSocket>(socket, ctx.tls->native_handle());
  const std::string failed = co_await tls_stream->handshake();
  reading = false;
  if (!failed.empty()) {
    log_info("TLS handshake with " + peer + " failed: " + failed);
    co_return false;
  }
  tls = true;
  co_return true;
}

asio::awaitable<bool> Connection::State::spoke_before_greeting() {
  const auto started = Clock::now();
  if (ctx.greeting_delay.count() > 0) {
    asio::steady_timer wait(socket.get_executor(), ctx.greeting_delay);
    boost::system::error_code ec;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (stopping || timed_out) co_return false;  // the loop answers those with 421
  boost::system::error_code ec;
  std::size_t waiting = socket.available(ec);
  if (ec) waiting = 0;
  // With read-ahead, the handshake may have pulled the client's first records into
  // OpenSSL's buffer already.
  const bool tls_buffered = tls_stream && SSL_has_pending(tls_stream->native_handle()) == 1;
  if (waiting == 0 && !tls_buffered) co_return false;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  runtime::log_warning(
      "refused " + peer + ": it sent " +
      (tls_buffered ? std::string("TLS records") : std::to_string(waiting) + " octets") +
      " before the greeting (within " + std::to_string(ms) +
      " ms); a mail client waits for the 220 (RFC 5321 3.1)");
  co_return true;
}

std::string Connection::State::tls_description() {
  if (!tls_stream) return "no TLS";
  SSL* ssl = tls_stream->native_handle();
  return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

Connection::Connection(tcp::socket socket, const ConnectionContext& context, bool implicit_tls,
                       std::optional<policy::IpAddress> client)
    : s_(std::make_unique<State>(std::move(socket), context, implicit_tls)) {
  boost::system::error_code ec;
  const auto ep = s_->socket.remote_endpoint(ec);
  s_->peer =
      ec ? std::string("unknown") : ep.address().to_string() + ":" + std::to_string(ep.port());
  // The address the server counted at accept, not a second look at the socket: a client
  // that resets in between must still give back the slot it took.
  s_->client = client;
}

const std::optional<policy::IpAddress>& Connection::client() const { return s_->client; }

Connection::~Connection() = default;

void Connection::stop(bool now) {
  asio::post(s_->socket.get_executor(), [self = shared_from_this(), now] {
    State& s = *self->s_;
    s.stopping = true;
    s.stop_now = s.stop_now || now;
    // A read under way is cut only when the 421 is due: a client sending its message
    // carries on, and hears 421 after the reply to its end.
    boost::system::error_code ec;
    if (s.reading && s.shutdown_due()) s.socket.cancel(ec);
  });
}

asio::awaitable<void> Connection::run() {
  auto self = shared_from_this();
  State& s = *s_;
  s.session_deadline = Clock::now() + s.ctx.session_timeout;
  s.deadline = std::min(Clock::now() + s.ctx.idle_timeout, s.session_deadline);
  asio::co_spawn(
      s.socket.get_executor(), [self]() { return self->s_->watchdog(); }, asio::detached);

  bool alive = !s.implicit_tls || co_await s.handshake();
  if (alive && co_await s.spoke_before_greeting()) s.session.spoke_before_greeting();
  while (alive) {
    smtp::Event ev = s.session.next_event();
    if (!std::holds_alternative<smtp::event::NeedData>(ev)) s.client_clock_stopped();
    if (std::holds_alternative<smtp::event::NeedData>(ev)) {
      alive = co_await s.flush() && co_await s.read_more();
    } else if (std::holds_alternative<smtp::event::StartTls>(ev)) {
      if (runtime::fault_point("session")) throw std::runtime_error("fault injected at session");
      alive = co_await s.flush() && co_await s.handshake();
      if (alive) s.session.tls_established();
    } else if (std::holds_alternative<smtp::event::MailFrom>(ev) && s.stopping) {
      s.session.shutting_down();  // draining: no new transaction (a pipelined MAIL FROM)
    } else if (auto* rcpt = std::get_if<smtp::event::RcptTo>(&ev)) {
      s.rcpt_to(*rcpt);
    } else if (s.session.awaiting_decision()) {
      // A step that throws is answered with a temporary failure and the session goes on.
      // (No co_await in a handler: the catch only records what happened.)
      std::string failure;
      try {
        co_await s.decide(ev);
      } catch (const std::exception& e) {
        failure = e.what();
      } catch (...) {
        failure = "unknown exception";
      }
      if (!failure.empty()) s.internal_error(ev, failure);
    } else if (std::holds_alternative<smtp::event::Close>(ev)) {
      co_await s.flush();
      break;
    }
  }
  s.closed = true;
  // An unfinished transaction's reserved counts go back now, while the counter surely
  // exists: at a shutdown this State may outlive it (the watchdog's frame holds the
  // connection until the io_context is destroyed, after the objects serve built later).
  s.give_back_reserved();
  s.timer.cancel();
  boost::system::error_code ec;
  s.socket.shutdown(tcp::socket::shutdown_both, ec);
  s.socket.close(ec);
}

}  // namespace truefrom::net
