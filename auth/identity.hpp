// Plain values describing accounts and the sender identities they own. No dependencies;
// these cross the auth -> submission boundary. Thread-safety: value types.
#pragma once

#include <string>
#include <vector>

namespace truefrom::auth {

/// One sender identity: an exact address or a whole domain (any local part).
struct SenderIdentity {
  enum class Kind { kAddress, kDomain };
  Kind kind = Kind::kAddress;
  std::string value;  ///< lower case: "alice@example.test" or "example.test"
  friend bool operator==(const SenderIdentity&, const SenderIdentity&) = default;
};

struct Account {
  std::string login;
  std::string password_hash;
  bool enabled = true;
};

/// An account with everything the policy needs about it.
struct AccountIdentities {
  Account account;
  std::vector<SenderIdentity> identities;
};

/// Parses what an admin typed: "user@domain" is an address, "domain" (or "@domain") a
/// whole domain. Lower-cases it. Returns false with a reason when it is neither.
bool parse_sender_identity(const std::string& text, SenderIdentity& out, std::string& reason);

}  // namespace truefrom::auth
