// One client connection: the transport around smtp::Session. It moves bytes between the
// socket (plain, then TLS after STARTTLS, or TLS from the start) and the session, runs the
// idle and session timers, and performs the effects the session asks for: the TLS
// handshake, SASL steps and credential checks (on the worker pool), the sender binding
// checks (identities from the cache, loaded on the worker pool on a miss), and at the end
// of DATA what the message preparer (submission/policy/message_preparer.hpp) decides: DKIM
// signing (on the worker pool) and the hand-off: the durable queue (write + group-commit
// fsync before 250) or, in passthrough mode, the relay itself. No protocol logic lives here.
// A step that throws (a bug, an exhausted resource) is logged and answered with a
// temporary failure; the connection goes on.
// Thread-safety: each connection runs on its own strand.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "auth/identity_cache.hpp"
#include "auth/sasl_server.hpp"
#include "signer/srs/srs.hpp"
#include "signer/srs/srs_rules.hpp"
#include "submission/core/session.hpp"
#include "submission/net/message_signing.hpp"
#include "submission/policy/connection_limits.hpp"
#include "submission/policy/login_throttle.hpp"
#include "submission/policy/sender_policy.hpp"
#include "submission/policy/sending_limits.hpp"
#include "submission/policy/suspension.hpp"
#include "submission/queue/scheduler.hpp"
#include "submission/queue/spool.hpp"
#include "submission/relay/relay_client.hpp"

namespace truefrom::net {

/// What every connection shares; owned by the server, outlives all connections.
struct ConnectionContext {
  smtp::SessionConfig session;
  boost::asio::ssl::context* tls = nullptr;
  boost::asio::thread_pool* workers = nullptr;
  auth::CredentialCheck check;
  /// Accounts and identities (for the binding checks); outlives all connections.
  auth::IdentityCache* identities = nullptr;
  policy::SenderPolicy policy;
  /// DKIM: the active keys (kept current from the database) and the signer. No keys: mail
  /// leaves unsigned.
  SigningSetup dkim;
  /// SRS for forwarder accounts' foreign envelope senders. Null: they pass unchanged.
  const signer::srs::Srs* srs = nullptr;
  const signer::srs::SrsRuleHolder* srs_rules = nullptr;
  /// Hand-off: with a spool and a scheduler (queue mode) the message is made durable before
  /// 250; without (passthrough) the relay's verdict is the client's answer.
  relay::RelayClient* relay = nullptr;
  queue::Spool* spool = nullptr;
  queue::Scheduler* scheduler = nullptr;
  /// Abuse controls: failed logins per network and account; connections per network. Null:
  /// off.
  policy::LoginThrottle* throttle = nullptr;
  policy::ConnectionLimits* connection_limits = nullptr;
  /// Per-account sending limits: the rules and the counts. Null: off.
  const policy::LimitRuleHolder* limit_rules = nullptr;
  policy::SendingCounter* sending_counter = nullptr;
  /// Reads an account's counts at its first sight on this node (blocks: runs on the
  /// workers); false when the database could not tell.
  std::function<bool(const std::string& login)> load_sending_counts;
  /// Automatic suspension: the triggers, and what suspends an account when one fires
  /// (blocking: run on the workers). Null: off.
  policy::SuspensionTriggers* suspension = nullptr;
  std::function<void(const std::string& login, const policy::SuspensionTrigger& trigger)> suspend;
  std::chrono::seconds idle_timeout{300};
  std::chrono::seconds session_timeout{3600};
  /// How long a shutdown waits for transactions under way to finish.
  std::chrono::seconds drain_timeout{30};
  /// How long the greeting waits for a client that talks first (RFC 5321 3.1: a client
  /// waits for the 220); such a client gets 554 and the close. Zero: only what has already
  /// arrived when the greeting is due counts.
  std::chrono::milliseconds greeting_delay{0};
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  /// `client`: the client's address as the server read it when it accepted the socket
  /// (the abuse controls count by it; nullopt when the socket could not tell).
  Connection(boost::asio::ip::tcp::socket socket, const ConnectionContext& context,
             bool implicit_tls, std::optional<policy::IpAddress> client);
  ~Connection();

  /// Runs the session to its end.
  boost::asio::awaitable<void> run();
  /// Asks the session to end with 421 4.3.2 (server shutdown): at once when it is between
  /// transactions, or once its transaction has been answered; `now`: at once regardless
  /// (the drain time is over). Safe from any thread.
  void stop(bool now = false);
  /// The client's address given at construction: what the abuse controls counted.
  const std::optional<policy::IpAddress>& client() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace truefrom::net
