// The end of DATA as decisions, without I/O (DESIGN.md "submission/policy"): given the
// account as MAIL FROM saw it, the envelope, the message, the clock and the queue id,
// prepare_message() either refuses (a Reply and the log line saying why) or says everything
// the transport must do: the fields to put on top (Received: per RFC 5321 4.4, Sender: for
// on-behalf mail per RFC 5322 3.6.2, Message-ID:/Date: when missing per RFC 6409 8), the
// envelope to relay (the SRS address for forwarded mail), what DKIM signs for, and the facts
// for the log. The transport signs and hands the message off (the spool, or the relay in
// passthrough mode), then conclude() turns those outcomes into the client's reply and the
// log lines. Every temporary failure comes from temporary_failures.hpp.
// Pure functions; thread-safe.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/identity.hpp"
#include "submission/core/address.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/core/reply.hpp"
#include "submission/policy/sender_policy.hpp"

namespace truefrom::policy {

/// What the transport knows about the transaction at the end of DATA.
struct Transaction {
  std::string login;         ///< the authenticated account
  std::string peer;          ///< client address and port, "192.0.2.1:50000", for the log
  std::string peer_address;  ///< the client's address alone, for Received:
  std::string helo;          ///< the EHLO/HELO argument
  std::string hostname;      ///< ours
  std::string tls;           ///< "TLSv1.3 TLS_AES_256_GCM_SHA384", or "no TLS"
  std::optional<smtp::Mailbox> mail_from;  ///< nullopt: the null sender <>
  std::vector<smtp::Mailbox> recipients;
  bool smtputf8 = false;
  bool eight_bit = false;
  std::string srs_sender;  ///< relayed instead of MAIL FROM (a forwarder's rewritten sender)
  std::string srs_audit;   ///< which SRS rule decided, for the log
  std::string queue_id;
  std::time_t now = 0;
  std::string message_id_token;  ///< random, for the Message-ID: of a message without one
};

/// A refusal: the reply for the client and the log line saying why (level warning).
struct Refusal {
  smtp::Reply reply;
  std::string log;
  /// The headers named an address the account may not use (counts toward suspension).
  bool sender_binding = false;
};

/// An accepted preparation: what the transport signs, spools or relays.
struct Preparation {
  smtp::HeaderSection section;  ///< the message's header section (views into the message)
  std::string added_fields;     ///< to put on top of the message, in this order
  std::string relay_mail_from;  ///< without brackets; empty for <>
  std::vector<std::string> relay_recipients;  ///< without brackets
  std::string dkim_domain;    ///< the verified From: domain DKIM signs for; empty: unverified
  std::string binding_audit;  ///< which identity rows allowed the addresses
};

/// `account` is the snapshot MAIL FROM took (null: none, which cannot happen after an
/// accepted MAIL FROM, and is answered as a temporary failure).
std::variant<Refusal, Preparation> prepare_message(const SenderPolicy& policy,
                                                   const auth::AccountIdentities* account,
                                                   const Transaction& txn,
                                                   std::string_view message);

/// What signing gave (the transport runs the signer on the workers).
struct SigningOutcome {
  std::size_t fields_size = 0;  ///< octets of the DKIM-Signature fields to prepend
  std::string domain;           ///< the signing domain; empty when no key applies
  std::string audit;            ///< "d=example.com s=a,b" or why unsigned
  std::string problem;          ///< an unusable key or a failure, for the log
  bool tempfail = false;        ///< defer the message (the key is unusable)
};

/// What the hand-off gave.
struct HandOff {
  enum class Kind {
    kNotTried,     ///< signing deferred the message before any hand-off
    kQueued,       ///< stored in the spool and synced
    kStoreFailed,  ///< the spool could not store it (`detail` says why)
    kRelayed,      ///< passthrough: `relay_reply` is the relay's verdict for the client
  };
  Kind kind = Kind::kNotTried;
  std::string detail;
  smtp::Reply relay_reply;
};

struct LogLine {
  enum class Level { kInfo, kWarning, kError };
  Level level = Level::kInfo;
  std::string text;
};

/// The client's reply and what to log, in order.
struct Conclusion {
  smtp::Reply reply;
  bool accepted = false;  ///< answer with Session::accept (else Session::reply)
  std::vector<LogLine> log;
};

Conclusion conclude(const Transaction& txn, const Preparation& prep, std::size_t message_size,
                    const SigningOutcome& signing, const HandOff& handoff);

}  // namespace truefrom::policy
