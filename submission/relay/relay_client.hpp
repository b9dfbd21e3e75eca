// The SMTP client that hands messages to the outbound relays (the smarthosts): RFC 5321
// client side with PIPELINING (RFC 2920: a transaction in one write) and CHUNKING (RFC 3030:
// BDAT, the message in that same write), STARTTLS (RFC 3207) with certificate
// verification (a CA file or the system's, with the relay's name; or a pinned SHA-256
// certificate fingerprint), AUTH PLAIN (RFC 4954) when configured, several relays tried in
// order of preference, and a pool of connections kept open and reused across messages.
//
// The queue uses it with per-recipient outcomes (some recipients may be accepted and others
// refused); passthrough mode asks for all-or-nothing (one answer for the submitting client).
// The protocol is ClientSession's (sans-IO, client_session.hpp); this driver moves bytes,
// runs timers, does TLS and certificate verification, pooling and failover.
//
// Timeouts per phase (RFC 5321 4.5.3.2): the connection, the greeting, each reply to a
// command, and the message (its write and the reply to its end). A pooled connection idle
// for `check_after` is checked (RSET, `check_timeout`) before it carries a message, and one
// idle for `idle_limit` is closed. Whether each relay answers is RelayHealth's
// (relay_health.hpp): a relay that does not is marked down for every delivery (one log line),
// a prober tries it alone, backing off, and when it answers again (one log line) the
// callback of set_on_relay_up() runs, so the queue retries at once what waited for it.
// Runs as coroutines on the caller's executor; no blocking calls.
// Thread-safety: a RelayClient may be used from any number of coroutines and threads.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "submission/core/reply.hpp"
#include "submission/relay/client_session.hpp"  // RelayTls, Envelope

namespace truefrom::relay {

struct RelayHost {
  std::string host;
  std::uint16_t port = 25;
  std::string to_string() const;
};

/// How long each phase may take (RFC 5321 4.5.3.2 gives 5 minutes for the greeting, MAIL
/// and RCPT, 2 for DATA, 3 per data block and 10 for the end of data: values for the open
/// Internet; a smarthost on the LAN answers in milliseconds, so the defaults are shorter:
/// what a hung relay holds up is bounded by them).
struct RelayTimeouts {
  std::chrono::seconds connect{10};   ///< TCP connection (a relay that drops SYNs)
  std::chrono::seconds greeting{30};  ///< from the connection to the 220
  std::chrono::seconds command{30};   ///< each reply to a command (EHLO, STARTTLS and its
                                      ///< handshake, AUTH, RSET, MAIL, RCPT, DATA)
  std::chrono::seconds data{120};     ///< writing the message, and the reply to its end
};

struct RelayOptions {
  std::vector<RelayHost> hosts{{"127.0.0.1", 25}};  ///< in order of preference
  RelayTls starttls = RelayTls::kRequired;
  /// Verification of the relay's certificate (with starttls): with `fingerprint` (32 octets,
  /// SHA-256 of the DER certificate) only that certificate is accepted; otherwise the chain
  /// must verify against `ca_file` (empty: the system's CAs) and name the relay host.
  std::string ca_file;
  std::vector<unsigned char> fingerprint;
  std::string username;  ///< AUTH PLAIN to the relay when not empty (needs TLS)
  std::string password;
  std::string helo_name = "localhost";
  RelayTimeouts timeouts;
  std::size_t max_idle_connections = 8;   ///< kept open for reuse
  std::chrono::seconds idle_limit{30};    ///< an idle connection older than this is closed
  std::chrono::seconds check_after{5};    ///< one idle this long is checked before reuse
  std::chrono::seconds check_timeout{5};  ///< for the reply to that check (RSET)
  std::chrono::seconds probe_max{5};      ///< a down relay is probed after 1 s, doubling to this
};

/// The outcome of one attempt.
struct Attempt {
  /// The reply for the message as a whole: the relay's final 250, the refusal that ended
  /// the transaction, or 451 4.4.1 when no relay could be reached or one spoke nonsense.
  smtp::Reply reply;
  /// One reply per envelope recipient, in order, once the RCPT stage was reached (empty
  /// otherwise). A recipient is delivered when its reply is positive and `reply` is 250.
  std::vector<smtp::Reply> recipients;
  std::string relay;  ///< host:port that answered, when one did
  /// `reply` is our own 451 4.4.1: no relay could be reached, or the one used stopped
  /// answering (not a refusal of the relay's).
  bool unreachable = false;
  bool delivered_to(std::size_t i) const {
    return reply.code == 250 && i < recipients.size() && recipients[i].positive();
  }
};

class RelayClient {
 public:
  /// Builds the TLS client context (loads `ca_file`). On failure returns null and says why.
  static std::unique_ptr<RelayClient> create(RelayOptions options, std::string& error);
  ~RelayClient();

  const RelayOptions& options() const { return options_; }

  /// One transaction for `message` (header and body, CRLF line ends, not dot-stuffed, given
  /// as parts that are sent one after the other). With `all_or_nothing`, a refused
  /// recipient ends the transaction before DATA (passthrough: one answer for the client).
  boost::asio::awaitable<Attempt> send(const Envelope& envelope,
                                       const std::vector<std::string_view>& message,
                                       bool all_or_nothing);

  /// The reply passthrough mode gives the submitting client for an attempt.
  static smtp::Reply client_reply(const Attempt& attempt, const Envelope& envelope);

  /// Closes the idle connections (at shutdown).
  void close_idle();

  /// Runs `callback` (on an I/O thread, without the client's locks) whenever a relay that
  /// was down answers again; empty: none. Returns once a callback running now has ended.
  void set_on_relay_up(std::function<void()> callback);
  /// How many times a relay came back up so far (see RelayHealth::up_changes).
  std::uint64_t up_changes() const;

  /// Cuts the connections that have waited more than `bound` for the relay (queue flush): a
  /// delivery on one ends with 451 4.4.1 and may be retried. Returns how many were cut.
  std::size_t cut_stuck(std::chrono::seconds bound);

 private:
  struct Impl;
  explicit RelayClient(RelayOptions options);
  RelayOptions options_;
  std::shared_ptr<Impl> impl_;  // shared with the probers and idle timers (weakly)
};

}  // namespace truefrom::relay
