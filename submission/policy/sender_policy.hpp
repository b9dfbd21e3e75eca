// Sender binding (DESIGN.md "binding policy"): may an authenticated account use an envelope
// sender, and the From:, Sender:, Resent-From: and Resent-Sender: addresses of a message?
//
// An address is usable when an identity row of the account names it exactly, names its
// domain, or names it without its subaddress ("alice+news@" via "alice@"). Domains compare
// case-insensitively and IDNA-aware (U-labels and A-labels are one domain); local parts
// case-insensitively unless configured otherwise. Owned ("send as") identities may appear
// anywhere; on-behalf identities only in From: (and MAIL FROM), with an owned Sender:, which
// the policy adds when the client did not. Forwarder accounts may use foreign envelope
// senders and their headers are not bound. Every decision says which row allowed it.
//
// Pure apart from reading the message; thread-safe (const methods, no shared state).
// Domains are compared in the form auth::normalize_domain gives (auth/identity_syntax.hpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/identity.hpp"
#include "submission/core/address.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/core/reply.hpp"

namespace truefrom::policy {

using auth::AccountIdentities;
using auth::SenderIdentity;

struct PolicyOptions {
  /// Characters that start a subaddress ("alice+news"); empty disables subaddressing.
  std::string subaddress_separators = "+";
  bool local_part_case_sensitive = false;
  /// MAIL FROM:<> (read receipts, bounces): accepted when the From: is owned; false refuses.
  bool allow_null_sender = true;
  /// Refuse a display name that shows an address other than its mailbox.
  bool refuse_address_in_display_name = true;
  /// MAIL FROM and From: must share an organizational domain (DMARC relaxed alignment).
  bool require_alignment = false;
  /// What a suspended account's MAIL FROM is told after "Account X is suspended" (where to
  /// turn; [suspension] contact). Empty: nothing more.
  std::string suspended_contact;
  /// [trace] authenticated: the Received: field names the account and the identity rows
  /// that allowed the senders (false: only the log does, like Postfix's
  /// smtpd_sasl_authenticated_header = no).
  bool trace_authenticated = false;
};

/// What allows one address.
struct Grant {
  enum class Kind { kNone, kOwned, kOnBehalf, kForwarder };
  Kind kind = Kind::kNone;
  SenderIdentity identity;  ///< the deciding row (for kOwned and kOnBehalf)
  bool subaddress = false;  ///< matched after removing a subaddress
  /// "identity #12 address alice@example.test", "identity #3 domain example.test on behalf",
  /// "forwarder account", "not owned".
  std::string describe() const;
};

/// The outcome of a check. `refusal` is set when refused; otherwise `audit` says which rows
/// allowed what, and `add_sender` holds an address for a Sender: field to add.
struct Decision {
  std::optional<smtp::Reply> refusal;
  std::string audit;
  std::string add_sender;
  /// check_message: the (first) From: domain in lower-case A-labels when the account's use
  /// of it was verified; empty otherwise (forwarder accounts, refusals). DKIM signs for it.
  std::string from_domain;
  /// check_envelope: the sender is not the account's own; a forwarder account may use it
  /// (SRS rules then decide whether it is rewritten, refused or passed).
  bool forwarded = false;
};

class SenderPolicy {
 public:
  explicit SenderPolicy(PolicyOptions options = {});

  const PolicyOptions& options() const { return options_; }

  /// The best grant `account` has for local@domain (owned before on-behalf, exact before
  /// domain before subaddress). Forwarder status is not considered here.
  Grant grant_for(const AccountIdentities& account, std::string_view local,
                  std::string_view domain) const;

  /// The words a suspended account is refused with ("Account X is suspended; CONTACT").
  std::string suspended_text(const std::string& login) const;

  /// MAIL FROM. `mail_from` is nullopt for the null sender "<>". A disabled or suspended
  /// account is refused whatever the sender.
  Decision check_envelope(const AccountIdentities& account,
                          const std::optional<smtp::Mailbox>& mail_from) const;

  /// The header section of `message` (as received in DATA), for a transaction whose envelope
  /// passed check_envelope. `smtputf8`: the transaction negotiated SMTPUTF8.
  Decision check_message(const AccountIdentities& account,
                         const std::optional<smtp::Mailbox>& mail_from, std::string_view message,
                         bool smtputf8) const;
  /// The same for a header section the caller has parsed already (the server parses it once
  /// for the policy, the added fields and DKIM).
  Decision check_message(const AccountIdentities& account,
                         const std::optional<smtp::Mailbox>& mail_from,
                         const smtp::HeaderSection& section, bool smtputf8) const;

 private:
  PolicyOptions options_;
};

}  // namespace truefrom::policy
