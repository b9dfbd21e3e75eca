#include "submission/policy/sender_policy.hpp"

#include "auth/identity_syntax.hpp"

#include <memory>
#include <vector>

#include "submission/core/address_list.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/core/header_text.hpp"

namespace truefrom::policy {
namespace {

using auth::AccountIdentities;
using auth::normalize_domain;
using auth::organizational_domain;
using auth::SenderIdentity;

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

using smtp::ascii_lower;
using smtp::Reply;

const char* kind_word(SenderIdentity::Kind k) {
  return k == SenderIdentity::Kind::kDomain ? "domain" : "address";
}

std::string quote_display(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 32 || u == 127) ? '?' : c;
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

Reply malformed(std::string text) { return Reply{550, {5, 6, 0}, std::move(text)}; }
Reply refused(std::string text) { return Reply{550, {5, 7, 1}, std::move(text)}; }

// One bound header kind: From:/Sender: or Resent-From:/Resent-Sender:.
struct FieldPair {
  std::string from_name;
  std::string sender_name;
};

}  // namespace

std::string Grant::describe() const {
  switch (kind) {
    case Kind::kNone:
      return "not owned";
    case Kind::kForwarder:
      return "forwarder account";
    case Kind::kOwned:
    case Kind::kOnBehalf:
      return std::string("identity #") + std::to_string(identity.id) + " " +
             kind_word(identity.kind) + " " + identity.value +
             (kind == Kind::kOnBehalf ? " on behalf" : "") + (subaddress ? " via subaddress" : "");
  }
  return "?";
}

SenderPolicy::SenderPolicy(PolicyOptions options) : options_(std::move(options)) {
  // Load the public suffix list now, not on an I/O thread at the first message.
  if (options_.require_alignment) organizational_domain("example.com");
}

Grant SenderPolicy::grant_for(const AccountIdentities& account, std::string_view local,
                              std::string_view domain) const {
  const std::optional<std::string> dom = normalize_domain(domain);
  if (!dom) return {};
  const auto fold = [&](std::string_view l) {
    return options_.local_part_case_sensitive ? std::string(l) : ascii_lower(l);
  };
  const std::string want = fold(local) + "@" + *dom;
  std::string base;  // the address without its subaddress, when it has one
  if (!options_.subaddress_separators.empty()) {
    const auto sep = local.find_first_of(options_.subaddress_separators);
    if (sep != std::string_view::npos && sep > 0) base = fold(local.substr(0, sep)) + "@" + *dom;
  }
  // Rank: owned before on-behalf; exact address, then domain, then subaddress.
  int best_rank = 0;
  Grant best;
  for (const auto& id : account.identities) {
    int rank = 0;
    bool sub = false;
    if (id.kind == SenderIdentity::Kind::kAddress) {
      const auto at = id.value.rfind('@');
      const std::string value =
          at == std::string::npos ? id.value : fold(id.value.substr(0, at)) + id.value.substr(at);
      if (value == want) {
        rank = 3;
      } else if (!base.empty() && value == base) {
        rank = 1;
        sub = true;
      }
    } else if (id.value == *dom) {
      rank = 2;
    }
    if (rank == 0) continue;
    if (!id.on_behalf) rank += 10;
    if (rank > best_rank) {
      best_rank = rank;
      best.kind = id.on_behalf ? Grant::Kind::kOnBehalf : Grant::Kind::kOwned;
      best.identity = id;
      best.subaddress = sub;
    }
  }
  return best;
}

std::string SenderPolicy::suspended_text(const std::string& login) const {
  return "Account " + login + " is suspended" +
         (options_.suspended_contact.empty() ? std::string(".") : "; " + options_.suspended_contact);
}

Decision SenderPolicy::check_envelope(const AccountIdentities& account,
                                      const std::optional<smtp::Mailbox>& mail_from) const {
  Decision d;
  const std::string& login = account.account.login;
  if (!account.account.enabled) {
    d.refusal = refused("Account " + login + " is disabled");
    return d;
  }
  if (account.account.suspended) {
    d.refusal = refused(suspended_text(login));
    return d;
  }
  if (!mail_from) {
    if (!options_.allow_null_sender) {
      d.refusal = Reply{
          553, {5, 7, 1}, "The null sender <> is not allowed (policy allow_null_sender is off)"};
      return d;
    }
    d.audit = "MAIL FROM <> (From: must be owned)";
    return d;
  }
  Grant g = grant_for(account, mail_from->local, mail_from->domain);
  if (g.kind == Grant::Kind::kNone && account.account.forwarder) g.kind = Grant::Kind::kForwarder;
  if (g.kind == Grant::Kind::kNone) {
    d.refusal = Reply{
        553, {5, 7, 1}, "<" + mail_from->to_string() + ">: sender not owned by user " + login};
    return d;
  }
  d.audit = "MAIL FROM by " + g.describe();
  d.forwarded = g.kind == Grant::Kind::kForwarder;
  return d;
}

namespace {

// The address of a mailbox as it appears in replies and logs.
std::string shown(const smtp::HeaderMailbox& m) { return m.address.to_string(); }

struct MessageCheck {
  const SenderPolicy& policy;
  const AccountIdentities& account;
  const std::optional<smtp::Mailbox>& mail_from;
  bool smtputf8;
  Decision d;

  const std::string& login() const { return account.account.login; }

  void note(const std::string& field, const smtp::HeaderMailbox& m, const Grant& g) {
    if (!d.audit.empty()) d.audit += "; ";
    d.audit += field + ": " + shown(m) + " by " + g.describe();
  }

  // A display name or comment that shows an address other than the mailbox's own.
  bool display_name_ok(const std::string& field, const smtp::HeaderMailbox& m) {
    if (!policy.options().refuse_address_in_display_name) return true;
    const std::string own = ascii_lower(m.address.local) + "@" + ascii_lower(m.address.domain);
    for (const std::string* text : {&m.display_name, &m.comments}) {
      for (const auto& found : smtp::address_like_strings(*text)) {
        if (found == own) continue;
        d.refusal = refused(field + ": header display name " + quote_display(*text) +
                            " shows the address " + found + ", not " + shown(m));
        return false;
      }
    }
    return true;
  }

  bool ascii_ok(const std::string& field, const smtp::HeaderMailbox& m) {
    if (smtputf8 || !smtp::is_utf8_address(m.address)) return true;
    d.refusal = Reply{
        550,
        {5, 6, 7},
        field + ": header address " + shown(m) + " is not ASCII; submit the message with SMTPUTF8"};
    return false;
  }

  // Parses one field value; refuses unparsable values and groups.
  std::optional<smtp::AddressList> parse(const smtp::HeaderField& f, const std::string& field) {
    std::string why;
    auto list = smtp::parse_address_list(f.value, &why);
    if (!list) {
      d.refusal = malformed(field + ": header cannot be parsed: " + why);
      return std::nullopt;
    }
    if (!list->groups.empty()) {
      d.refusal =
          malformed(field + ": header contains the group " + quote_display(list->groups.front()) +
                    "; " + field + ": must list mailboxes");
      return std::nullopt;
    }
    return list;
  }

  // The first owned address of the account, for a Sender: field to add: the envelope
  // sender when it is owned, else the first owned address row (ASCII unless SMTPUTF8).
  std::string own_address() const {
    if (mail_from) {
      const Grant g = policy.grant_for(account, mail_from->local, mail_from->domain);
      if (g.kind == Grant::Kind::kOwned) return mail_from->to_string();
    }
    for (const auto& id : account.identities) {
      if (id.kind == SenderIdentity::Kind::kAddress && !id.on_behalf &&
          (smtputf8 || is_ascii(id.value))) {
        return id.value;
      }
    }
    return {};
  }

  // From:/Sender: (or a Resent- block): `from` and `sender` are the fields, at most one each.
  // `from_list` receives the parsed From:-like field.
  bool check_pair(const FieldPair& names, const smtp::HeaderField& from,
                  const smtp::HeaderField* sender, bool may_add_sender,
                  std::optional<smtp::AddressList>& from_list) {
    from_list = parse(from, names.from_name);
    if (!from_list) return false;
    bool on_behalf = false;
    for (const auto& m : from_list->mailboxes) {
      if (!ascii_ok(names.from_name, m)) return false;
      const Grant g = policy.grant_for(account, m.address.local, m.address.domain);
      if (g.kind == Grant::Kind::kNone) {
        d.refusal = refused(names.from_name + ": header address " + shown(m) +
                            " not owned by user " + login());
        return false;
      }
      if (!display_name_ok(names.from_name, m)) return false;
      on_behalf = on_behalf || g.kind == Grant::Kind::kOnBehalf;
      note(names.from_name, m, g);
    }
    if (sender) {
      auto sender_list = parse(*sender, names.sender_name);
      if (!sender_list) return false;
      if (sender_list->mailboxes.size() != 1) {
        d.refusal = malformed(names.sender_name + ": header must hold exactly one mailbox, not " +
                              std::to_string(sender_list->mailboxes.size()));
        return false;
      }
      const auto& m = sender_list->mailboxes.front();
      if (!ascii_ok(names.sender_name, m)) return false;
      const Grant g = policy.grant_for(account, m.address.local, m.address.domain);
      if (g.kind != Grant::Kind::kOwned) {
        d.refusal = refused(names.sender_name + ": header address " + shown(m) +
                            " not owned by user " + login() +
                            (g.kind == Grant::Kind::kOnBehalf
                                 ? " (it may be used only on behalf, in " + names.from_name + ")"
                                 : ""));
        return false;
      }
      if (!display_name_ok(names.sender_name, m)) return false;
      note(names.sender_name, m, g);
      return true;
    }
    if (from_list->mailboxes.size() > 1) {
      d.refusal = malformed(
          names.from_name + ": header lists " + std::to_string(from_list->mailboxes.size()) +
          " mailboxes but there is no " + names.sender_name + ": header (RFC 5322 3.6.2)");
      return false;
    }
    if (on_behalf) {
      const std::string own = may_add_sender ? own_address() : std::string{};
      if (own.empty()) {
        d.refusal =
            refused(names.from_name + ": header address " + shown(from_list->mailboxes.front()) +
                    " may be used by user " + login() + " only on behalf, with a " +
                    names.sender_name + ": header naming an address the user owns");
        return false;
      }
      d.add_sender = own;
      d.audit += "; " + names.sender_name + ": " + own + " added";
    }
    return true;
  }

  // Sets the refusal when MAIL FROM and a From: mailbox do not share an organizational domain.
  void check_alignment(const smtp::AddressList& from) {
    if (!policy.options().require_alignment || !mail_from) return;
    const auto env = normalize_domain(mail_from->domain);
    if (!env) return;  // an envelope domain the policy granted is always valid
    const std::string env_org = organizational_domain(*env);
    for (const auto& m : from.mailboxes) {
      const auto dom = normalize_domain(m.address.domain);
      if (!dom || organizational_domain(*dom) != env_org) {
        d.refusal = refused("MAIL FROM domain " + mail_from->domain +
                            " does not align with From: header domain " + m.address.domain +
                            " (policy require_alignment)");
        return;
      }
    }
  }

  // `section` is null when the header section could not be parsed (`why` says why).
  void run(const smtp::HeaderSection* section, const std::string& why) {
    if (account.account.forwarder) {
      d.audit += "; headers not bound: forwarder account";
      return;
    }
    if (!section) {
      d.refusal = malformed("The message's header section is malformed: " + why);
      return;
    }
    const smtp::HeaderField* from = nullptr;
    const smtp::HeaderField* sender = nullptr;
    int from_count = 0;
    int sender_count = 0;
    for (const auto& f : section->fields) {
      if (smtp::field_name_is(f.name, "From")) {
        ++from_count;
        if (!from) from = &f;
      } else if (smtp::field_name_is(f.name, "Sender")) {
        ++sender_count;
        if (!sender) sender = &f;
      }
    }
    if (from_count != 1) {
      d.refusal =
          malformed(from_count == 0 ? "The message has no From: header; exactly one is required "
                                      "(RFC 5322 3.6)"
                                    : "The message has " + std::to_string(from_count) +
                                          " From: headers; exactly one is allowed (RFC 5322 3.6)");
      return;
    }
    if (sender_count > 1) {
      d.refusal = malformed("The message has " + std::to_string(sender_count) +
                            " Sender: headers; at most one is allowed (RFC 5322 3.6)");
      return;
    }
    std::optional<smtp::AddressList> from_list;
    if (!check_pair({"From", "Sender"}, *from, sender, true, from_list)) return;
    if (!check_resent(*section)) return;
    check_alignment(*from_list);
    if (!d.refusal && !from_list->mailboxes.empty()) {
      // The DKIM signing domain follows From: only once the account proved it may use it.
      d.from_domain = normalize_domain(from_list->mailboxes.front().address.domain).value_or("");
    }
  }

  // RFC 5322 3.6.6: each resent block (a run of adjacent Resent-* fields) is bound like
  // From:/Sender:.
  bool check_resent(const smtp::HeaderSection& section) {
    const auto& fields = section.fields;
    for (std::size_t i = 0; i < fields.size();) {
      if (ascii_lower(fields[i].name).rfind("resent-", 0) != 0) {
        ++i;
        continue;
      }
      const smtp::HeaderField* rfrom = nullptr;
      const smtp::HeaderField* rsender = nullptr;
      int from_count = 0;
      int sender_count = 0;
      for (; i < fields.size() && ascii_lower(fields[i].name).rfind("resent-", 0) == 0; ++i) {
        if (smtp::field_name_is(fields[i].name, "Resent-From")) {
          ++from_count;
          rfrom = &fields[i];
        } else if (smtp::field_name_is(fields[i].name, "Resent-Sender")) {
          ++sender_count;
          rsender = &fields[i];
        }
      }
      if (from_count > 1 || sender_count > 1) {
        d.refusal = malformed(
            "A resent block has more than one Resent-From: or Resent-Sender: header (RFC "
            "5322 3.6.6)");
        return false;
      }
      if (rsender && !rfrom) {
        d.refusal = malformed(
            "A resent block has a Resent-Sender: header but no Resent-From: (RFC 5322 3.6.6)");
        return false;
      }
      std::optional<smtp::AddressList> ignored;
      if (rfrom && !check_pair({"Resent-From", "Resent-Sender"}, *rfrom, rsender, false, ignored)) {
        return false;
      }
    }
    return true;
  }
};

}  // namespace

Decision SenderPolicy::check_message(const AccountIdentities& account,
                                     const std::optional<smtp::Mailbox>& mail_from,
                                     std::string_view message, bool smtputf8) const {
  std::string why;
  const auto section = smtp::parse_header_section(message, &why);
  MessageCheck check{*this, account, mail_from, smtputf8, check_envelope(account, mail_from)};
  if (check.d.refusal) return check.d;
  check.run(section ? &*section : nullptr, why);
  return check.d;
}

Decision SenderPolicy::check_message(const AccountIdentities& account,
                                     const std::optional<smtp::Mailbox>& mail_from,
                                     const smtp::HeaderSection& section, bool smtputf8) const {
  MessageCheck check{*this, account, mail_from, smtputf8, check_envelope(account, mail_from)};
  if (check.d.refusal) return check.d;
  check.run(&section, {});
  return check.d;
}

}  // namespace truefrom::policy
