// The reasons a relay connection cannot be used (ClientSession's Failed event), as an
// `enum class` with its std::error_category: one code per check of the session, so the
// driver and the logs can tell them apart without parsing texts. The words an admin reads
// (with the relay's own reply) travel beside the code in Failed::reason.
// Thread-safety: the category is a stateless singleton.
#pragma once

#include <string>
#include <system_error>

namespace truefrom::relay {

enum class ClientError {
  kGreetingRefused = 1,  ///< the greeting was not 220 (RFC 5321 4.3.1)
  kEhloRefused,          ///< EHLO was not answered 250
  kStartTlsNotOffered,   ///< starttls = "required" and the relay does not offer it
  kStartTlsRefused,      ///< STARTTLS answered other than 220 while required
  kDataBeforeTls,        ///< the relay sent bytes after its 220 to STARTTLS (RFC 3207 6)
  kTlsNotVerified,       ///< a password is configured, but TLS is absent or unverified
  kAuthNotOffered,       ///< a password is configured, the relay does not offer AUTH PLAIN
  kAuthRefused,          ///< AUTH PLAIN was not answered 235
  kRsetRefused,          ///< RSET before a transaction on a reused connection was refused
  kRelayClosing,         ///< 421 (RFC 5321 3.8): the relay is closing the connection
  kUnexpectedReply,      ///< a reply no command can have (e.g. 354 to MAIL)
  kMalformedReply,       ///< not an RFC 5321 4.2 reply line, or a bare CR or LF in one
  kReplyTooLong,         ///< one reply (all its lines) passed the configured limit
  kConnectionClosed,     ///< the relay closed the connection while a reply was due
};

/// The category of ClientError ("relay client").
const std::error_category& client_category();

inline std::error_code make_error_code(ClientError e) {
  return {static_cast<int>(e), client_category()};
}

}  // namespace truefrom::relay

template <>
struct std::is_error_code_enum<truefrom::relay::ClientError> : std::true_type {};
