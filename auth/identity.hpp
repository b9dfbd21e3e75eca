// Plain values describing accounts and the sender identities they own. No dependencies;
// these cross the auth -> submission boundary. Thread-safety: value types.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace truefrom::auth {

/// One sender identity row: an exact address or a whole domain (any local part). Owned
/// identities ("send as") may be used in MAIL FROM, From: and Sender:; on-behalf ones only in
/// From: (and MAIL FROM), with an owned address in Sender:.
struct SenderIdentity {
  enum class Kind { kAddress, kDomain };
  Kind kind = Kind::kAddress;
  /// "alice@example.test" or "example.test": domain in lower-case A-label form (IDNA), local
  /// part as the admin wrote it.
  std::string value;
  bool on_behalf = false;
  std::int64_t id = 0;  ///< the row's id (0 when not stored yet)
  friend bool operator==(const SenderIdentity&, const SenderIdentity&) = default;
};

struct Account {
  std::string login;
  std::string password_hash;
  bool enabled = true;
  /// May submit with foreign envelope senders; its headers are not bound.
  bool forwarder = false;
  /// Suspended (schema 0006): authenticates, but every MAIL FROM is refused.
  bool suspended = false;
  std::string suspended_reason;
  std::string suspended_at;  ///< "YYYY-MM-DD HH:MM" UTC, or ""
};

/// An account with everything the policy needs about it.
struct AccountIdentities {
  Account account;
  std::vector<SenderIdentity> identities;
};

/// One DKIM key row (schema 0003). The private key is in the file `key_path`, never in the
/// database; `public_key` is the p= value published in DNS.
struct DkimKeyRow {
  std::int64_t id = 0;
  std::string domain;     ///< lower-case A-labels
  std::string selector;   ///< lower case
  std::string algorithm;  ///< "rsa-sha256" or "ed25519-sha256"
  std::string key_path;
  std::string public_key;
  std::string state;                                 ///< "pending", "active" or "retired"
  std::string created_at, activated_at, retired_at;  ///< "YYYY-MM-DD HH:MM" UTC, or ""
};

/// An SRS rule (schema 0004).
struct SrsRuleRow {
  std::int64_t id = 0;
  std::string domain;      ///< lower-case A-labels; matches the domain and its subdomains
  std::string action;      ///< "rewrite", "refuse" or "pass"
  std::string login;       ///< empty: global
  std::string created_at;  ///< "YYYY-MM-DD HH:MM" UTC
};

/// A sending-limit row (schema 0005): the values set at one scope; nullopt: not set here.
struct LimitRuleRow {
  std::int64_t id = 0;
  std::string scope;   ///< "default", "domain" or "account"
  std::string domain;  ///< scope "domain": lower-case A-labels
  std::string login;   ///< scope "account": the login as stored
  /// messages_per_hour, messages_per_day, recipients_per_message, recipients_per_day.
  std::array<std::optional<std::int64_t>, 4> values;
  std::string updated_at;  ///< "YYYY-MM-DD HH:MM" UTC
};

/// What an account sent in one 5-minute slot (schema 0005, sending_counts); as an
/// increment, a negative count gives a reservation back.
struct SlotCount {
  std::string login;
  std::int64_t slot = 0;  ///< Unix time, a multiple of 300
  std::int64_t messages = 0;
  std::int64_t recipients = 0;
};

/// Parses what an admin typed: "user@domain" is an address, "domain" (or "@domain") a
/// whole domain. The domain may be written as U-labels or A-labels (IDNA) and is stored as
/// lower-case A-labels; the local part is kept as written (UTF-8 allowed). Returns false
/// with a reason when it is neither.
bool parse_sender_identity(const std::string& text, SenderIdentity& out, std::string& reason);

}  // namespace truefrom::auth
