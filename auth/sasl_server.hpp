// Cyrus SASL server glue for SMTP AUTH (RFC 4954) with PLAIN and LOGIN.
//
// truefrom's own credential check (SASL_CB_SERVER_USERDB_CHECKPASS) is the only verifier:
// Cyrus reads no configuration file, loads only the PLAIN and LOGIN plugins (never sasldb),
// and pwcheck_method names no real verifier, so a "no" from the check is final. The outcome
// reported to the session comes from the check itself, which also tells a temporary failure
// (database down) from bad credentials.
//
// Thread-safety: SaslLibrary::init once, before any thread uses SASL. A SaslExchange belongs
// to one connection and its calls must not overlap; they block (password hashing, database)
// and run on the worker pool.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/identity.hpp"

namespace truefrom::auth {

/// Process-wide Cyrus SASL setup.
class SaslLibrary {
 public:
  /// Initializes libsasl2 with `mechanisms` (e.g. "PLAIN LOGIN"). Returns an error text, or
  /// an empty string on success. Safe to call more than once (later calls do nothing).
  static std::string init(const std::string& mechanisms);
};

/// The verdict of truefrom's credential check.
struct CredentialVerdict {
  enum class Kind { kAccepted, kRejected, kUnavailable };
  Kind kind = Kind::kRejected;
  std::shared_ptr<const AccountIdentities> account;  ///< set when accepted
  std::string detail;                                ///< for the log (never sent to the client)
};

/// Checks a login and password (blocking).
using CredentialCheck =
    std::function<CredentialVerdict(const std::string& login, std::string_view password)>;

/// What one AUTH step produced.
struct AuthOutcome {
  enum class Kind { kChallenge, kSuccess, kRejected, kUnavailable, kProtocolError };
  Kind kind = Kind::kRejected;
  std::string challenge;                             ///< kChallenge: raw bytes (not base64)
  std::shared_ptr<const AccountIdentities> account;  ///< kSuccess
  std::string detail;                                ///< for the log
  /// The login the client gave (as typed; empty before the credentials arrive): login
  /// throttling counts failures per account by it.
  std::string attempted_login;
};

/// One AUTH exchange on one connection.
class SaslExchange {
 public:
  /// `external_ssf`: the TLS cipher strength in bits (0 without TLS: then nothing is offered).
  SaslExchange(CredentialCheck check, std::string hostname, unsigned external_ssf);
  ~SaslExchange();
  SaslExchange(const SaslExchange&) = delete;
  SaslExchange& operator=(const SaslExchange&) = delete;

  AuthOutcome start(const std::string& mechanism, const std::optional<std::string>& initial);
  AuthOutcome step(const std::string& response);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace truefrom::auth
