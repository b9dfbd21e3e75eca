#include "submission/relay/relay_client.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <variant>

#include "submission/relay/client_session.hpp"
#include "submission/relay/relay_connection.hpp"
#include "submission/relay/relay_health.hpp"
#include "submission/runtime/log.hpp"

namespace truefrom::relay {

namespace asio = boost::asio;
using asio::ip::tcp;
using smtp::Reply;
using Clock = std::chrono::steady_clock;

namespace {

// The first probe of a relay that went down (RelayHealth doubles it up to probe_max).
constexpr std::chrono::milliseconds kFirstProbe{1000};

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

std::string seconds_text(std::chrono::milliseconds d) {
  const auto tenths = d.count() / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
}

}  // namespace

std::string RelayHost::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

struct RelayClient::Impl : std::enable_shared_from_this<RelayClient::Impl> {
  explicit Impl(RelayOptions o)
      : options(std::move(o)),
        health(options.hosts.size(),
               HealthOptions{kFirstProbe, std::chrono::milliseconds(options.probe_max)}) {}

  const RelayOptions options;
  asio::ssl::context tls{asio::ssl::context::tls_client};

  std::mutex mutex;  // idle, health, busy, stopping
  std::deque<std::shared_ptr<RelayConnection>> idle;
  RelayHealth health;
  struct Busy {
    std::shared_ptr<RelayConnection> conn;
    asio::any_io_executor executor;  // the one using the socket
  };
  std::map<RelayConnection*, Busy> busy;  // connections being set up, checked or carrying a message
  bool stopping = false;
  std::atomic<std::uint64_t> up_changes{0};

  std::mutex callback_mutex;  // held while on_up runs
  std::function<void()> on_up;

  void track(const std::shared_ptr<RelayConnection>& c, const asio::any_io_executor& ex) {
    std::lock_guard lock(mutex);
    busy[c.get()] = Busy{c, ex};
  }
  void untrack(const std::shared_ptr<RelayConnection>& c) {
    std::lock_guard lock(mutex);
    busy.erase(c.get());
  }

  // --- health ----------------------------------------------------------------------------

  void report_failure(std::size_t i, const std::string& reason, bool from_probe,
                      const asio::any_io_executor& ex) {
    std::optional<RelayHealth::Change> change;
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
      change = health.failed(i, Clock::now(), reason, from_probe);
    }
    if (!change) return;
    runtime::log_warning("relay " + options.hosts[i].to_string() + " down: " + reason +
                         "; deliveries skip it until it answers a probe (one at a time, after " +
                         seconds_text(kFirstProbe) + ", backing off to " +
                         std::to_string(options.probe_max.count()) + " s)");
    asio::co_spawn(ex, probe(weak_from_this(), i), asio::detached);
  }

  void report_answer(std::size_t i) {
    std::optional<RelayHealth::Change> change;
    {
      std::lock_guard lock(mutex);
      change = health.answered(i, Clock::now());
      if (change) up_changes = health.up_changes();
    }
    if (!change) return;
    runtime::log_info("relay " + options.hosts[i].to_string() + " up again after " +
                      seconds_text(change->down_for) +
                      " down: a probe's connection to it was set up");
    std::lock_guard lock(callback_mutex);
    if (on_up) on_up();
  }

  // Probes relay `i` while it is down: one connection setup at a time, when RelayHealth says
  // one is due. The connection that answers goes into the pool for the deliveries.
  static asio::awaitable<void> probe(std::weak_ptr<Impl> weak, std::size_t i) {
    const asio::any_io_executor ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    for (;;) {
      std::optional<RelayHealth::TimePoint> due;
      {
        const auto self = weak.lock();
        if (!self) co_return;
        std::lock_guard lock(self->mutex);
        if (self->stopping) co_return;
        due = self->health.probe_due(i);
      }
      if (!due) co_return;  // up again (a delivery's connection found it so)
      timer.expires_at(*due);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      const auto self = weak.lock();
      if (!self) co_return;
      {
        std::lock_guard lock(self->mutex);
        if (self->stopping) co_return;
        if (!self->health.start_probe(i, Clock::now())) continue;
      }
      auto c = std::make_shared<RelayConnection>(ex, self->tls, self->options, i);
      c->relay = self->options.hosts[i].to_string();
      self->track(c, ex);
      const std::string error = co_await self->open(c, self->options.hosts[i]);
      c->disarm();
      self->untrack(c);
      if (error.empty()) {
        self->release(std::move(c), ex);
        self->report_answer(i);
        co_return;
      }
      c->close();
      self->report_failure(i, error, true, ex);
    }
  }

  // --- connections -----------------------------------------------------------------------

  // Connects to one relay and sets the connection up (the session's greeting, EHLO,
  // STARTTLS, AUTH). Returns the reason it could not, or "" when it is ready (its last
  // timeout still armed: disarm it).
  asio::awaitable<std::string> open(const std::shared_ptr<RelayConnection>& c, const RelayHost& h) {
    const RelayOptions& o = options;
    auto ex = co_await asio::this_coro::executor;
    c->arm(ex, o.timeouts.connect, c, "the connection");
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
    for (;;) {
      const ClientEvent ev = co_await c->exchange(c, o, o.timeouts.command, unused);
      if (std::holds_alternative<client_event::Ready>(ev)) co_return std::string{};
      if (const auto* f = std::get_if<client_event::Failed>(&ev)) co_return f->reason;
      if (std::holds_alternative<client_event::StartTls>(ev)) {
        c->arm(ex, o.timeouts.command, c, "the TLS handshake");
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
  asio::awaitable<std::string> handshake(RelayConnection& c, const RelayOptions& o,
                                         const RelayHost& h) {
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
      if (c.cut || c.expired) co_return c.transport_error(ec);
      co_return "TLS handshake failed: " + ec.message();
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

  // The reuse check of a pooled connection (RSET within check_timeout): "" or why it failed.
  asio::awaitable<std::string> check(const std::shared_ptr<RelayConnection>& c) {
    c->session.check();
    bool unused = false;
    const ClientEvent ev = co_await c->exchange(c, options, options.check_timeout, unused);
    c->disarm();
    if (std::holds_alternative<client_event::Ready>(ev)) co_return std::string{};
    if (const auto* f = std::get_if<client_event::Failed>(&ev)) co_return f->reason;
    co_return std::string("relay client out of step in the reuse check");
  }

  // An idle connection (checked when it idled `check_after`), or a new one to the first
  // relay that is up and works. Null with `why` when none could be reached.
  asio::awaitable<std::shared_ptr<RelayConnection>> acquire(bool fresh, bool& reused,
                                                            std::string& why,
                                                            const asio::any_io_executor& ex) {
    const RelayOptions& o = options;
    while (!fresh) {
      std::shared_ptr<RelayConnection> c;
      {
        std::lock_guard lock(mutex);
        const auto now = Clock::now();
        // The most recently used first: it needs no check, and the others may idle out.
        while (!idle.empty() && !c) {
          auto x = std::move(idle.back());
          idle.pop_back();
          if (now - x->idle_since < o.idle_limit && health.usable(x->host)) {
            c = std::move(x);
          } else {
            x->close();
          }
        }
      }
      if (!c) break;
      if (Clock::now() - c->idle_since >= o.check_after) {
        track(c, ex);
        const std::string error = co_await check(c);
        untrack(c);
        if (!error.empty()) {  // gone stale: the next one, or a new connection
          c->close();
          continue;
        }
      }
      reused = true;
      co_return c;
    }
    reused = false;
    for (std::size_t i = 0; i < o.hosts.size(); ++i) {
      const RelayHost& h = o.hosts[i];
      {
        std::lock_guard lock(mutex);
        if (!health.usable(i)) {
          const auto down = std::chrono::duration_cast<std::chrono::milliseconds>(
              Clock::now() - health.down_since(i));
          why += (why.empty() ? "" : "; ") + h.to_string() + ": down for " + seconds_text(down) +
                 " (" + health.down_reason(i) + ")";
          continue;
        }
      }
      auto c = std::make_shared<RelayConnection>(ex, tls, o, i);
      c->relay = h.to_string();
      track(c, ex);
      const std::string error = co_await open(c, h);
      c->disarm();
      if (error.empty()) {
        report_answer(i);
        co_return c;
      }
      untrack(c);
      c->close();
      if (!c->cut) report_failure(i, error, false, ex);
      why += (why.empty() ? "" : "; ") + h.to_string() + ": " + error;
    }
    co_return nullptr;
  }

  void release(std::shared_ptr<RelayConnection> c, const asio::any_io_executor& ex) {
    c->disarm();
    untrack(c);
    if (!c->session.reusable()) {
      c->close();
      return;
    }
    bool spawn = false;
    {
      std::lock_guard lock(mutex);
      if (stopping || idle.size() >= options.max_idle_connections) {
        c->close();
        return;
      }
      c->idle_since = Clock::now();
      idle.push_back(c);
      spawn = !std::exchange(c->expiry_pending, true);
    }
    // One timer per connection at most (not one per message): it looks again when it fires.
    if (spawn) {
      asio::co_spawn(ex, expire_idle(weak_from_this(), c, options.idle_limit), asio::detached);
    }
  }

  // Closes a pooled connection once it has idled `limit`. Ends when the connection is taken
  // from the pool (its next release starts another).
  static asio::awaitable<void> expire_idle(std::weak_ptr<Impl> weak,
                                           std::weak_ptr<RelayConnection> conn,
                                           std::chrono::seconds limit) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    Clock::duration after = limit;
    for (;;) {
      timer.expires_after(after);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      const auto self = weak.lock();
      const auto c = conn.lock();
      if (!self || !c) co_return;
      std::lock_guard lock(self->mutex);
      const auto it = std::find(self->idle.begin(), self->idle.end(), c);
      if (it == self->idle.end()) {  // in use, or closed
        c->expiry_pending = false;
        co_return;
      }
      const Clock::duration idle_for = Clock::now() - c->idle_since;
      if (idle_for >= limit) {
        c->expiry_pending = false;
        c->close();
        self->idle.erase(it);
        co_return;
      }
      after = limit - idle_for;  // it was used and went back meanwhile
    }
  }

  // One transaction on a set-up connection: the session's Done, or "" in `error` with the
  // reason of its Failed. `message_written` tells whether the message went out (BDAT: before
  // any reply), so that a relay silent after it is not sent the message again.
  asio::awaitable<Attempt> transact(const std::shared_ptr<RelayConnection>& c, const Envelope& env,
                                    const std::vector<std::string_view>& message,
                                    bool all_or_nothing, std::string& error,
                                    bool& message_written) {
    Attempt a;
    a.relay = c->relay;
    c->session.start(env, message, all_or_nothing);
    for (;;) {
      ClientEvent ev = co_await c->exchange(c, options, options.timeouts.command, message_written);
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
    : options_(options), impl_(std::make_shared<Impl>(std::move(options))) {}

RelayClient::~RelayClient() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    impl_->busy.clear();  // their coroutines hold them (or are gone with the io_context)
  }
  close_idle();
}

std::unique_ptr<RelayClient> RelayClient::create(RelayOptions options, std::string& error) {
  if (options.hosts.empty()) {
    error = "no relay configured";
    return nullptr;
  }
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
  return c;
}

void RelayClient::close_idle() {
  std::lock_guard lock(impl_->mutex);
  for (auto& c : impl_->idle) c->close();
  impl_->idle.clear();
}

void RelayClient::set_on_relay_up(std::function<void()> callback) {
  std::lock_guard lock(impl_->callback_mutex);
  impl_->on_up = std::move(callback);
}

std::uint64_t RelayClient::up_changes() const { return impl_->up_changes; }

std::size_t RelayClient::cut_stuck(std::chrono::seconds bound) {
  std::vector<Impl::Busy> stuck;
  {
    std::lock_guard lock(impl_->mutex);
    const std::int64_t now = steady_ms();
    const std::int64_t limit = std::chrono::milliseconds(bound).count();
    for (const auto& [conn, b] : impl_->busy) {
      const std::int64_t at = conn->armed_at;
      if (at != 0 && now - at > limit) stuck.push_back(b);
    }
  }
  for (const auto& b : stuck) {
    // On the executor that uses the socket; only if it still waits for what it waited for.
    const std::uint64_t gen = b.conn->generation;
    asio::post(b.executor, [c = b.conn, gen] {
      if (c->generation != gen) return;
      c->cut = true;
      boost::system::error_code ignored;
      c->stream.next_layer().close(ignored);
    });
  }
  return stuck.size();
}

asio::awaitable<Attempt> RelayClient::send(const Envelope& envelope,
                                           const std::vector<std::string_view>& message,
                                           bool all_or_nothing) {
  auto ex = co_await asio::this_coro::executor;
  for (int round = 0;; ++round) {
    bool reused = false;
    std::string why;
    // The second round never takes a pooled connection: they may all be stale.
    auto c = co_await impl_->acquire(round > 0, reused, why, ex);
    if (!c) {
      Attempt a;
      a.reply = Reply{451, {4, 4, 1}, "No relay reachable (" + why + "), try again later"};
      a.unreachable = true;
      co_return a;
    }
    impl_->track(c, ex);
    bool message_written = false;
    std::string error;
    Attempt a =
        co_await impl_->transact(c, envelope, message, all_or_nothing, error, message_written);
    if (error.empty()) {
      impl_->release(std::move(c), ex);
      co_return a;
    }
    const std::string relay = c->relay;
    const bool answered = c->session.answered();
    const bool expired = c->expired;
    const bool cut = c->cut;
    impl_->untrack(c);
    c->close();
    // A relay that stopped answering is down for every delivery.
    if (expired && !cut) impl_->report_failure(c->host, error, false, ex);
    // An idle connection the relay closed meanwhile: once more on a fresh one. (Silence
    // is no sign of that: a relay slow to answer may have the message.)
    if (reused && !answered && !expired && !cut && round == 0) continue;
    a = Attempt{};
    a.relay = relay;
    a.reply = Reply{451, {4, 4, 1}, "Relay " + relay + " failed (" + error + "), try again later"};
    a.unreachable = true;
    co_return a;
  }
}

Reply RelayClient::client_reply(const Attempt& a, const Envelope&) {
  if (a.reply.code != 250) return a.reply;
  return Reply{250, {2, 0, 0}, "Ok: relayed (relay said: " + one_line(a.reply.text) + ")"};
}

}  // namespace truefrom::relay
