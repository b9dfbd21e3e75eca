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
// Runs as coroutines on the caller's executor; no blocking calls.
// Thread-safety: a RelayClient may be used from any number of coroutines and threads.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
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
  std::chrono::seconds timeout{120};     ///< one whole transaction, or one connection setup
  std::size_t max_idle_connections = 8;  ///< kept open for reuse
  std::chrono::seconds idle_keep{30};    ///< an idle connection older than this is closed
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

 private:
  struct Impl;
  explicit RelayClient(RelayOptions options);
  RelayOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace truefrom::relay
