#include "submission/net/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <ctime>
#include <random>

#include "auth/identity_syntax.hpp"
#include "submission/policy/sender_policy.hpp"
#include "submission/core/trace.hpp"
#include "submission/runtime/log.hpp"
#include "submission/runtime/on_workers.hpp"
#include "submission/net/tls_socket.hpp"

namespace truefrom::net {

using runtime::log_error;

using runtime::log_info;
using runtime::log_warning;

using runtime::on_workers;
using runtime::on_workers_then;

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using smtp::Reply;

// After a timeout or shutdown, the 421 gets this long to be written before the socket closes.
constexpr std::chrono::seconds kGoodbyeGrace{10};
constexpr std::size_t kReadBuffer = 16 * 1024;

std::string new_message_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string id;
  std::uint64_t v = rng();
  for (int i = 0; i < 14; ++i) {
    id += kHex[v & 15];
    v >>= 4;
  }
  return id;
}

// The message's own fields ("Name: value\r\n" each, folded with CRLF + WSP), one view each
// without its final CRLF.
void split_fields(std::string_view fields, std::vector<std::string_view>& out) {
  std::size_t start = 0;
  for (std::size_t pos = 0; (pos = fields.find("\r\n", pos)) != std::string_view::npos;) {
    if (pos + 2 < fields.size() && (fields[pos + 2] == ' ' || fields[pos + 2] == '\t')) {
      pos += 2;
      continue;
    }
    out.push_back(fields.substr(start, pos - start));
    pos += 2;
    start = pos;
  }
}

struct Signing {
  std::string fields;   // the DKIM-Signature fields to prepend
  std::string domain;   // the signing domain; empty when no key applies
  std::string audit;    // for the log: "d=example.com s=a,b" or why unsigned
  std::string problem;  // an unusable key or a failure, for the log
  bool tempfail = false;
};

// What the work at the end of DATA gives back: the signature and, in queue mode, whether
// the spool could store the message.
struct Prepared {
  Signing signing;
  std::string error;  // queue mode: why the spool could not store it
};

// DKIM-signs the message as it will be relayed: `added` (the fields truefrom puts on top)
// followed by `message`. Runs on the worker pool.
Signing sign_message(const ConnectionContext& ctx, const std::string& added,
                     std::string_view message, const smtp::HeaderSection& section,
                     const std::string& from_domain) {
  Signing out;
  const auto ring = ctx.dkim_keys->current();
  const signer::Selection sel = ring->select(from_domain, ctx.dkim_fallback_domain);
  if (sel.domain.empty()) {
    out.audit =
        "unsigned (no active key for " +
        (from_domain.empty() ? std::string("an unverified From:") : from_domain) +
        (ctx.dkim_fallback_domain.empty() ? "" : " nor fallback " + ctx.dkim_fallback_domain) + ")";
    return out;
  }
  out.domain = sel.domain;
  std::vector<const signer::SigningKey*> keys;
  for (const auto* k : sel.keys) {
    if (k->usable()) keys.push_back(k);
  }
  out.problem = sel.problems();
  if (!out.problem.empty() && ctx.dkim_tempfail_on_key_error) {
    out.tempfail = true;
    out.audit = "not signed for " + sel.domain;
    return out;
  }
  if (keys.empty()) {
    out.audit = "unsigned (no usable key for " + sel.domain + ")";
    return out;
  }
  signer::MessageView view;
  view.headers.reserve(section.fields.size() + 8);
  split_fields(added, view.headers);
  for (const auto& f : section.fields) {
    view.headers.push_back(message.substr(f.offset, f.raw_end - f.offset));
  }
  view.body = message.substr(section.body_offset(message.size()));
  signer::SignResult r = ctx.dkim->sign(keys, view);
  if (!r.error.empty()) {
    out.problem = r.error;
    out.tempfail = true;
    out.audit = "not signed for " + sel.domain;
    return out;
  }
  out.audit = "d=" + sel.domain + (sel.fallback ? " (fallback)" : "") + " s=";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    out.audit += (i ? "," : "") + keys[i]->record.selector;
    out.fields += r.fields[i];
  }
  return out;
}

}  // namespace

struct Connection::State {
  State(tcp::socket accepted, const ConnectionContext& c, bool implicit)
      : ctx(c),
        socket(std::move(accepted)),
        timer(socket.get_executor()),
        implicit_tls(implicit),
        session([&] {
          smtp::SessionConfig sc = c.session;
          sc.implicit_tls = implicit;
          return sc;
        }()) {}

  const ConnectionContext& ctx;
  tcp::socket socket;
  // Made at the TLS handshake (STARTTLS, or at once on the implicit-TLS port): a plain
  // connection never pays for TLS state.
  std::unique_ptr<TlsSocket> tls_stream;
  asio::steady_timer timer;
  bool implicit_tls;
  bool tls = false;
  smtp::Session session;
  std::string peer;

  Clock::time_point session_deadline;
  Clock::time_point deadline;
  bool reading = false;
  bool timed_out = false;
  bool stopping = false;
  bool closed = false;

  std::unique_ptr<auth::SaslExchange> sasl;
  std::string login;                       // the authenticated account
  auth::IdentityCache::Entry txn_account;  // the account as it was at MAIL FROM
  std::string txn_srs_sender;  // the SRS address relayed instead of MAIL FROM (forwarded)
  std::string txn_srs_audit;   // which SRS rule decided, for the log
  // Not zero-filled: an idle connection keeps only the pages a read has touched resident.
  std::unique_ptr<char[]> read_buffer{new char[kReadBuffer]};

  asio::awaitable<void> watchdog() {
    while (!closed) {
      boost::system::error_code ec;
      timer.expires_at(deadline);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (closed) break;
      if (Clock::now() < deadline) continue;
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

  asio::awaitable<bool> flush() {
    if (!session.has_output()) co_return true;
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

  // Reads more input into the session; false when the connection is gone.
  asio::awaitable<bool> read_more() {
    if (stopping) {
      session.shutting_down();
      co_return true;
    }
    if (timed_out) {
      session.timed_out();
      co_return true;
    }
    deadline = std::min(Clock::now() + ctx.idle_timeout, session_deadline);
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
      if (stopping) {
        session.shutting_down();
        co_return true;
      }
      co_return false;
    }
    session.receive(std::string_view(read_buffer.get(), n));
    co_return true;
  }

  asio::awaitable<bool> handshake() {
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

  std::string tls_description() {
    if (!tls_stream) return "no TLS";
    SSL* ssl = tls_stream->native_handle();
    return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
  }

  asio::awaitable<void> auth_step(const smtp::event::AuthStart* start,
                                  const smtp::event::AuthResponse* response) {
    if (!sasl) {
      const int bits = tls_stream ? SSL_get_cipher_bits(tls_stream->native_handle(), nullptr) : 0;
      sasl = std::make_unique<auth::SaslExchange>(ctx.check, ctx.session.hostname,
                                                  static_cast<unsigned>(bits > 0 ? bits : 0));
    }
    // Only pointers cross to the worker: `start`/`response` live in run()'s frame until this
    // coroutine resumes (GCC 12 mishandles non-trivial captures of temporaries in co_await).
    auth::SaslExchange* exchange = sasl.get();
    auto job = [exchange, start, response] {
      return start ? exchange->start(start->mechanism, start->initial_response)
                   : exchange->step(response->response);
    };
    auth::AuthOutcome out = co_await on_workers(*ctx.workers, std::move(job));
    using K = auth::AuthOutcome::Kind;
    switch (out.kind) {
      case K::kChallenge:
        session.auth_challenge(out.challenge);
        co_return;
      case K::kSuccess:
        login = out.account->account.login;
        log_info("auth: " + peer + " authenticated as " + login);
        session.auth_succeeded(login);
        break;
      case K::kRejected:
        log_warning("auth: " + peer + " failed: " + out.detail);
        session.auth_failed(Reply{535, {5, 7, 8}, "Authentication credentials invalid"});
        break;
      case K::kUnavailable:
        log_error("auth: " + peer + " could not be checked: " + out.detail);
        session.auth_failed(
            Reply{454, {4, 7, 0}, "Temporary authentication failure, try again later"});
        break;
      case K::kProtocolError:
        log_warning("auth: " + peer + " sent a malformed exchange: " + out.detail);
        session.auth_failed(Reply{501, {5, 5, 2}, "Malformed authentication exchange"});
        break;
    }
    sasl.reset();
  }

  struct Loaded {
    auth::StoreStatus status;
    auth::IdentityCache::Entry entry;
  };

  // MAIL FROM: the account's identities as they are now (a change made by an admin applies
  // to the next transaction), from memory or, on a miss, from the store on the workers.
  asio::awaitable<void> mail_from(const smtp::event::MailFrom* ev) {
    txn_account.reset();
    txn_srs_sender.clear();
    txn_srs_audit.clear();
    auth::IdentityCache::Entry entry;
    if (!ctx.identities->lookup(login, entry)) {
      auth::IdentityCache* cache = ctx.identities;
      const std::string* who = &login;
      auto job = [cache, who] {
        Loaded r;
        r.status = cache->get(*who, r.entry);
        return r;
      };
      Loaded r = co_await on_workers(*ctx.workers, std::move(job));
      if (!r.status) {
        log_error("policy: " + peer + " user " + login +
                  ": sender check unavailable: " + r.status.detail);
        session.reply(
            Reply{451, {4, 3, 0}, "Sender check temporarily unavailable, try again later"});
        co_return;
      }
      entry = std::move(r.entry);
    }
    if (!entry) {
      log_warning("policy: " + peer + " user " + login + " no longer exists");
      session.reply(Reply{550, {5, 7, 1}, "Account " + login + " no longer exists"});
      co_return;
    }
    const auto& sender = ev->argument.sender;
    const std::string shown = sender ? sender->to_string() : std::string{};
    policy::Decision d = ctx.policy.check_envelope(*entry, sender);
    if (d.refusal) {
      log_warning("policy: " + peer + " user " + login + " refused MAIL FROM <" + shown +
                  ">: " + d.refusal->text);
      session.reply(*d.refusal);
      co_return;
    }
    if (d.forwarded && ctx.srs && !forwarded_sender(*sender, shown)) co_return;
    txn_account = std::move(entry);
    session.accept(Reply{
        250,
        {2, 1, 0},
        "Sender <" + shown + "> OK" +
            (txn_srs_sender.empty() ? std::string{} : ", forwarded as <" + txn_srs_sender + ">")});
  }

  // A forwarder account's foreign envelope sender: the SRS rules say rewrite (the default),
  // refuse or pass. Returns false when the session got a refusal.
  bool forwarded_sender(const smtp::Mailbox& sender, const std::string& shown) {
    const auto domain = auth::normalize_domain(sender.domain);
    const auto verdict = ctx.srs_rules->current()->decide(domain ? *domain : sender.domain, login);
    if (verdict.action == signer::srs::SrsAction::kRefuse) {
      log_warning("srs: " + peer + " user " + login + " refused MAIL FROM <" + shown +
                  ">: " + verdict.reason);
      session.reply(Reply{550, {5, 7, 1}, "forwarding of <" + shown + "> refused by policy"});
      return false;
    }
    if (verdict.action == signer::srs::SrsAction::kPass) {
      txn_srs_audit = "srs: <" + shown + "> passed unchanged by " + verdict.reason;
      return true;
    }
    std::string error;
    const auto srs =
        ctx.srs->forward(sender.local + "@" + sender.domain, std::time(nullptr), error);
    if (!srs) {
      log_warning("srs: " + peer + " user " + login + " MAIL FROM <" + shown + ">: " + error);
      session.reply(Reply{553, {5, 1, 7}, "forwarding of <" + shown + "> impossible: " + error});
      return false;
    }
    const auto at = srs->rfind('@');
    txn_srs_sender = smtp::Mailbox{srs->substr(0, at), srs->substr(at + 1)}.to_string();
    txn_srs_audit =
        "srs: <" + shown + "> rewritten as <" + txn_srs_sender + "> by " + verdict.reason;
    return true;
  }

  asio::awaitable<void> data_end() {
    const std::string id = queue::new_queue_id();
    const bool smtputf8 = session.mail_argument().smtputf8;
    const std::string& message = session.message();
    if (!txn_account) {  // cannot happen: DATA follows an accepted MAIL FROM
      session.reply(Reply{451, {4, 3, 0}, "Sender check state lost, try again"});
      co_return;
    }
    // Parsed once: for the binding checks, the fields added below and DKIM. Every message
    // must parse, forwarders' too (their headers are not bound, but they are signed).
    std::string why;
    const auto section = smtp::parse_header_section(message, &why);
    policy::Decision d;
    if (section) {
      d = ctx.policy.check_message(*txn_account, session.mail_from(), *section, smtputf8);
    } else {
      d.refusal = Reply{550, {5, 6, 0}, "The message's header section is malformed: " + why};
    }
    if (d.refusal) {
      log_warning("policy: " + peer + " user " + login + " message from <" +
                  (session.mail_from() ? session.mail_from()->to_string() : std::string{}) +
                  "> refused: " + d.refusal->text);
      session.reply(*d.refusal);
      co_return;
    }
    // The fields truefrom adds go on top, in this order: Received (trace, RFC 5321 4.4),
    // Sender for on-behalf mail (RFC 5322 3.6.2), Message-ID and Date when the client left
    // them out (RFC 6409 8.2, 8.3). DKIM then signs the message exactly as it is relayed.
    smtp::ReceivedFields f;
    f.helo = session.helo_name();
    f.peer_address = peer.substr(0, peer.rfind(':'));
    f.by_host = ctx.session.hostname;
    f.protocol = "ESMTPSA";  // RFC 3848: ESMTP with STARTTLS (or implicit TLS) and AUTH
    f.tls = tls_description();
    f.login = login;
    f.binding = d.audit;
    f.id = id;
    if (session.recipients().size() == 1) f.for_recipient = session.recipients()[0].to_string();
    f.when = std::time(nullptr);
    std::string added = smtp::received_header(f);
    if (!d.add_sender.empty()) added += "Sender: <" + d.add_sender + ">\r\n";
    added += smtp::missing_origination_fields(
        *section, "<" + id + "." + new_message_id() + "@" + ctx.session.hostname + ">", f.when);

    relay::Envelope env;
    if (session.mail_from()) env.mail_from = session.mail_from()->to_string();
    if (!txn_srs_sender.empty()) env.mail_from = txn_srs_sender;
    for (const auto& r : session.recipients()) env.recipients.push_back(r.to_string());
    env.eight_bit = session.mail_argument().body == smtp::BodyType::k8BitMime;
    env.smtputf8 = smtputf8;
    queue::MessageInfo info;
    if (ctx.scheduler) {
      info.id = id;
      info.mail_from = env.mail_from;
      info.recipients = env.recipients;
      info.eight_bit = env.eight_bit;
      info.smtputf8 = env.smtputf8;
      info.user = login;
      info.arrival = f.when;
    }

    // Signed on the workers; in queue mode the worker then hands the message to the spool's
    // commit thread (append and group commit), which resumes this session: the I/O thread
    // is not woken in between. What is spooled is exactly what leaves: the DKIM fields, the
    // added fields, the client's message (not copied).
    Prepared prep;
    {
      const ConnectionContext* c = &ctx;
      const std::string* fields = &added;
      const std::string* body = &message;
      const smtp::HeaderSection* sec = &*section;
      const std::string* domain = &d.from_domain;
      const queue::MessageInfo* ip = ctx.scheduler ? &info : nullptr;
      auto job = [c, fields, body, sec, domain, ip](auto complete) {
        auto out = std::make_shared<Prepared>();
        if (c->dkim_keys && c->dkim) {
          out->signing = sign_message(*c, *fields, *body, *sec, *domain);
        } else {
          out->signing.audit = "unsigned (DKIM off)";
        }
        if (!ip || out->signing.tempfail) {
          if (ip) c->spool->withdraw();
          complete(std::move(*out));
          return;
        }
        c->spool->store(
            *ip, {out->signing.fields, *fields, *body},
            [out, complete](const std::string& error) mutable {
              out->error = error;
              complete(std::move(*out));
            },
            true);
      };
      // A commit in progress may wait for this message rather than sync without it.
      if (ip) ctx.spool->announce();
      prep = co_await on_workers_then<Prepared>(*ctx.workers, std::move(job));
    }
    const Signing& signing = prep.signing;
    if (!signing.problem.empty()) log_error("dkim: message " + id + ": " + signing.problem);
    if (signing.tempfail) {
      session.reply(Reply{451,
                          {4, 3, 5},
                          "Cannot DKIM-sign for " + signing.domain +
                              " now (the key is unusable; the administrator is told); "
                              "try again later"});
      co_return;
    }
    const std::vector<std::string_view> parts{signing.fields, added, message};
    std::size_t size = 0;
    for (auto p : parts) size += p.size();
    const std::string what = "message " + id + " from <" + env.mail_from + "> user " + login +
                             " to " + std::to_string(env.recipients.size()) + " recipient(s), " +
                             std::to_string(size) + " octets; binding: " + d.audit +
                             "; dkim: " + signing.audit +
                             (txn_srs_audit.empty() ? std::string{} : "; " + txn_srs_audit);
    // (No co_await inside a conditional expression: GCC 12 destroys its temporaries twice.)
    Reply r;
    if (ctx.scheduler) {
      r = enqueued(info, prep.error, parts);
    } else {
      const relay::Attempt attempt = co_await ctx.relay->send(env, parts, true);
      r = relay::RelayClient::client_reply(attempt, env);
    }
    if (r.positive()) {
      log_info(what + "; " + r.text);
      session.accept(ctx.scheduler ? r : Reply{250, {2, 0, 0}, "Ok: message " + id + " relayed"});
    } else {
      log_warning(what + "; not accepted: " + r.summary());
      session.reply(r);
    }
  }

  // Queue mode: the message was appended and made durable (group commit) by the spool before
  // the client hears 250, unless `error` says otherwise.
  Reply enqueued(queue::MessageInfo& info, const std::string& error,
                 const std::vector<std::string_view>& parts) {
    const std::string& id = info.id;
    if (!error.empty()) {
      log_error("queue: cannot store message " + id + ": " + error +
                " (is the file system of [queue] dir full or read-only?)");
      return Reply{452,
                   {4, 3, 1},
                   "Insufficient system storage: cannot queue the message "
                   "now, try again later"};
    }
    std::string data;  // the first delivery attempt starts from memory
    for (auto p : parts) info.size += p.size();
    data.reserve(info.size);
    for (auto p : parts) data += p;
    Reply ok{250, {2, 0, 0}, "Ok: queued as " + id};
    ctx.scheduler->enqueued(std::move(info), std::move(data));
    return ok;
  }
};

Connection::Connection(tcp::socket socket, const ConnectionContext& context, bool implicit_tls)
    : s_(std::make_unique<State>(std::move(socket), context, implicit_tls)) {
  boost::system::error_code ec;
  const auto ep = s_->socket.remote_endpoint(ec);
  s_->peer =
      ec ? std::string("unknown") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

Connection::~Connection() = default;

void Connection::stop() {
  asio::post(s_->socket.get_executor(), [self = shared_from_this()] {
    self->s_->stopping = true;
    boost::system::error_code ec;
    if (self->s_->reading) self->s_->socket.cancel(ec);
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
  while (alive) {
    smtp::Event ev = s.session.next_event();
    if (std::holds_alternative<smtp::event::NeedData>(ev)) {
      alive = co_await s.flush() && co_await s.read_more();
    } else if (std::holds_alternative<smtp::event::StartTls>(ev)) {
      alive = co_await s.flush() && co_await s.handshake();
      if (alive) s.session.tls_established();
    } else if (auto* a = std::get_if<smtp::event::AuthStart>(&ev)) {
      co_await s.auth_step(a, nullptr);
    } else if (auto* r = std::get_if<smtp::event::AuthResponse>(&ev)) {
      co_await s.auth_step(nullptr, r);
    } else if (auto* m = std::get_if<smtp::event::MailFrom>(&ev)) {
      co_await s.mail_from(m);
    } else if (std::holds_alternative<smtp::event::RcptTo>(ev)) {
      s.session.accept(Reply{250, {2, 1, 5}, "Recipient OK"});
    } else if (std::holds_alternative<smtp::event::DataEnd>(ev)) {
      co_await s.data_end();
    } else if (std::holds_alternative<smtp::event::Close>(ev)) {
      co_await s.flush();
      break;
    }
  }
  s.closed = true;
  s.timer.cancel();
  boost::system::error_code ec;
  s.socket.shutdown(tcp::socket::shutdown_both, ec);
  s.socket.close(ec);
}

}  // namespace truefrom::net
