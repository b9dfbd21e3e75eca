#include "submission/app/commands.hpp"

#include <unistd.h>

#include <openssl/crypto.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <thread>

#include "auth/credential_check.hpp"
#include "auth/identity_cache.hpp"
#include "auth/identity_store.hpp"
#include "auth/identity_syntax.hpp"
#include "auth/password_hash.hpp"
#include "auth/sasl_server.hpp"
#include "signer/srs/srs.hpp"
#include "signer/srs/srs_rules.hpp"
#include "submission/app/cli.hpp"
#include "submission/app/config.hpp"
#include "submission/app/dkim_keys.hpp"
#include "submission/app/embedded_postgres.hpp"
#include "submission/app/sending_limits.hpp"
#include "submission/app/service_manager.hpp"
#include "submission/app/service_user.hpp"
#include "submission/app/srs_rules.hpp"
#include "submission/app/suspension.hpp"
#include "submission/app/tls_context.hpp"
#include "submission/core/address.hpp"
#include "submission/net/server.hpp"
#include "submission/net/socketmap.hpp"
#include "submission/policy/sender_policy.hpp"
#include "submission/runtime/log.hpp"
#include "submission/runtime/on_workers.hpp"

namespace truefrom::app {
namespace {

constexpr const char* kDefaultConfig = "/etc/truefrom/truefrom.toml";

bool read_password(std::string& password, std::string& error) {
  if (isatty(STDIN_FILENO)) std::cerr << "password: " << std::flush;
  if (!std::getline(std::cin, password)) {
    error = "no password on standard input";
    return false;
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.empty()) {
    error = "the password is empty";
    return false;
  }
  return true;
}

bool valid_login(const std::string& login, std::string& error) {
  if (login.empty() || login.size() > 255) {
    error = "a login must be 1 to 255 characters";
    return false;
  }
  for (char c : login) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u == 127) {
      error = "the login \"" + login + "\" contains a space or control character";
      return false;
    }
  }
  return true;
}

int cmd_serve(const Config& config) {
  std::string error;
  // A file-size limit (RLIMIT_FSIZE) makes a spool write fail with EFBIG, answered 452 like
  // a full disk, instead of killing the server.
  std::signal(SIGXFSZ, SIG_IGN);
  // TLS sessions write to their sockets directly: a peer gone away is an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  // Who serves (app/service_user.hpp): decided first, so that a missing user stops the
  // start before anything is bound or created.
  const auto serving_as = service_user(config, error);
  if (!serving_as) return fail(error);
  if (::geteuid() == 0 && !serving_as->drop) {
    runtime::log_warning(
        "serving as root ([server] run_as_root = true): a flaw in the network-facing code "
        "would hand an attacker the whole machine; set [server] user instead");
  }
  if (auto e = auth::SaslLibrary::init("PLAIN LOGIN"); !e.empty()) return fail(e);
  auto tls = make_tls_context(config, error);
  if (!tls) return fail(error);
  Database db(config);
  if (!db.open(error)) return fail(error);
  auto st = db.store().check_schema();
  if (!st && db.embedded() && st.code == auth::StoreErrc::kSchemaMissing) {
    int applied = 0;
    st = db.store().migrate(applied);
    if (st)
      runtime::log_info("embedded database: applied " + std::to_string(applied) + " migration(s)");
  }
  if (!st) return fail(describe(st));

  // What only root may read is read now: the TLS key (above) and the SRS secrets.
  std::optional<signer::srs::Srs> srs;
  if (config.srs_enabled) {
    srs = load_srs(config, error);
    if (!srs) return fail(error);
  }
  // The listeners are bound before root is given up (ports below 1024). The io_context
  // outlives everything below; the server is destroyed first at the end (its sessions give
  // their counts back to the objects built after it), as if it were declared last.
  boost::asio::io_context io;
  std::optional<net::Server> server;
  server.emplace(io, net::ConnectionContext(), config.max_connections);
  if (config.submission &&
      !server->listen(config.submission->host, config.submission->port, false, error)) {
    return fail(error);
  }
  if (config.submissions &&
      !server->listen(config.submissions->host, config.submissions->port, true, error)) {
    return fail(error);
  }
  // The spool is the server's: made before the drop so that a fresh install works, and
  // handed over whole (a spool written by a root server of an earlier version).
  if (config.queue_mode) {
    std::error_code fec;
    std::filesystem::create_directories(config.queue_dir, fec);
    if (fec) {
      return fail("cannot create [queue] dir " + config.queue_dir.string() + ": " + fec.message());
    }
    if (!hand_over(config.queue_dir, *serving_as, true, error)) return fail(error);
  }
  if (!drop_privileges(*serving_as, error)) return fail(error);
  if (serving_as->drop) {
    runtime::log_info("running as user " + serving_as->name + " (uid " +
                      std::to_string(serving_as->uid) + ", gid " + std::to_string(serving_as->gid) +
                      ")");
  }

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const unsigned worker_threads = config.worker_threads ? config.worker_threads : 2 * cores;
  boost::asio::thread_pool workers(worker_threads);
  if (auto e = runtime::mark_background_pool(workers, worker_threads); !e.empty()) {
    runtime::log_info(e + "; the worker threads run as ordinary threads");
  }
  net::ConnectionContext ctx;
  ctx.session.hostname = config.hostname;
  ctx.session.max_message_size = config.max_message_size;
  ctx.session.max_recipients = config.max_recipients;
  ctx.tls = tls.get();
  ctx.workers = &workers;
  // Automatic suspension's triggers (policy/suspension.hpp): an account changed by an admin
  // (resumed, say) starts afresh.
  std::optional<policy::SuspensionTriggers> triggers;
  if (config.suspension_enabled) triggers.emplace(config.suspension);
  auth::IdentityCache identities(db.store());
  identities.start(
      [](bool up, const std::string& detail) {
        if (up) {
          runtime::log_info("identity cache: " + detail);
        } else {
          runtime::log_error("identity cache: " + detail +
                             "; until it is back every check queries PostgreSQL and fails with "
                             "4xx when PostgreSQL is down");
        }
      },
      [&triggers](const std::string& login) {
        if (triggers && !login.empty()) triggers->reset(login);
      });
  ctx.check = auth::make_credential_check(identities);
  ctx.identities = &identities;
  ctx.policy = policy::SenderPolicy(config.policy);
  signer::KeyManager dkim_keys(serving_as->uid, [](bool ok, const std::string& line) {
    ok ? runtime::log_info("dkim: " + line) : runtime::log_error("dkim: " + line);
  });
  DkimKeyWatcher dkim_watcher(db.store(), dkim_keys, [](bool ok, const std::string& line) {
    ok ? runtime::log_info("dkim: " + line) : runtime::log_error("dkim: " + line);
  });
  if (auto dst = dkim_watcher.load(); !dst) return fail("cannot load DKIM keys: " + describe(dst));
  dkim_watcher.start();
  const signer::DkimSigner dkim(config.dkim_signing);
  ctx.dkim.keys = &dkim_keys;
  ctx.dkim.signer = &dkim;
  ctx.dkim.fallback_domain = config.dkim_fallback_domain;
  ctx.dkim.tempfail_on_key_error = config.dkim_tempfail_on_key_error;
  // SRS: forwarder accounts' foreign envelope senders, by the rules in the database.
  signer::srs::SrsRuleHolder srs_rules;
  std::unique_ptr<SrsRuleWatcher> srs_watcher;
  if (config.srs_enabled) {
    srs_watcher = std::make_unique<SrsRuleWatcher>(
        db.store(), srs_rules, [](bool ok, const std::string& line) {
          ok ? runtime::log_info("srs: " + line) : runtime::log_error("srs: " + line);
        });
    if (auto sst = srs_watcher->load(); !sst)
      return fail("cannot load SRS rules: " + describe(sst));
    srs_watcher->start();
    ctx.srs = &*srs;
    ctx.srs_rules = &srs_rules;
  }

  // Destroyed in reverse order: the server (reset at the end), the scheduler, the relay
  // client's pooled connections, and only then the io_context they are bound to.
  auto relay = relay::RelayClient::create(config.relay, error);
  if (!relay) return fail(error);
  ctx.relay = relay.get();
  ctx.idle_timeout = std::chrono::seconds(config.idle_timeout);
  ctx.greeting_delay = std::chrono::milliseconds(config.greeting_delay_ms);
  ctx.session_timeout = std::chrono::seconds(config.session_timeout);
  ctx.drain_timeout = std::chrono::seconds(config.drain_timeout);

  queue::Spool spool(config.queue_dir);
  std::unique_ptr<queue::Scheduler> scheduler;
  if (config.queue_mode) {
    std::vector<std::string> warnings;
    if (!spool.prepare(error, &warnings)) return fail(error);
    for (const auto& w : warnings) runtime::log_error("queue: " + w);
    scheduler = std::make_unique<queue::Scheduler>(io, spool, *relay, workers, config.queue);
    // A suspended account's messages are held, not delivered (schema 0006).
    scheduler->set_held_user([&identities](const std::string& user, bool may_block) {
      auth::IdentityCache::Entry entry;
      if (!identities.lookup(user, entry) && (!may_block || !identities.get(user, entry))) {
        return false;  // unknown now (PostgreSQL down): delivered, as before suspensions
      }
      return entry && entry->account.suspended;
    });
    if (!scheduler->start(error)) return fail(error);
    ctx.spool = &spool;
    ctx.scheduler = scheduler.get();
  }
  std::unique_ptr<net::SocketmapServer> socketmap;
  if (srs && config.srs_socketmap) {
    socketmap = std::make_unique<net::SocketmapServer>(io, *srs);
    if (!socketmap->listen(config.srs_socketmap->host, config.srs_socketmap->port, error)) {
      return fail(error);
    }
    socketmap->start();
  }
  // Abuse controls (policy/login_throttle.hpp, policy/connection_limits.hpp).
  std::optional<policy::LoginThrottle> throttle;
  std::optional<policy::ConnectionLimits> connection_limits;
  if (config.throttle_enabled) {
    throttle.emplace(config.throttle);
    connection_limits.emplace(config.connection_limits);
    ctx.throttle = &*throttle;
    ctx.connection_limits = &*connection_limits;
  }
  // Per-account sending limits (policy/sending_limits.hpp; the counts' sync thread in
  // app/sending_limits.hpp). Stopped after the server: the sessions' counts are given back
  // or kept first, then the last increments are written.
  policy::LimitRuleHolder limit_rules(config.limits);
  policy::SendingCounter sending_counter;
  std::unique_ptr<SendingLimitSync> limit_sync;
  if (config.limits_enabled) {
    limit_sync = std::make_unique<SendingLimitSync>(
        db.store(), limit_rules, sending_counter, config.limits_sync_interval,
        [](bool ok, const std::string& line) {
          ok ? runtime::log_info("limits: " + line) : runtime::log_error("limits: " + line);
        });
    if (auto lst = limit_sync->load_rules(); !lst)
      return fail("cannot load the sending limits: " + describe(lst));
    limit_sync->start();
    ctx.limit_rules = &limit_rules;
    ctx.sending_counter = &sending_counter;
    ctx.load_sending_counts = [sync = limit_sync.get()](const std::string& login) {
      return sync->load_account(login);
    };
  }
  std::unique_ptr<Suspender> suspender;
  if (triggers) {
    suspender = std::make_unique<Suspender>(db.store(), *triggers, ctx.spool, ctx.scheduler,
                                            config.hostname, config.suspension_notify);
    ctx.suspension = &*triggers;
    ctx.suspend = [s = suspender.get()](const std::string& login,
                                        const policy::SuspensionTrigger& t) {
      s->suspend(login, t);
    };
  }
  server->set_context(ctx);
  std::string relays;
  for (const auto& h : config.relay.hosts) relays += (relays.empty() ? "" : ", ") + h.to_string();
  const std::string ready =
      "truefrom " + config.hostname + " ready; relay " + relays +
      (config.queue_mode ? "; queue " + config.queue_dir.string() : "; passthrough (no queue)");
  runtime::log_info(ready);
  ServiceManager service_manager(io);
  server->set_on_stopping([&service_manager] { service_manager.stopping(); });
  service_manager.ready(ready);
  server->run(config.io_threads ? config.io_threads : cores);
  if (scheduler) scheduler->stop();
  if (socketmap) socketmap->stop();
  if (srs_watcher) srs_watcher->stop();
  workers.join();
  if (limit_sync) limit_sync->stop();
  dkim_watcher.stop();
  identities.stop();
  server.reset();
  runtime::log_info("stopped");
  return 0;
}

int cmd_db(const Args& a, const Config& config) {
  if (a.positional.size() != 2 || a.positional[1] != "migrate") {
    return usage_error("expected: truefrom db migrate", "db");
  }
  Database db(config);
  std::string error;
  if (!db.open(error)) return fail(error);
  int applied = 0;
  const auto st = db.store().migrate(applied);
  if (!st) return fail("migration failed, nothing was changed: " + describe(st));
  std::cout << "database schema is up to date (" << applied << " migration(s) applied)\n";
  return 0;
}

int cmd_account(const Args& a, const Config& config) {
  const auto& p = a.positional;
  if (p.size() < 2) return usage_error("expected an account command", "account");
  const std::string& verb = p[1];
  const bool needs_login = verb != "list";
  if (verb != "add" && verb != "passwd" && verb != "enable" && verb != "disable" &&
      verb != "remove" && verb != "list" && verb != "set" && verb != "suspend" &&
      verb != "resume") {
    return usage_error("unknown account command \"" + verb + "\"", "account");
  }
  if (p.size() != (needs_login ? 3u : 2u)) {
    return usage_error(needs_login ? "expected: truefrom account " + verb + " LOGIN"
                                   : "expected: truefrom account list",
                       "account");
  }
  std::string error;
  const std::string login = needs_login ? p[2] : std::string{};
  if (needs_login && !valid_login(login, error)) return fail(error);
  if (verb == "set" && (!a.forwarder || (*a.forwarder != "yes" && *a.forwarder != "no"))) {
    return usage_error("expected: truefrom account set LOGIN --forwarder yes|no", "account");
  }
  if (verb != "set" && a.forwarder) {
    return usage_error("--forwarder belongs to: truefrom account set LOGIN --forwarder yes|no",
                       "account");
  }
  if (verb != "suspend" && a.reason) {
    return usage_error("--reason belongs to: truefrom account suspend LOGIN --reason TEXT",
                       "account");
  }
  if (a.reason) {
    for (char ch : *a.reason) {
      if (static_cast<unsigned char>(ch) < 0x20) {
        return usage_error("--reason must be one line of text", "account");
      }
    }
  }
  std::optional<std::string> hash;
  if (verb == "add" || verb == "passwd") {
    if (!a.password_stdin) {
      return usage_error(
          "give the password on standard input with --password-stdin "
          "(so it never shows in the process list or shell history)",
          "account");
    }
    std::string password;
    if (!read_password(password, error)) return fail(error);
    hash = auth::hash_password(password);
    if (!hash) return fail("could not hash the password (libxcrypt failed)");
  }
  Database db(config);
  if (!db.open(error)) return fail(error);
  auto& store = db.store();
  if (auto st = store.check_schema(); !st) return fail(describe(st));
  auth::StoreStatus st;
  if (verb == "add") {
    st = store.add_account(login, *hash);
    if (st)
      std::cout << "account " << login
                << " added; give it sender addresses with: truefrom sender add " << login
                << " ADDRESS\n";
  } else if (verb == "passwd") {
    st = store.set_password(login, *hash);
    if (st) std::cout << "password of " << login << " changed\n";
  } else if (verb == "enable" || verb == "disable") {
    st = store.set_enabled(login, verb == "enable");
    if (st) std::cout << "account " << login << " " << verb << "d\n";
  } else if (verb == "remove") {
    st = store.remove_account(login);
    if (st) std::cout << "account " << login << " removed with its sender identities\n";
  } else if (verb == "set") {
    const bool on = *a.forwarder == "yes";
    st = store.set_forwarder(login, on);
    if (st) {
      std::cout << "account " << login
                << (on ? " is now a forwarder: it may use foreign envelope senders and its "
                         "headers are not bound\n"
                       : " is no longer a forwarder\n");
    }
  } else if (verb == "suspend") {
    bool already = false;
    const std::string reason = "by the administrator" + (a.reason ? ": " + *a.reason : "");
    st = store.suspend(login, reason, &already);
    if (st && already) {
      std::cout << "account " << login << " was suspended already (its reason is kept)\n";
    } else if (st) {
      std::cout << "account " << login
                << " suspended: every MAIL FROM is refused, its open sessions end at their "
                   "next command (running servers apply it within a second)\n";
    }
    if (st) return queue_change_account(config, "hold", login);
  } else if (verb == "resume") {
    st = store.resume(login);
    if (st) {
      std::cout << "account " << login
                << " resumed; its held messages stay held: truefrom queue list --account " << login
                << ", then queue release|delete --account " << login << "\n";
    }
  } else {
    std::vector<auth::Account> accounts;
    st = store.list_accounts(accounts);
    std::size_t suspended = 0;
    for (const auto& acc : accounts) {
      std::cout << acc.login << (acc.enabled ? "" : "\t(disabled)")
                << (acc.forwarder ? "\t(forwarder)" : "")
                << (acc.suspended
                        ? "\t(suspended " + acc.suspended_at + " UTC: " + acc.suspended_reason + ")"
                        : "")
                << "\n";
      suspended += acc.suspended ? 1 : 0;
    }
    if (st && suspended) std::cout << suspended << " suspended account(s)\n";
  }
  if (!st) return fail(describe(st));
  return 0;
}

int cmd_sender(const Args& a, const Config& config) {
  const auto& p = a.positional;
  if (p.size() < 2) return usage_error("expected a sender command", "sender");
  const std::string& verb = p[1];
  std::string error;
  if (verb == "list") {
    if (p.size() > 3) return usage_error("expected: truefrom sender list [LOGIN]", "sender");
  } else if (verb == "add" || verb == "remove") {
    if (p.size() != 4)
      return usage_error("expected: truefrom sender " + verb + " LOGIN ADDRESS", "sender");
  } else {
    return usage_error("unknown sender command \"" + verb + "\"", "sender");
  }
  if (a.on_behalf && verb != "add") {
    return usage_error("--on-behalf belongs to: truefrom sender add LOGIN ADDRESS --on-behalf",
                       "sender");
  }
  auth::SenderIdentity identity;
  if (verb != "list" && !auth::parse_sender_identity(p[3], identity, error)) return fail(error);
  identity.on_behalf = a.on_behalf;
  Database db(config);
  if (!db.open(error)) return fail(error);
  auto& store = db.store();
  if (auto st = store.check_schema(); !st) return fail(describe(st));
  auth::StoreStatus st;
  const char* kind = identity.kind == auth::SenderIdentity::Kind::kDomain ? "domain" : "address";
  if (verb == "add") {
    bool updated = false;
    st = store.add_sender(p[2], identity, &updated);
    if (st) {
      std::cout << p[2] << (updated ? " now sends " : " may now send ")
                << (identity.on_behalf ? "on behalf of " : "as ") << kind << " " << identity.value
                << "\n";
    }
  } else if (verb == "remove") {
    st = store.remove_sender(p[2], identity);
    if (st) std::cout << p[2] << " may no longer send as " << kind << " " << identity.value << "\n";
  } else {
    std::vector<std::pair<std::string, auth::SenderIdentity>> rows;
    st = store.list_senders(p.size() == 3 ? std::optional<std::string>(p[2]) : std::nullopt, rows);
    for (const auto& [login, id] : rows) {
      std::cout << login << "\t"
                << (id.kind == auth::SenderIdentity::Kind::kDomain ? "domain" : "address") << "\t"
                << id.value << "\t" << (id.on_behalf ? "on-behalf" : "send-as") << "\t#" << id.id
                << "\n";
    }
  }
  if (!st) return fail(describe(st));
  return 0;
}

// Reads an .eml file for `check`; files saved with LF line ends are converted to CRLF.
bool read_message_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read --message " + path + ": " + std::strerror(errno);
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (out.find("\r\n") == std::string::npos) {
    std::string crlf;
    for (char c : out) {
      if (c == '\n') crlf += '\r';
      crlf += c;
    }
    out = std::move(crlf);
  }
  return true;
}

void print_audit(const std::string& audit) {
  for (std::size_t pos = 0; pos < audit.size();) {
    const auto semi = audit.find("; ", pos);
    std::cout << "  " << audit.substr(pos, semi == std::string::npos ? semi : semi - pos) << "\n";
    if (semi == std::string::npos) break;
    pos = semi + 2;
  }
}

int cmd_check(const Args& a, const Config& config) {
  const auto& p = a.positional;
  if (p.size() != 2 || !a.mail_from) {
    return usage_error("expected: truefrom check LOGIN --mail-from ADDRESS [--message FILE]",
                       "check");
  }
  std::string error;
  std::optional<smtp::Mailbox> mail_from;
  std::string envelope = *a.mail_from;
  if (envelope.size() >= 2 && envelope.front() == '<' && envelope.back() == '>') {
    envelope = envelope.substr(1, envelope.size() - 2);
  }
  if (!envelope.empty()) {
    mail_from = smtp::parse_mailbox(envelope, &error, true);
    if (!mail_from) return fail("--mail-from " + *a.mail_from + ": " + error);
  }
  std::string message;
  if (a.message && !read_message_file(*a.message, message, error)) return fail(error);
  Database db(config);
  if (!db.open(error)) return fail(error);
  auto& store = db.store();
  if (auto st = store.check_schema(); !st) return fail(describe(st));
  std::optional<auth::AccountIdentities> account;
  if (auto st = store.find_for_auth(p[1], account); !st) return fail(describe(st));
  if (!account) return fail("no account " + p[1] + " (list them with: truefrom account list)");
  const policy::SenderPolicy policy(config.policy);
  std::cout << "account " << account->account.login
            << (account->account.enabled ? "" : " (disabled)")
            << (account->account.forwarder ? " (forwarder)" : "") << ", "
            << account->identities.size() << " sender identities\n";
  const std::string shown = mail_from ? mail_from->to_string() : std::string{};
  policy::Decision d = policy.check_envelope(*account, mail_from);
  std::string srs_line;
  if (!d.refusal && d.forwarded && mail_from) {
    if (!config.srs_enabled) {
      srs_line = "forwarded sender passed unchanged: SRS is not configured ([srs])";
    } else {
      std::vector<auth::SrsRuleRow> rows;
      if (auto st = store.list_srs_rules(rows); !st) return fail(describe(st));
      const signer::srs::SrsRules rules(to_srs_rules(rows));
      const auto dom = auth::normalize_domain(mail_from->domain);
      const auto v = rules.decide(dom ? *dom : mail_from->domain, account->account.login);
      if (v.action == signer::srs::SrsAction::kRefuse) {
        std::cout << "refused: 550 5.7.1 forwarding of <" << shown << "> refused by policy\n"
                  << "  by " << v.reason << "\n";
        return 1;
      }
      if (v.action == signer::srs::SrsAction::kPass) {
        srs_line = "forwarded sender passed unchanged by " + v.reason;
      } else {
        std::string ignored;
        std::string as = "an SRS address in " + config.srs.domain;
        if (const auto srs = load_srs(config, ignored)) {
          if (auto out = srs->forward(mail_from->local + "@" + mail_from->domain,
                                      std::time(nullptr), ignored)) {
            as = "<" + *out + ">";
          }
        }
        srs_line = "forwarded sender rewritten as " + as + " by " + v.reason;
      }
    }
  }
  if (!d.refusal && a.message) {
    d = policy.check_message(*account, mail_from, message,
                             smtp::is_utf8_address(mail_from.value_or(smtp::Mailbox{})));
  }
  if (d.refusal) {
    std::cout << "refused: " << d.refusal->serialize();
    return 1;
  }
  // The sending limits with the counts in the database now (limits_commands.cpp).
  LimitReport limits;
  if (config.limits_enabled) {
    if (auto st = load_limit_report(store, config, account->account.login, limits); !st)
      return fail(describe(st));
    if (limits.hit) {
      std::cout << "refused: " << limits.reply.serialize() << "sending limits:\n";
      print_limit_report(limits);
      return 1;
    }
  }
  std::cout << (a.message ? "accepted (envelope and headers):\n"
                          : "accepted (envelope only; add --message FILE to check headers):\n");
  print_audit(d.audit);
  if (!srs_line.empty()) std::cout << "  " << srs_line << "\n";
  if (config.limits_enabled) {
    std::cout << "sending limits (within them now):\n";
    print_limit_report(limits);
  } else {
    std::cout << "sending limits: off ([limits] enabled = false)\n";
  }
  return 0;
}

}  // namespace

int run_command_line(const std::vector<std::string>& in) {
  const Args a = parse_args(in);
  const std::string command = a.positional.empty() ? std::string{} : a.positional[0];
  if (a.help) {
    std::cout << help_text(command).value_or(*help_text(""));
    return 0;
  }
  if (a.version) {
    std::cout << "truefrom " << TRUEFROM_VERSION << " (" << OpenSSL_version(OPENSSL_VERSION)
              << ")\n";
    return 0;
  }
  if (command.empty()) {
    std::cerr << *help_text("");
    return 2;
  }
  if (!help_text(command)) return usage_error("unknown command \"" + command + "\"", "");
  if (!a.unknown_option.empty()) return usage_error(a.unknown_option, command);
  if (command == "serve" && a.positional.size() != 1) {
    return usage_error("serve takes no arguments", "serve");
  }
  // libpq waits this long for an unreachable server (unless the admin set it).
  setenv("PGCONNECT_TIMEOUT", "5", 0);
  std::string error;
  const auto config = load_config(a.config.value_or(kDefaultConfig), error);
  if (!config) return fail(error);
  if (command == "serve") return cmd_serve(*config);
  if (command == "db") return cmd_db(a, *config);
  if (command == "account") return cmd_account(a, *config);
  if (command == "check") return cmd_check(a, *config);
  if (command == "dkim") return cmd_dkim(a, *config);
  if (command == "queue") return cmd_queue(a, *config);
  if (command == "srs") return cmd_srs(a, *config);
  if (command == "limits") return cmd_limits(a, *config);
  if (command == "config") return cmd_config(a, *config);
  return cmd_sender(a, *config);
}

}  // namespace truefrom::app
