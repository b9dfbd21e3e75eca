#include "submission/relay/relay_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <variant>

namespace truefrom::relay {

namespace asio = boost::asio;

namespace {

ClientConfig session_config(const RelayOptions& o) {
  ClientConfig c;
  c.helo_name = o.helo_name;
  c.starttls = o.starttls;
  c.username = o.username;
  c.password = o.password;
  return c;
}

// The reply the session waits for, in an admin's words.
std::string awaited(const ClientSession& s) {
  using S = ClientSession::State;
  switch (s.state()) {
    case S::kGreeting:
      return "the greeting";
    case S::kEhlo:
      return "the reply to EHLO";
    case S::kStartTls:
      return "the reply to STARTTLS";
    case S::kAuth:
      return "the reply to AUTH";
    case S::kCheck:
      return "the reply to RSET (reuse check of an idle connection)";
    case S::kRset:
      return "the reply to RSET";
    case S::kMail:
      return "the reply to MAIL FROM";
    case S::kRcpt:
      return "the reply to RCPT TO";
    case S::kData:
      return "the reply to DATA";
    case S::kMessage:
      return "the reply to the message";
    default:
      return "the relay";
  }
}

// async_write's own completion conditions hand the kernel at most 64 KiB per call: a 100 KiB
// message would go out in two sendmsg() calls and wake the relay's reader twice. This one
// lets one call take as much as the socket buffer does (plain connections; TLS writes go
// out a record at a time anyway).
struct WholeWrites {
  std::size_t operator()(const boost::system::error_code& ec, std::size_t) const {
    return ec ? 0 : std::size_t{64} << 20;
  }
};

}  // namespace

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

RelayConnection::RelayConnection(const asio::any_io_executor& ex, asio::ssl::context& ctx,
                                 const RelayOptions& o, std::size_t host_index)
    : stream(ex, ctx), timer(ex), session(session_config(o)), host(host_index) {}

void RelayConnection::arm(const asio::any_io_executor& ex, std::chrono::seconds timeout,
                          const std::shared_ptr<RelayConnection>& self, std::string what) {
  expired = false;
  waiting = std::move(what);
  armed_for = timeout;
  armed_at = steady_ms();
  const std::uint64_t gen = ++generation;
  timer.expires_after(timeout);
  asio::co_spawn(ex, watchdog(self, gen), asio::detached);
}

asio::awaitable<void> RelayConnection::watchdog(std::shared_ptr<RelayConnection> self,
                                                std::uint64_t gen) {
  boost::system::error_code ec;
  co_await self->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && self->generation == gen) {
    self->expired = true;
    self->stream.next_layer().close(ec);
  }
}

std::string RelayConnection::transport_error(const boost::system::error_code& ec) const {
  if (cut) return "cut by queue flush while waiting for " + waiting;
  if (expired) {
    return "timed out waiting for " + waiting + " (" + std::to_string(armed_for.count()) + " s)";
  }
  return ec.message();
}

asio::awaitable<ClientEvent> RelayConnection::exchange(const std::shared_ptr<RelayConnection>& self,
                                                       const RelayOptions& o,
                                                       std::chrono::seconds reply_timeout,
                                                       bool& message_written) {
  using Wait = ClientSession::Wait;
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  std::size_t armed_replies = static_cast<std::size_t>(-1);
  Wait armed_wait = Wait::kNothing;
  for (;;) {
    const std::vector<std::string_view> out = session.pending_output();
    if (!out.empty()) {
      const bool with_message = session.output_carries_message();
      if (with_message) {
        arm(ex, o.timeouts.data, self, "the message to be written");
      } else {
        arm(ex, reply_timeout, self, "a command to be written");
      }
      std::vector<asio::const_buffer> buffers;
      buffers.reserve(out.size());
      for (const auto p : out) buffers.emplace_back(p.data(), p.size());
      boost::system::error_code ec;
      if (tls) {
        co_await asio::async_write(stream, buffers, asio::redirect_error(asio::use_awaitable, ec));
      } else {
        co_await asio::async_write(stream.next_layer(), buffers, WholeWrites{},
                                   asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) co_return client_event::Failed{ec, transport_error(ec)};
      if (with_message) message_written = true;
      armed_replies = static_cast<std::size_t>(-1);  // the wait for the reply arms anew
    }
    ClientEvent ev = session.next_event();
    if (!std::holds_alternative<client_event::NeedData>(ev)) co_return ev;
    if (session.has_output()) continue;
    const Wait w = session.waiting_for();
    if (w != armed_wait || session.replies() != armed_replies) {
      armed_wait = w;
      armed_replies = session.replies();
      const std::chrono::seconds t = w == Wait::kGreeting       ? o.timeouts.greeting
                                     : w == Wait::kMessageReply ? o.timeouts.data
                                                                : reply_timeout;
      arm(ex, t, self, awaited(session));
    }
    boost::system::error_code ec;
    std::size_t n = 0;
    if (tls) {
      n = co_await stream.async_read_some(asio::buffer(input),
                                          asio::redirect_error(asio::use_awaitable, ec));
    } else {
      n = co_await stream.next_layer().async_read_some(
          asio::buffer(input), asio::redirect_error(asio::use_awaitable, ec));
    }
    if (n > 0) session.receive(std::string_view(input.data(), n));
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      session.connection_closed();
    } else if (ec) {
      co_return client_event::Failed{ec, transport_error(ec)};
    }
  }
}

}  // namespace truefrom::relay
