// The end of DATA as decisions (submission/policy/message_preparer.hpp): table tests of
// prepare_message() and conclude(), no I/O.
#include "submission/policy/message_preparer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace truefrom::policy {
namespace {

using K = auth::SenderIdentity::Kind;

auth::AccountIdentities alice() {
  auth::AccountIdentities a;
  a.account.login = "alice";
  a.identities = {{K::kAddress, "alice@example.test", false, 1},
                  {K::kAddress, "sales@example.test", true, 3}};
  return a;
}

Transaction transaction(const std::string& from = "alice@example.test") {
  Transaction t;
  t.login = "alice";
  t.peer = "192.0.2.7:50000";
  t.peer_address = "192.0.2.7";
  t.helo = "laptop.example";
  t.hostname = "mx.example.net";
  t.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  if (!from.empty()) {
    const auto at = from.rfind('@');
    t.mail_from = smtp::Mailbox{from.substr(0, at), from.substr(at + 1)};
  }
  t.recipients = {smtp::Mailbox{"bob", "example.org"}};
  t.queue_id = "0123456789ABCDEF";
  t.now = 1767225600;  // 2026-01-01 00:00:00 UTC
  t.message_id_token = "TOKEN";
  return t;
}

const std::string kPlain =
    "From: alice@example.test\r\nTo: bob@example.org\r\nSubject: hi\r\n"
    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nhello\r\n";

TEST(MessagePreparer, RefusalsTable) {
  struct Case {
    const char* name;
    std::string message;
    bool no_account;
    int code;
    smtp::EnhancedStatus status;
    const char* text_has;
  };
  const Case cases[] = {
      {"foreign From:",
       "From: mallory@example.test\r\n\r\nx\r\n",
       false,
       550,
       {5, 7, 1},
       "mallory@example.test"},
      {"malformed header section",
       "From alice@example.test\r\n\r\nx\r\n",
       false,
       550,
       {5, 6, 0},
       "header section is malformed"},
      {"no snapshot from MAIL FROM", kPlain, true, 451, {4, 3, 0}, "state lost"},
  };
  const SenderPolicy policy;
  const auto account = alice();
  for (const auto& c : cases) {
    const auto r =
        prepare_message(policy, c.no_account ? nullptr : &account, transaction(), c.message);
    ASSERT_TRUE(std::holds_alternative<Refusal>(r)) << c.name;
    const Refusal& f = std::get<Refusal>(r);
    EXPECT_EQ(f.reply.code, c.code) << c.name;
    EXPECT_EQ(f.reply.status, c.status) << c.name;
    EXPECT_NE(f.reply.text.find(c.text_has), std::string::npos) << c.name << ": " << f.reply.text;
    // The log line names the client, the account and the sender.
    EXPECT_NE(f.log.find("192.0.2.7:50000 user alice"), std::string::npos) << f.log;
    EXPECT_NE(f.log.find("<alice@example.test>"), std::string::npos) << f.log;
  }
}

TEST(MessagePreparer, AddedFieldsTable) {
  struct Case {
    const char* name;
    std::string message;
    std::vector<std::string> present;  // substrings of added_fields
    std::vector<std::string> absent;
  };
  const Case cases[] = {
      {"complete message: Received only",
       kPlain,
       {"Received: from laptop.example", "192.0.2.7", "by mx.example.net", "ESMTPSA",
        "0123456789ABCDEF", "for <bob@example.org>"},
       {"Message-ID:", "Date:", "Sender:"}},
      {"no Message-ID, no Date: both added, Message-ID from the queue id and token",
       "From: alice@example.test\r\n\r\nx\r\n",
       {"Message-ID: <0123456789ABCDEF.TOKEN@mx.example.net>",
        "Date: Thu, 01 Jan 2026 00:00:00 +0000"},
       {"Sender:"}},
      {"on behalf: a Sender: for the account's own address",
       "From: sales@example.test\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
       "Message-ID: <m@x.test>\r\n\r\nx\r\n",
       {"Sender: <alice@example.test>"},
       {"Message-ID:", "Date:"}},
  };
  const SenderPolicy policy;
  const auto account = alice();
  for (const auto& c : cases) {
    const auto r = prepare_message(policy, &account, transaction(), c.message);
    ASSERT_TRUE(std::holds_alternative<Preparation>(r))
        << c.name << ": " << std::get<Refusal>(r).reply.text;
    const Preparation& p = std::get<Preparation>(r);
    // Received: first (RFC 5321 4.4: trace fields on top).
    EXPECT_EQ(p.added_fields.rfind("Received: ", 0), 0u) << c.name;
    for (const auto& s : c.present) {
      EXPECT_NE(p.added_fields.find(s), std::string::npos) << c.name << ": " << s << "\n"
                                                           << p.added_fields;
    }
    for (const auto& s : c.absent) {
      EXPECT_EQ(p.added_fields.find(s), std::string::npos) << c.name << ": " << s;
    }
    EXPECT_EQ(p.dkim_domain, "example.test") << c.name;
    EXPECT_NE(p.binding_audit.find("identity #"), std::string::npos) << p.binding_audit;
  }
}

// [trace] authenticated: off (default), the Received: field names no account and no
// identity row (the binding audit is still given for the log); on, it names both.
TEST(MessagePreparer, ReceivedNamesTheAccountOnlyWhenConfigured) {
  const auto account = alice();
  const std::string message = "From: alice@example.test\r\n\r\nx\r\n";
  const SenderPolicy quiet;
  auto r = prepare_message(quiet, &account, transaction(), message);
  ASSERT_TRUE(std::holds_alternative<Preparation>(r));
  const auto& p = std::get<Preparation>(r);
  EXPECT_EQ(p.added_fields.find("alice"), std::string::npos) << p.added_fields;
  EXPECT_EQ(p.added_fields.find("identity #"), std::string::npos) << p.added_fields;
  EXPECT_NE(p.binding_audit.find("identity #"), std::string::npos);
  PolicyOptions o;
  o.trace_authenticated = true;
  const SenderPolicy told(o);
  r = prepare_message(told, &account, transaction(), message);
  ASSERT_TRUE(std::holds_alternative<Preparation>(r));
  const auto& q = std::get<Preparation>(r);
  EXPECT_NE(q.added_fields.find("authenticated as alice"), std::string::npos) << q.added_fields;
  EXPECT_NE(q.added_fields.find("(sender binding: "), std::string::npos) << q.added_fields;
}

TEST(MessagePreparer, RelayEnvelopeTable) {
  struct Case {
    const char* name;
    std::string mail_from;
    std::string srs_sender;
    std::string want;
  };
  const Case cases[] = {
      {"own sender", "alice@example.test", "", "alice@example.test"},
      {"null sender", "", "", ""},
      {"forwarded: the SRS address", "alice@example.test", "SRS0=x=yy=example.test=alice@fw.test",
       "SRS0=x=yy=example.test=alice@fw.test"},
  };
  const SenderPolicy policy;
  const auto account = alice();
  for (const auto& c : cases) {
    Transaction t = transaction(c.mail_from);
    t.srs_sender = c.srs_sender;
    t.recipients.push_back(smtp::Mailbox{"carol", "example.org"});
    const auto r = prepare_message(policy, &account, t, kPlain);
    ASSERT_TRUE(std::holds_alternative<Preparation>(r)) << c.name;
    const Preparation& p = std::get<Preparation>(r);
    EXPECT_EQ(p.relay_mail_from, c.want) << c.name;
    EXPECT_EQ(p.relay_recipients,
              (std::vector<std::string>{"bob@example.org", "carol@example.org"}));
    // Two recipients: no "for" clause in Received: (RFC 5321 4.4 privacy).
    EXPECT_EQ(p.added_fields.find("for <"), std::string::npos) << c.name;
  }
}

TEST(MessagePreparer, ConclusionTable) {
  using Kind = HandOff::Kind;
  using Level = LogLine::Level;
  struct Case {
    const char* name;
    SigningOutcome signing;
    HandOff handoff;
    int code;
    smtp::EnhancedStatus status;
    bool accepted;
    const char* reply_has;
    std::vector<Level> levels;
    const char* last_log_has;
  };
  SigningOutcome signed_ok{300, "example.test", "d=example.test s=s1", "", false};
  SigningOutcome key_broken{0, "example.test", "not signed for example.test", "key file missing",
                            true};
  SigningOutcome unsigned_ok{0, "", "unsigned (DKIM off)", "", false};
  const Case cases[] = {
      {"queued",
       signed_ok,
       {Kind::kQueued, "", {}},
       250,
       {2, 0, 0},
       true,
       "Ok: queued as 0123456789ABCDEF",
       {Level::kInfo},
       "dkim: d=example.test s=s1"},
      {"key unusable: deferred before any hand-off",
       key_broken,
       {Kind::kNotTried, "", {}},
       451,
       {4, 3, 5},
       false,
       "Cannot DKIM-sign for example.test",
       {Level::kError},
       "key file missing"},
      {"spool full",
       unsigned_ok,
       {Kind::kStoreFailed, "No space left on device", {}},
       452,
       {4, 3, 1},
       false,
       "Insufficient system storage",
       {Level::kError, Level::kWarning},
       "not accepted: 452"},
      {"passthrough: relay said 250",
       unsigned_ok,
       {Kind::kRelayed, "", smtp::Reply{250, {2, 0, 0}, "queued as R1"}},
       250,
       {2, 0, 0},
       true,
       "Ok: message 0123456789ABCDEF relayed",
       {Level::kInfo},
       "queued as R1"},
      {"passthrough: relay refused",
       unsigned_ok,
       {Kind::kRelayed, "", smtp::Reply{554, {5, 7, 1}, "spam"}},
       554,
       {5, 7, 1},
       false,
       "spam",
       {Level::kWarning},
       "not accepted: 554"},
      {"neither stored nor relayed",
       unsigned_ok,
       {Kind::kNotTried, "", {}},
       451,
       {4, 3, 0},
       false,
       "Local error",
       {Level::kError},
       "neither stored nor relayed"},
  };
  const SenderPolicy policy;
  const auto account = alice();
  const Transaction t = transaction();
  const auto r = prepare_message(policy, &account, t, kPlain);
  ASSERT_TRUE(std::holds_alternative<Preparation>(r));
  const Preparation& p = std::get<Preparation>(r);
  for (const auto& c : cases) {
    const Conclusion got = conclude(t, p, kPlain.size(), c.signing, c.handoff);
    EXPECT_EQ(got.reply.code, c.code) << c.name;
    EXPECT_EQ(got.reply.status, c.status) << c.name;
    EXPECT_EQ(got.accepted, c.accepted) << c.name;
    EXPECT_NE(got.reply.text.find(c.reply_has), std::string::npos)
        << c.name << ": " << got.reply.text;
    ASSERT_EQ(got.log.size(), c.levels.size()) << c.name;
    for (std::size_t i = 0; i < c.levels.size(); ++i) EXPECT_EQ(got.log[i].level, c.levels[i]);
    EXPECT_NE(got.log.back().text.find(c.last_log_has), std::string::npos)
        << c.name << ": " << got.log.back().text;
  }
  // The accepted line counts every octet that leaves: signatures, added fields, message.
  const Conclusion q = conclude(t, p, kPlain.size(), signed_ok, {Kind::kQueued, "", {}});
  const std::size_t size = 300 + p.added_fields.size() + kPlain.size();
  EXPECT_NE(q.log.back().text.find(std::to_string(size) + " octets"), std::string::npos)
      << q.log.back().text;
}

}  // namespace
}  // namespace truefrom::policy
