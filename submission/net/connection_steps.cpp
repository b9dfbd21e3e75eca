// The decisions of one connection: AUTH (SASL, login throttling), MAIL FROM (the binding
// policy on the account's identities, SRS for forwarders) and the end of DATA (the message
// preparer, signing, the hand-off), each performed on the workers where it blocks.
#include "submission/net/connection_state.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>
#include <random>
#include <stdexcept>

#include "auth/identity_syntax.hpp"
#include "auth/password_hash.hpp"
#include "submission/policy/sender_policy.hpp"
#include "submission/policy/temporary_failures.hpp"
#include "submission/runtime/fault_injection.hpp"
#include "submission/runtime/log.hpp"
#include "submission/runtime/on_workers.hpp"

namespace truefrom::net {

using runtime::log_error;
using runtime::log_info;
using runtime::log_warning;
using runtime::on_workers;
using runtime::on_workers_then;

namespace {

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

// What the work at the end of DATA gives back: the signature and, in queue mode, whether
// the spool could store the message.
struct Prepared {
  Signing signing;
  bool stored = false;  // queue mode: handed to the spool
  std::string error;    // queue mode: why the spool could not store it
};

}  // namespace

asio::awaitable<bool> Connection::State::throttle_auth() {
  if (!ctx.throttle || !client) co_return true;
  const auto gate = ctx.throttle->check(*client, Clock::now());
  const std::string net = policy::client_network(*client);
  if (gate.blocked) {
    const auto minutes =
        std::chrono::duration_cast<std::chrono::minutes>(gate.retry_after).count() + 1;
    log_warning("throttle: " + peer + " AUTH refused: network " + net + " is blocked (" +
                std::to_string(gate.failures) + " failed logins), " + std::to_string(minutes) +
                " minute(s) left");
    session.auth_failed(policy::temporary::network_blocked(minutes));
    co_return false;
  }
  if (gate.delay > Clock::duration::zero()) {
    log_info(
        "throttle: " + peer + " AUTH delayed " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(gate.delay).count()) +
        " ms (" + std::to_string(gate.failures) + " failed logins from " + net + ")");
    asio::steady_timer wait(socket.get_executor(), gate.delay);
    boost::system::error_code ec;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return true;
}

auth::CredentialCheck Connection::State::throttled_check() {
  if (!ctx.throttle || !client) return ctx.check;
  return [inner = ctx.check, throttle = ctx.throttle, ip = *client](const std::string& who,
                                                                    std::string_view password) {
    if (!throttle->account_blocked(ip, who, Clock::now())) return inner(who, password);
    auth::verify_password_dummy(password);
    auth::CredentialVerdict v;
    v.kind = auth::CredentialVerdict::Kind::kRejected;
    v.detail = "account " + who + " is blocked for network " + policy::client_network(ip) +
               " (failed logins from elsewhere; it has not logged in from there)";
    return v;
  };
}

asio::awaitable<void> Connection::State::auth_step(const smtp::event::AuthStart* start,
                                                   const smtp::event::AuthResponse* response) {
  if (start && !co_await throttle_auth()) co_return;
  if (!sasl) {
    const int bits = tls_stream ? SSL_get_cipher_bits(tls_stream->native_handle(), nullptr) : 0;
    sasl = std::make_unique<auth::SaslExchange>(throttled_check(), ctx.session.hostname,
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
      if (ctx.throttle && client) {
        ctx.throttle->record_success(*client, out.account->account.login, Clock::now());
      }
      login = out.account->account.login;
      seen_changes = ctx.identities->changes();
      log_info("auth: " + peer + " authenticated as " + login +
               (out.account->account.suspended ? " (suspended: MAIL FROM is refused)" : ""));
      session.auth_succeeded(login);
      if (ctx.suspension && client) {
        suspicion(ctx.suspension->login_succeeded(login, policy::wide_network(*client),
                                                  static_cast<std::int64_t>(std::time(nullptr))));
      }
      break;
    case K::kRejected:
      log_warning("auth: " + peer + " failed: " + out.detail);
      if (ctx.throttle && client) {
        const auto r = ctx.throttle->record_failure(*client, out.attempted_login, Clock::now());
        if (r.blocked_now) {
          log_warning("throttle: network " + policy::client_network(*client) + " blocked for " +
                      std::to_string(ctx.throttle->options().block_time.count()) + " s after " +
                      std::to_string(r.failures) + " failed logins (last from " + peer + ")");
        }
      }
      session.auth_failed(Reply{535, {5, 7, 8}, "Authentication credentials invalid"});
      break;
    case K::kUnavailable:
      log_error("auth: " + peer + " could not be checked: " + out.detail);
      session.auth_failed(policy::temporary::auth_unavailable());
      break;
    case K::kProtocolError:
      log_warning("auth: " + peer + " sent a malformed exchange: " + out.detail);
      session.auth_failed(Reply{501, {5, 5, 2}, "Malformed authentication exchange"});
      break;
  }
  sasl.reset();
}

asio::awaitable<void> Connection::State::decide(const smtp::Event& ev) {
  if (runtime::fault_point("decide")) throw std::runtime_error("fault injected at decide");
  if (auto* a = std::get_if<smtp::event::AuthStart>(&ev)) {
    co_await auth_step(a, nullptr);
  } else if (auto* r = std::get_if<smtp::event::AuthResponse>(&ev)) {
    co_await auth_step(nullptr, r);
  } else if (auto* m = std::get_if<smtp::event::MailFrom>(&ev)) {
    co_await mail_from(m);
  } else if (std::holds_alternative<smtp::event::DataEnd>(ev)) {
    co_await data_end();
  }
}

void Connection::State::internal_error(const smtp::Event& ev, const std::string& what) {
  log_error("internal error: " + peer + (login.empty() ? "" : " user " + login) + ": " + what +
            "; answered with a temporary failure");
  if (!session.awaiting_decision()) return;
  if (std::holds_alternative<smtp::event::AuthStart>(ev) ||
      std::holds_alternative<smtp::event::AuthResponse>(ev)) {
    sasl.reset();
    session.auth_failed(policy::temporary::auth_unavailable());
  } else {
    session.reply(policy::temporary::internal_error());
  }
}

asio::awaitable<void> Connection::State::mail_from(const smtp::event::MailFrom* ev) {
  give_back_reserved();
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
      session.reply(policy::temporary::sender_check_unavailable());
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
    log_warning((entry->account.suspended ? "suspension: " : "policy: ") + peer + " user " +
                login + " refused MAIL FROM <" + shown + ">: " + d.refusal->text);
    session.reply(*d.refusal);
    // A foreign sender (553): evidence of a stolen password.
    if (ctx.suspension && sender && d.refusal->code == 553) {
      suspicion(ctx.suspension->binding_refused(login, "MAIL FROM <" + shown + ">",
                                                static_cast<std::int64_t>(std::time(nullptr))));
    }
    co_return;
  }
  if (d.forwarded && ctx.srs && !forwarded_sender(*sender, shown)) co_return;
  if (!co_await reserve_message(shown)) co_return;
  txn_account = std::move(entry);
  session.accept(Reply{
      250,
      {2, 1, 0},
      "Sender <" + shown + "> OK" +
          (txn_srs_sender.empty() ? std::string{} : ", forwarded as <" + txn_srs_sender + ">")});
}

asio::awaitable<bool> Connection::State::reserve_message(const std::string& shown) {
  if (!ctx.sending_counter) co_return true;
  if (!ctx.sending_counter->known(login) && ctx.load_sending_counts) {
    const auto* load = &ctx.load_sending_counts;
    const std::string* who = &login;
    const bool loaded = co_await on_workers(*ctx.workers, [load, who] { return (*load)(*who); });
    if (!loaded) {
      log_warning("limits: " + peer + " user " + login +
                  ": counts unavailable from PostgreSQL; counting on this node's own");
    }
  }
  txn_limits = ctx.limit_rules->current()->for_account(login);
  const auto now = static_cast<policy::SendingCounter::Time>(std::time(nullptr));
  const auto hit = ctx.sending_counter->begin_message(login, txn_limits, now, &txn_slot);
  if (hit) {
    log_warning("limits: " + peer + " user " + login + " refused MAIL FROM <" + shown + ">: " +
                policy::describe_hit(*hit, login, now) + " [" +
                txn_limits.source[static_cast<std::size_t>(hit->key)] + "]");
    session.reply(policy::limit_reply(*hit, login, now));
    if (ctx.suspension && hit->key == policy::LimitKey::kMessagesPerHour) {
      suspicion(ctx.suspension->hourly_limit_reached(login, now));
    }
    co_return false;
  }
  txn_reserved = true;
  txn_counts = {1, 0};
  co_return true;
}

void Connection::State::rcpt_to(const smtp::event::RcptTo& ev) {
  if (txn_reserved) {
    const auto now = static_cast<policy::SendingCounter::Time>(std::time(nullptr));
    const auto hit = ctx.sending_counter->add_recipient(
        login, txn_limits, session.recipients().size(), txn_slot, now);
    if (hit) {
      log_warning("limits: " + peer + " user " + login + " refused RCPT TO <" +
                  ev.recipient.to_string() + ">: " + policy::describe_hit(*hit, login, now) + " [" +
                  txn_limits.source[static_cast<std::size_t>(hit->key)] + "]");
      session.reply(policy::limit_reply(*hit, login, now));
      return;
    }
    ++txn_counts.recipients;
  }
  session.accept(Reply{250, {2, 1, 5}, "Recipient OK"});
}

void Connection::State::give_back_reserved() {
  if (!txn_reserved) return;
  txn_reserved = false;
  ctx.sending_counter->give_back(login, txn_slot, txn_counts);
  txn_counts = {};
}

asio::awaitable<void> Connection::State::end_if_suspended() {
  seen_changes = ctx.identities->changes();
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
    if (!r.status) co_return;  // unknown for now: the next MAIL FROM decides (4xx meanwhile)
    entry = std::move(r.entry);
  }
  if (!entry || !entry->account.suspended) co_return;
  log_warning("suspension: " + peer + " user " + login +
              ": the account was suspended; the session ends at its next command");
  session.end_at_next_command(Reply{421, {4, 7, 1}, ctx.policy.suspended_text(login)});
}

void Connection::State::suspicion(std::optional<policy::SuspensionTrigger> t) {
  if (!t || !ctx.suspend) return;
  log_warning("suspension: " + peer + " user " + login + ": trigger \"" + t->rule +
              "\" fired: " + t->evidence);
  asio::post(*ctx.workers, [suspend = &ctx.suspend, who = login, trigger = std::move(*t)] {
    (*suspend)(who, trigger);
  });
}

bool Connection::State::forwarded_sender(const smtp::Mailbox& sender, const std::string& shown) {
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
  const auto srs = ctx.srs->forward(sender.local + "@" + sender.domain, std::time(nullptr), error);
  if (!srs) {
    log_warning("srs: " + peer + " user " + login + " MAIL FROM <" + shown + ">: " + error);
    session.reply(Reply{553, {5, 1, 7}, "forwarding of <" + shown + "> impossible: " + error});
    return false;
  }
  const auto at = srs->rfind('@');
  txn_srs_sender = smtp::Mailbox{srs->substr(0, at), srs->substr(at + 1)}.to_string();
  txn_srs_audit = "srs: <" + shown + "> rewritten as <" + txn_srs_sender + "> by " + verdict.reason;
  return true;
}

asio::awaitable<void> Connection::State::data_end() {
  const std::string& message = session.message();
  policy::Transaction txn;
  txn.login = login;
  txn.peer = peer;
  txn.peer_address = peer.substr(0, peer.rfind(':'));
  txn.helo = session.helo_name();
  txn.hostname = ctx.session.hostname;
  txn.tls = tls_description();
  txn.mail_from = session.mail_from();
  txn.recipients = session.recipients();
  txn.smtputf8 = session.mail_argument().smtputf8;
  txn.eight_bit = session.mail_argument().body == smtp::BodyType::k8BitMime;
  txn.srs_sender = txn_srs_sender;
  txn.srs_audit = txn_srs_audit;
  txn.queue_id = queue::new_queue_id();
  txn.now = std::time(nullptr);
  txn.message_id_token = new_message_id();
  auto prepared = policy::prepare_message(ctx.policy, txn_account.get(), txn, message);
  if (auto* refusal = std::get_if<policy::Refusal>(&prepared)) {
    log_warning(refusal->log);
    give_back_reserved();
    session.reply(refusal->reply);
    if (ctx.suspension && refusal->sender_binding) {
      suspicion(ctx.suspension->binding_refused(login, refusal->reply.text, txn.now));
    }
    co_return;
  }
  const policy::Preparation& prep = std::get<policy::Preparation>(prepared);

  relay::Envelope env;
  env.mail_from = prep.relay_mail_from;
  env.recipients = prep.relay_recipients;
  env.eight_bit = txn.eight_bit;
  env.smtputf8 = txn.smtputf8;
  queue::MessageInfo info;
  if (ctx.scheduler) {
    info.id = txn.queue_id;
    info.mail_from = env.mail_from;
    info.recipients = env.recipients;
    info.eight_bit = env.eight_bit;
    info.smtputf8 = env.smtputf8;
    info.user = login;
    info.arrival = txn.now;
  }

  // Signed on the workers; in queue mode the worker then hands the message to the spool's
  // commit thread (append and group commit), which resumes this session: the I/O thread
  // is not woken in between. What is spooled is exactly what leaves: the DKIM fields, the
  // added fields, the client's message (not copied).
  Prepared done;
  {
    const ConnectionContext* c = &ctx;
    const policy::Preparation* pp = &prep;
    const std::string* body = &message;
    const queue::MessageInfo* ip = ctx.scheduler ? &info : nullptr;
    auto job = [c, pp, body, ip](auto complete) {
      auto out = std::make_shared<Prepared>();
      if (runtime::fault_point("sign")) throw std::runtime_error("fault injected at sign");
      out->signing = sign_message(c->dkim, pp->added_fields, *body, pp->section, pp->dkim_domain);
      if (!ip || out->signing.outcome.tempfail) {
        if (ip) c->spool->withdraw();
        complete(std::move(*out));
        return;
      }
      out->stored = true;
      c->spool->store(
          *ip, {out->signing.fields, pp->added_fields, *body},
          [out, complete](const std::string& error) mutable {
            out->error = error;
            complete(std::move(*out));
          },
          true);
    };
    // A commit in progress may wait for this message rather than sync without it; a job
    // that fails before it reaches the spool withdraws the announcement.
    if (ip) ctx.spool->announce();
    auto on_failure = [c, ip] {
      if (ip) c->spool->withdraw();
    };
    done = co_await on_workers_then<Prepared>(*ctx.workers, std::move(job), std::move(on_failure));
  }
  const std::vector<std::string_view> parts{done.signing.fields, prep.added_fields, message};
  policy::HandOff handoff;
  if (done.stored) {
    handoff.kind =
        done.error.empty() ? policy::HandOff::Kind::kQueued : policy::HandOff::Kind::kStoreFailed;
    handoff.detail = done.error;
  } else if (!ctx.scheduler && !done.signing.outcome.tempfail) {
    // (No co_await inside a conditional expression: GCC 12 destroys its temporaries twice.)
    const relay::Attempt attempt = co_await ctx.relay->send(env, parts, true);
    handoff.kind = policy::HandOff::Kind::kRelayed;
    handoff.relay_reply = relay::RelayClient::client_reply(attempt, env);
  }
  const policy::Conclusion c =
      policy::conclude(txn, prep, message.size(), done.signing.outcome, handoff);
  for (const auto& line : c.log) log_line(line);
  if (handoff.kind == policy::HandOff::Kind::kQueued) enqueued(std::move(info), parts);
  if (c.accepted) {
    txn_reserved = false;  // counted for good
    session.accept(c.reply);
  } else {
    give_back_reserved();
    session.reply(c.reply);
  }
}

void Connection::State::log_line(const policy::LogLine& line) {
  switch (line.level) {
    case policy::LogLine::Level::kInfo:
      log_info(line.text);
      break;
    case policy::LogLine::Level::kWarning:
      log_warning(line.text);
      break;
    case policy::LogLine::Level::kError:
      log_error(line.text);
      break;
  }
}

void Connection::State::enqueued(queue::MessageInfo info,
                                 const std::vector<std::string_view>& parts) {
  std::string data;
  for (auto p : parts) info.size += p.size();
  data.reserve(info.size);
  for (auto p : parts) data += p;
  ctx.scheduler->enqueued(std::move(info), std::move(data));
}

}  // namespace truefrom::net
