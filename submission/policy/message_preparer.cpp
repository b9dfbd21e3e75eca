#include "submission/policy/message_preparer.hpp"

#include "submission/core/trace.hpp"
#include "submission/policy/temporary_failures.hpp"

namespace truefrom::policy {

namespace {

std::string shown(const std::optional<smtp::Mailbox>& m) {
  return m ? m->to_string() : std::string{};
}

}  // namespace

std::variant<Refusal, Preparation> prepare_message(const SenderPolicy& policy,
                                                   const auth::AccountIdentities* account,
                                                   const Transaction& txn,
                                                   std::string_view message) {
  if (!account) {
    return Refusal{temporary::transaction_state_lost(),
                   "policy: " + txn.peer + " user " + txn.login + " message from <" +
                       shown(txn.mail_from) + "> deferred: no account snapshot from MAIL FROM"};
  }
  // Parsed once: for the binding checks, the fields added below and DKIM. Every message
  // must parse, forwarders' too (their headers are not bound, but they are signed).
  std::string why;
  auto section = smtp::parse_header_section(message, &why);
  Decision d;
  if (section) {
    d = policy.check_message(*account, txn.mail_from, *section, txn.smtputf8);
  } else {
    d.refusal = smtp::Reply{550, {5, 6, 0}, "The message's header section is malformed: " + why};
  }
  if (d.refusal) {
    return Refusal{*d.refusal,
                   "policy: " + txn.peer + " user " + txn.login + " message from <" +
                       shown(txn.mail_from) + "> refused: " + d.refusal->text,
                   section && d.refusal->status == smtp::EnhancedStatus{5, 7, 1}};
  }

  Preparation p;
  p.section = std::move(*section);
  p.binding_audit = d.audit;
  p.dkim_domain = d.from_domain;
  // The fields truefrom adds go on top, in this order: Received (trace, RFC 5321 4.4),
  // Sender for on-behalf mail (RFC 5322 3.6.2), Message-ID and Date when the client left
  // them out (RFC 6409 8.2, 8.3). DKIM then signs the message exactly as it is relayed.
  smtp::ReceivedFields f;
  f.helo = txn.helo;
  f.peer_address = txn.peer_address;
  f.by_host = txn.hostname;
  f.protocol = "ESMTPSA";  // RFC 3848: ESMTP with STARTTLS (or implicit TLS) and AUTH
  f.tls = txn.tls;
  if (policy.options().trace_authenticated) {
    f.login = txn.login;
    f.binding = d.audit;
  }
  f.id = txn.queue_id;
  if (txn.recipients.size() == 1) f.for_recipient = txn.recipients[0].to_string();
  f.when = txn.now;
  p.added_fields = smtp::received_header(f);
  if (!d.add_sender.empty()) p.added_fields += "Sender: <" + d.add_sender + ">\r\n";
  p.added_fields += smtp::missing_origination_fields(
      p.section, "<" + txn.queue_id + "." + txn.message_id_token + "@" + txn.hostname + ">",
      txn.now);

  p.relay_mail_from = txn.srs_sender.empty() ? shown(txn.mail_from) : txn.srs_sender;
  p.relay_recipients.reserve(txn.recipients.size());
  for (const auto& r : txn.recipients) p.relay_recipients.push_back(r.to_string());
  return p;
}

Conclusion conclude(const Transaction& txn, const Preparation& prep, std::size_t message_size,
                    const SigningOutcome& signing, const HandOff& handoff) {
  using Level = LogLine::Level;
  Conclusion c;
  const std::string& id = txn.queue_id;
  if (!signing.problem.empty()) {
    c.log.push_back({Level::kError, "dkim: message " + id + ": " + signing.problem});
  }
  if (signing.tempfail) {
    c.reply = temporary::dkim_key_unusable(signing.domain);
    return c;
  }
  const std::size_t size = signing.fields_size + prep.added_fields.size() + message_size;
  const std::string what = "message " + id + " from <" + prep.relay_mail_from + "> user " +
                           txn.login + " to " + std::to_string(prep.relay_recipients.size()) +
                           " recipient(s), " + std::to_string(size) +
                           " octets; binding: " + prep.binding_audit + "; dkim: " + signing.audit +
                           (txn.srs_audit.empty() ? std::string{} : "; " + txn.srs_audit);
  switch (handoff.kind) {
    case HandOff::Kind::kNotTried:
      c.log.push_back({Level::kError, "queue: message " + id + " was neither stored nor relayed"});
      c.reply = temporary::internal_error();
      return c;
    case HandOff::Kind::kStoreFailed:
      c.log.push_back({Level::kError, "queue: cannot store message " + id + ": " + handoff.detail +
                                          " (is the file system of [queue] dir full or "
                                          "read-only?)"});
      c.reply = temporary::storage_unavailable();
      break;
    case HandOff::Kind::kQueued:
      c.reply = smtp::Reply{250, {2, 0, 0}, "Ok: queued as " + id};
      break;
    case HandOff::Kind::kRelayed:
      c.reply = handoff.relay_reply.positive()
                    ? smtp::Reply{250, {2, 0, 0}, "Ok: message " + id + " relayed"}
                    : handoff.relay_reply;
      if (handoff.relay_reply.positive()) {
        c.log.push_back({Level::kInfo, what + "; " + handoff.relay_reply.text});
        c.accepted = true;
        return c;
      }
      break;
  }
  c.accepted = c.reply.positive();
  c.log.push_back(c.accepted
                      ? LogLine{Level::kInfo, what + "; " + c.reply.text}
                      : LogLine{Level::kWarning, what + "; not accepted: " + c.reply.summary()});
  return c;
}

}  // namespace truefrom::policy
