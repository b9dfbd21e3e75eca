// The SMTP client that hands a message to the outbound relay (the smarthost), used by
// passthrough mode: the submitting client gets 250 only after the relay said 250.
// RFC 5321 client side, RFC 3207 STARTTLS (none / opportunistic / required).
// Runs as a coroutine on the caller's executor; no blocking calls.
// Thread-safety: each call is independent.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "submission/core/reply.hpp"

namespace truefrom::relay {

enum class RelayTls { kNone, kOpportunistic, kRequired };

struct RelayOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 25;
  RelayTls starttls = RelayTls::kOpportunistic;
  std::string helo_name = "localhost";
  std::chrono::seconds timeout{120};
};

struct Envelope {
  std::string mail_from;                ///< without brackets; empty for <>
  std::vector<std::string> recipients;  ///< without brackets
  bool eight_bit = false;               ///< BODY=8BITMIME was declared
  bool smtputf8 = false;                ///< SMTPUTF8 was declared (RFC 6531)
};

/// Delivers `message` (header and body, CRLF line ends, not dot-stuffed). Returns the reply
/// to give the submitting client: the relay's own refusal when it refused, 451 4.4.1 when
/// it could not be reached or spoke nonsense, or the relay's final 250.
boost::asio::awaitable<smtp::Reply> deliver(const RelayOptions& options, const Envelope& envelope,
                                            const std::string& message);

}  // namespace truefrom::relay
