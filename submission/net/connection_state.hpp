// The state of one connection and its steps, shared by connection.cpp (the transport: the
// socket, TLS, timers and the loop that drives the session) and connection_steps.cpp (what
// the transport does for each decision the session asks for: AUTH, MAIL FROM, the end of
// DATA). Private to submission/net.
// Thread-safety: one State per connection, used on the connection's strand only.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "submission/net/connection.hpp"
#include "submission/net/tls_socket.hpp"
#include "submission/policy/message_preparer.hpp"
#include "submission/policy/sending_limits.hpp"

namespace truefrom::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using smtp::Reply;

// After a timeout or shutdown, the 421 gets this long to be written before the socket closes.
inline constexpr std::chrono::seconds kGoodbyeGrace{10};
inline constexpr std::size_t kReadBuffer = 16 * 1024;
// While DATA content arrives, every this many octets earn the client another idle_timeout
// (RFC 5321 4.5.3.2.5-6's per-block bound in spirit): a big message at modem speed passes,
// one octet every few seconds does not. At 100 octets/s a block takes under 3 minutes.
inline constexpr std::size_t kDataBlock = 16 * 1024;

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
  std::size_t data_since_deadline = 0;  // DATA octets since the deadline was last set
  bool busy = false;                    // working on what the client sent: its clock is stopped
  bool reading = false;
  bool timed_out = false;
  bool stopping = false;  // shutdown asked: 421 once no transaction is under way
  bool stop_now = false;  // shutdown, the drain time over: 421 at the next read
  /// Shutdown asked and nothing left to wait for.
  bool shutdown_due() const { return stopping && (stop_now || !session.in_transaction()); }
  bool closed = false;

  std::optional<policy::IpAddress> client;  // for the abuse controls
  std::uint64_t seen_changes = 0;           // IdentityCache::changes() when last looked
  std::unique_ptr<auth::SaslExchange> sasl;
  std::string login;                       // the authenticated account
  auth::IdentityCache::Entry txn_account;  // the account as it was at MAIL FROM
  std::string txn_srs_sender;  // the SRS address relayed instead of MAIL FROM (forwarded)
  std::string txn_srs_audit;   // which SRS rule decided, for the log
  // Sending limits: what this transaction reserved (its message at MAIL FROM, its
  // recipients at RCPT TO), given back unless it ends in 250.
  policy::EffectiveLimits txn_limits;
  bool txn_reserved = false;
  policy::SendingCounter::Time txn_slot = 0;
  policy::SendingCounter::Counts txn_counts;
  // Not zero-filled: an idle connection keeps only the pages a read has touched resident.
  std::unique_ptr<char[]> read_buffer{new char[kReadBuffer]};

  ~State() { give_back_reserved(); }

  asio::awaitable<void> watchdog();

  // The client's clock: idle_timeout from our last reply to its next whole command (not
  // from its last octet: a client trickling one octet at a time gets no more time), and
  // stopped while we work on what it sent.
  // (The deadline only ever moves later while the watchdog sleeps on it: it re-arms when it
  // wakes early.)
  void client_clock_from_now();

  void client_clock_stopped() { busy = true; }

  asio::awaitable<bool> flush();

  // Reads more input into the session; false when the connection is gone.
  asio::awaitable<bool> read_more();

  asio::awaitable<bool> handshake();

  // True when the client sent something before our greeting (after the implicit-TLS
  // handshake on that port): looked at after ConnectionContext::greeting_delay, without a
  // read, so nothing it sent is consumed or served.
  asio::awaitable<bool> spoke_before_greeting();

  std::string tls_description();

  // Login throttling before an AUTH exchange starts: a blocked network is refused, one with
  // recent failures waits (on a timer: no thread blocks) before its credentials are checked,
  // whatever they turn out to be. False: the session got its refusal.
  asio::awaitable<bool> throttle_auth();

  // The credential check, with login throttling's account block in front: a blocked
  // account is refused like a wrong password after the same work (the dummy hash unknown
  // accounts get), so neither the reply nor its time tells whether the password was right.
  auth::CredentialCheck throttled_check();

  asio::awaitable<void> auth_step(const smtp::event::AuthStart* start,
                                  const smtp::event::AuthResponse* response);

  // The events that need a decision (AUTH, MAIL FROM, end of DATA).
  asio::awaitable<void> decide(const smtp::Event& ev);

  // A decision step threw: log it, and answer the pending command with a temporary failure
  // unless the step had answered it already.
  void internal_error(const smtp::Event& ev, const std::string& what);

  struct Loaded {
    auth::StoreStatus status;
    auth::IdentityCache::Entry entry;
  };

  // MAIL FROM: the account's identities as they are now (a change made by an admin applies
  // to the next transaction), from memory or, on a miss, from the store on the workers.
  asio::awaitable<void> mail_from(const smtp::event::MailFrom* ev);

  // A forwarder account's foreign envelope sender: the SRS rules say rewrite (the default),
  // refuse or pass. Returns false when the session got a refusal.
  bool forwarded_sender(const smtp::Mailbox& sender, const std::string& shown);

  // Sending limits at MAIL FROM: loads the account's counts at its first sight, then
  // reserves the message. False when the session got the 451.
  asio::awaitable<bool> reserve_message(const std::string& shown);
  // RCPT TO: the recipient limits, then 250.
  void rcpt_to(const smtp::event::RcptTo& ev);
  // The transaction ended without 250 (refused, RSET, a new MAIL, the connection's end).
  void give_back_reserved();

  // Some account changed since this session last looked: if it was this session's and it
  // is suspended now, the next command ends the session.
  asio::awaitable<void> end_if_suspended();
  // A suspension trigger fired (or nothing, when `t` is empty): log it and suspend the
  // account on the workers.
  void suspicion(std::optional<policy::SuspensionTrigger> t);

  asio::awaitable<void> data_end();

  static void log_line(const policy::LogLine& line);

  // Queue mode: the message is durable (group commit); its first delivery attempt starts
  // from memory.
  void enqueued(queue::MessageInfo info, const std::vector<std::string_view>& parts);
};

}  // namespace truefrom::net
