#include "submission/relay/relay_client.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <mutex>

#include <variant>

#include "submission/relay/client_session.hpp"

namespace truefrom::relay {

namespace asio = boost::asio;
using asio::ip::tcp;
using smtp::Reply;
using Clock = std::chrono::steady_clock;

namespace {

// RFC 5321 4.5.3.2.6: the reply to the final dot may take 10 minutes.
constexpr std::chrono::seconds kDataTimeout{600};
// What one read takes from the socket (replies are short; a pipelined group's are a few).
constexpr std::size_t kReadSize = 16 * 1024;

std::string one_line(std::string text) {
  for (char& ch : text) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return text;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

ClientConfig session_config(const RelayOptions& o) {
  ClientConfig c;
  c.helo_name = o.helo_name;
  c.starttls = o.starttls;
  c.username = o.username;
  c.password = o.password;
  return c;
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

std::string RelayHost::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// One connection to a relay: the socket, its watchdog and the ClientSession it feeds.
struct Conn {
  Conn(const asio::any_io_executor& ex, asio::ssl::context& ctx, const RelayOptions& o)
      : stream(ex, ctx), timer(ex), session(session_config(o)) {}
  asio::ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  ClientSession session;
  bool tls = false;
  bool expired = false;
  std::atomic<std::uint64_t> generation{0};
  std::vector<char> input = std::vector<char>(kReadSize);
  std::string relay;
  Clock::time_point idle_since;

  // Closes the socket if `timeout` passes before disarm() (or the next arm()). The watchdog
  // runs on the caller's executor, the one using the socket; a watchdog of an earlier arm()
  // whose timer fired late sees another generation and leaves the socket alone.
  void arm(const asio::any_io_executor& ex, std::chrono::seconds timeout,
           const std::shared_ptr<Conn>& self) {
    expired = false;
    const std::uint64_t gen = ++generation;
    timer.expires_after(timeout);
    asio::co_spawn(ex, watchdog(self, gen), asio::detached);
  }
  void disarm() {
    ++generation;
    timer.cancel();
  }
  static asio::awaitable<void> watchdog(std::shared_ptr<Conn> self, std::uint64_t gen) {
    boost::system::error_code ec;
    co_await self->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && self->generation == gen) {
      self->expired = true;
      self->stream.next_layer().close(ec);
    }
  }

  void close() {
    boost::system::error_code ignored;
    disarm();
    stream.next_layer().close(ignored);
  }

  // What a socket error says to an admin.
  std::string transport_error(const boost::system::error_code& ec) const {
    return expired ? "timed out" : ec.message();
  }

  // Moves bytes between the socket and the session until the session has an event other
  // than NeedData. A socket error becomes a Failed event with the socket's words. Within a
  // transaction (`self` set), writes that carry the message and the wait for the reply to
  // it get the data timeout (RFC 5321 4.5.3.2.5/6), other waits `timeout`; `message_written`
  // tells that the message went out (the relay may have it).
  asio::awaitable<ClientEvent> exchange(const std::shared_ptr<Conn>& self,
                                        std::chrono::seconds timeout, bool& message_written) {
    const std::chrono::seconds data_timeout = std::max(timeout, kDataTimeout);
    const asio::any_io_executor ex = co_await asio::this_coro::executor;
    bool waiting_long = false;
    for (;;) {
      const std::vector<std::string_view> out = session.pending_output();
      if (!out.empty()) {
        const bool with_message = session.output_carries_message();
        if (self && with_message) arm(ex, data_timeout, self);
        std::vector<asio::const_buffer> buffers;
        buffers.reserve(out.size());
        for (const auto p : out) buffers.emplace_back(p.data(), p.size());
        boost::system::error_code ec;
        if (tls) {
          co_await asio::async_write(stream, buffers,
                                     asio::redirect_error(asio::use_awaitable, ec));
        } else {
          co_await asio::async_write(stream.next_layer(), buffers, WholeWrites{},
                                     asio::redirect_error(asio::use_awaitable, ec));
        }
        if (ec) co_return client_event::Failed{ec, transport_error(ec)};
        if (with_message) {
          message_written = true;
          // What remains in flight is at most a socket buffer: the replies to MAIL and RCPT
          // are due within the command timeout again.
          if (self) arm(ex, timeout, self);
        }
      }
      ClientEvent ev = session.next_event();
      if (!std::holds_alternative<client_event::NeedData>(ev)) co_return ev;
      if (session.has_output()) continue;
      if (self && session.awaiting_message_reply() && !waiting_long) {
        arm(ex, data_timeout, self);
        waiting_long = true;
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
};

struct RelayClient::Impl {
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::mutex mutex;
  std::deque<std::shared_ptr<Conn>> idle;

  // Connects to one relay and sets the connection up (the session's greeting, EHLO,
  // STARTTLS, AUTH). Returns the reason it could not, or "" when it is ready.
  asio::awaitable<std::string> open(const std::shared_ptr<Conn>& c, const RelayOptions& o,
                                    const RelayHost& h) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    boost::system::error_code ec;
    auto endpoints = co_await resolver.async_resolve(h.host, std::to_string(h.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return c->transport_error(ec);
    co_await asio::async_connect(c->stream.next_layer(), endpoints,
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return c->transport_error(ec);
    // Commands and messages are written whole: Nagle would only delay them.
    c->stream.next_layer().set_option(tcp::no_delay(true), ec);
    bool unused = false;
    const std::shared_ptr<Conn> setup;  // no transaction: the timer armed by acquire() stays
    for (;;) {
      const ClientEvent ev = co_await c->exchange(setup, o.timeout, unused);
      if (std::holds_alternative<client_event::Ready>(ev)) co_return std::string{};
      if (const auto* f = std::get_if<client_event::Failed>(&ev)) co_return f->reason;
      if (std::holds_alternative<client_event::StartTls>(ev)) {
        std::string error = co_await handshake(*c, o, h);
        if (!error.empty()) co_return error;
        c->tls = true;
        c->session.tls_established();
        continue;
      }
      co_return std::string("relay client out of step during setup");
    }
  }

  // The TLS handshake and the verification [relay] asks for; "" or the reason it failed.
  asio::awaitable<std::string> handshake(Conn& c, const RelayOptions& o, const RelayHost& h) {
    SSL* ssl = c.stream.native_handle();
    const bool verify_chain = o.starttls == RelayTls::kRequired && o.fingerprint.empty();
    if (!is_ip_literal(h.host)) SSL_set_tlsext_host_name(ssl, h.host.c_str());
    if (verify_chain) {
      SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
      if (is_ip_literal(h.host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h.host.c_str());
      } else {
        SSL_set1_host(ssl, h.host.c_str());
      }
    } else {
      SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    }
    boost::system::error_code ec;
    co_await c.stream.async_handshake(asio::ssl::stream_base::client,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      const long v = SSL_get_verify_result(ssl);
      if (verify_chain && v != X509_V_OK) {
        co_return std::string("certificate not trusted: ") + X509_verify_cert_error_string(v) +
            " (set [relay] ca_file to the CA that issued it, or pin it with [relay] fingerprint)";
      }
      co_return c.expired ? std::string("timed out") : "TLS handshake failed: " + ec.message();
    }
    if (o.starttls == RelayTls::kRequired && !o.fingerprint.empty()) {
      X509* cert = SSL_get1_peer_certificate(ssl);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      const bool ok = cert && X509_digest(cert, EVP_sha256(), md, &len) == 1 &&
                      len == o.fingerprint.size() &&
                      std::equal(o.fingerprint.begin(), o.fingerprint.end(), md);
      X509_free(cert);
      if (!ok) {
        co_return std::string(
            "certificate does not match [relay] fingerprint (see `openssl x509 -noout "
            "-fingerprint -sha256` of the relay's certificate)");
      }
    }
    co_return std::string{};
  }

  // An idle connection, or a new one to the first relay that works. Null with `why` when
  // none could be reached.
  asio::awaitable<std::shared_ptr<Conn>> acquire(const RelayOptions& o, bool fresh, bool& reused,
                                                 std::string& why) {
    if (!fresh) {
      std::lock_guard lock(mutex);
      const auto now = Clock::now();
      while (!idle.empty()) {
        auto c = std::move(idle.front());
        idle.pop_front();
        if (now - c->idle_since < o.idle_keep) {
          reused = true;
          co_return c;
        }
        c->close();
      }
    }
    reused = false;
    auto ex = co_await asio::this_coro::executor;
    for (const auto& h : o.hosts) {
      auto c = std::make_shared<Conn>(ex, tls, o);
      c->relay = h.to_string();
      c->arm(ex, o.timeout, c);
      const std::string error = co_await open(c, o, h);
      c->disarm();
      if (error.empty()) co_return c;
      c->close();
      why += (why.empty() ? "" : "; ") + h.to_string() + ": " + error;
    }
    co_return nullptr;
  }

  void release(std::shared_ptr<Conn> c, const RelayOptions& o) {
    c->disarm();
    if (!c->session.reusable()) {
      c->close();
      return;
    }
    c->idle_since = Clock::now();
    std::lock_guard lock(mutex);
    if (idle.size() >= o.max_idle_connections) {
      c->close();
      return;
    }
    idle.push_back(std::move(c));
  }

  // One transaction on a set-up connection: the session's Done, or "" in `error` with the
  // reason of its Failed. `message_written` tells whether the message went out (BDAT: before
  // any reply), so that a relay silent after it is not sent the message again.
  asio::awaitable<Attempt> transact(const std::shared_ptr<Conn>& c, std::chrono::seconds timeout,
                                    const Envelope& env,
                                    const std::vector<std::string_view>& message,
                                    bool all_or_nothing, std::string& error,
                                    bool& message_written) {
    Attempt a;
    a.relay = c->relay;
    c->session.start(env, message, all_or_nothing);
    for (;;) {
      ClientEvent ev = co_await c->exchange(c, timeout, message_written);
      if (auto* d = std::get_if<client_event::Done>(&ev)) {
        a.reply = std::move(d->reply);
        a.recipients = std::move(d->recipients);
        co_return a;
      }
      if (auto* f = std::get_if<client_event::Failed>(&ev)) {
        error = std::move(f->reason);
        co_return a;
      }
      // Ready or StartTls cannot come in a transaction: the session is out of step.
      error = "relay client out of step";
      co_return a;
    }
  }
};

RelayClient::RelayClient(RelayOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

RelayClient::~RelayClient() { close_idle(); }

std::unique_ptr<RelayClient> RelayClient::create(RelayOptions options, std::string& error) {
  std::unique_ptr<RelayClient> c(new RelayClient(std::move(options)));
  auto& ctx = c->impl_->tls;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (!c->options_.ca_file.empty()) {
    ctx.load_verify_file(c->options_.ca_file, ec);
    if (ec) {
      error = "cannot load [relay] ca_file " + c->options_.ca_file + ": " + ec.message() +
              " (it must be a PEM file of CA certificates)";
      return nullptr;
    }
  } else {
    ctx.set_default_verify_paths(ec);
    if (ec) {
      error = "cannot load the system's CA certificates: " + ec.message();
      return nullptr;
    }
  }
  if (c->options_.hosts.empty()) {
    error = "no relay configured";
    return nullptr;
  }
  return c;
}

void RelayClient::close_idle() {
  std::lock_guard lock(impl_->mutex);
  for (auto& c : impl_->idle) c->close();
  impl_->idle.clear();
}

asio::awaitable<Attempt> RelayClient::send(const Envelope& envelope,
                                           const std::vector<std::string_view>& message,
                                           bool all_or_nothing) {
  auto ex = co_await asio::this_coro::executor;
  for (int round = 0;; ++round) {
    bool reused = false;
    std::string why;
    // The second round never takes a pooled connection: they may all be stale.
    auto c = co_await impl_->acquire(options_, round > 0, reused, why);
    if (!c) {
      Attempt a;
      a.reply = Reply{451, {4, 4, 1}, "No relay reachable (" + why + "), try again later"};
      co_return a;
    }
    c->arm(ex, options_.timeout, c);
    bool message_written = false;
    std::string error;
    Attempt a = co_await impl_->transact(c, options_.timeout, envelope, message, all_or_nothing,
                                         error, message_written);
    if (error.empty()) {
      impl_->release(std::move(c), options_);
      co_return a;
    }
    const std::string relay = c->relay;
    const bool answered = c->session.answered();
    const bool expired = c->expired;
    c->close();
    // An idle connection the relay closed meanwhile: once more on a fresh one. (Silence
    // after the message went out is no sign of that: a relay slow to answer may have it.)
    const bool silent_after_message = message_written && expired;
    if (reused && !answered && !silent_after_message && round == 0) continue;
    a = Attempt{};
    a.relay = relay;
    a.reply = Reply{451, {4, 4, 1}, "Relay " + relay + " failed (" + error + "), try again later"};
    co_return a;
  }
}

Reply RelayClient::client_reply(const Attempt& a, const Envelope&) {
  if (a.reply.code != 250) return a.reply;
  return Reply{250, {2, 0, 0}, "Ok: relayed (relay said: " + one_line(a.reply.text) + ")"};
}

}  // namespace truefrom::relay
