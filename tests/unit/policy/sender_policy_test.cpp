#include "submission/policy/sender_policy.hpp"

#include "auth/identity_syntax.hpp"

#include <gtest/gtest.h>

namespace truefrom::policy {
namespace {

using namespace truefrom::auth;  // identities, domain syntax

using K = SenderIdentity::Kind;
using GK = Grant::Kind;

AccountIdentities alice() {
  AccountIdentities a;
  a.account.login = "alice";
  a.identities = {{K::kAddress, "alice@example.test", false, 1},
                  {K::kDomain, "carol.test", false, 2},
                  {K::kAddress, "sales@example.test", true, 3},
                  {K::kDomain, "xn--bcher-kva.example", false, 4},
                  {K::kDomain, "partner.test", true, 5}};
  return a;
}

TEST(SenderPolicy, GrantTable) {
  const SenderPolicy policy;
  struct Case {
    const char* local;
    const char* domain;
    GK want;
    std::int64_t id;
    bool subaddress;
  };
  const Case cases[] = {
      {"alice", "example.test", GK::kOwned, 1, false},
      {"Alice", "EXAMPLE.test", GK::kOwned, 1, false},
      {"alice", "example.test.", GK::kOwned, 1, false},
      {"alice+news", "example.test", GK::kOwned, 1, true},
      {"Alice+News", "example.test", GK::kOwned, 1, true},
      {"+news", "example.test", GK::kNone, 0, false},
      {"alice-news", "example.test", GK::kNone, 0, false},
      {"bob", "example.test", GK::kNone, 0, false},
      {"alice", "sub.example.test", GK::kNone, 0, false},
      {"anyone", "carol.test", GK::kOwned, 2, false},
      {"anyone", "Carol.Test", GK::kOwned, 2, false},
      {"anyone", "sub.carol.test", GK::kNone, 0, false},
      {"sales", "example.test", GK::kOnBehalf, 3, false},
      {"sales+x", "example.test", GK::kOnBehalf, 3, true},
      {"x", "bücher.example", GK::kOwned, 4, false},
      {"x", "BÜCHER.example", GK::kOwned, 4, false},
      {"x", "xn--bcher-kva.example", GK::kOwned, 4, false},
      {"x", "partner.test", GK::kOnBehalf, 5, false},
      {"alice", "example.testx", GK::kNone, 0, false},
      {"alice", "exa mple.test", GK::kNone, 0, false},
  };
  const auto account = alice();
  for (const auto& c : cases) {
    const Grant g = policy.grant_for(account, c.local, c.domain);
    EXPECT_EQ(g.kind, c.want) << c.local << "@" << c.domain;
    if (c.want != GK::kNone) {
      EXPECT_EQ(g.identity.id, c.id) << c.local << "@" << c.domain;
      EXPECT_EQ(g.subaddress, c.subaddress) << c.local << "@" << c.domain;
    }
  }
}

TEST(SenderPolicy, OwnedBeatsOnBehalfAndExactBeatsDomain) {
  AccountIdentities a;
  a.account.login = "bob";
  a.identities = {{K::kDomain, "example.test", true, 1},
                  {K::kAddress, "bob@example.test", true, 2},
                  {K::kDomain, "example.test", false, 3},
                  {K::kAddress, "bob@example.test", false, 4}};
  const SenderPolicy policy;
  EXPECT_EQ(policy.grant_for(a, "bob", "example.test").identity.id, 4);
  EXPECT_EQ(policy.grant_for(a, "other", "example.test").identity.id, 3);
}

TEST(SenderPolicy, OptionsChangeMatching) {
  PolicyOptions o;
  o.subaddress_separators = "";
  o.local_part_case_sensitive = true;
  const SenderPolicy policy(o);
  const auto account = alice();
  EXPECT_EQ(policy.grant_for(account, "alice+news", "example.test").kind, GK::kNone);
  EXPECT_EQ(policy.grant_for(account, "Alice", "example.test").kind, GK::kNone);
  EXPECT_EQ(policy.grant_for(account, "alice", "EXAMPLE.TEST").kind, GK::kOwned);
  o = {};
  o.subaddress_separators = "+-";
  EXPECT_EQ(SenderPolicy(o).grant_for(account, "alice-news", "example.test").kind, GK::kOwned);
}

TEST(SenderPolicy, Envelope) {
  const SenderPolicy policy;
  auto account = alice();
  Decision d = policy.check_envelope(account, smtp::Mailbox{"alice", "example.test"});
  EXPECT_FALSE(d.refusal);
  EXPECT_EQ(d.audit, "MAIL FROM by identity #1 address alice@example.test");
  d = policy.check_envelope(account, smtp::Mailbox{"eve", "evil.test"});
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->code, 553);
  EXPECT_EQ(d.refusal->text, "<eve@evil.test>: sender not owned by user alice");
  EXPECT_FALSE(policy.check_envelope(account, std::nullopt).refusal);

  account.account.forwarder = true;
  d = policy.check_envelope(account, smtp::Mailbox{"eve", "evil.test"});
  EXPECT_FALSE(d.refusal);
  EXPECT_EQ(d.audit, "MAIL FROM by forwarder account");

  account.account.enabled = false;
  d = policy.check_envelope(account, smtp::Mailbox{"alice", "example.test"});
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->text, "Account alice is disabled");

  account = alice();
  account.account.suspended = true;
  d = policy.check_envelope(account, smtp::Mailbox{"alice", "example.test"});
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->code, 550);
  EXPECT_EQ(d.refusal->text, "Account alice is suspended.");
  PolicyOptions contact;
  contact.suspended_contact = "call +1 555 0100";
  d = SenderPolicy(contact).check_envelope(account, std::nullopt);
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->text, "Account alice is suspended; call +1 555 0100");

  PolicyOptions o;
  o.allow_null_sender = false;
  d = SenderPolicy(o).check_envelope(alice(), std::nullopt);
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->code, 553);
}

TEST(SenderPolicy, ForwarderHeadersAreNotBound) {
  auto account = alice();
  account.account.forwarder = true;
  const auto d = SenderPolicy().check_message(account, smtp::Mailbox{"x", "list.test"},
                                              "From: ceo@bank.test\r\n\r\nhi\r\n", false);
  EXPECT_FALSE(d.refusal);
  EXPECT_NE(d.audit.find("headers not bound: forwarder account"), std::string::npos);
}

TEST(SenderPolicy, NormalizeDomain) {
  EXPECT_EQ(normalize_domain("Example.TEST."), "example.test");
  EXPECT_EQ(normalize_domain("bücher.example"), "xn--bcher-kva.example");
  EXPECT_EQ(normalize_domain("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
  EXPECT_FALSE(normalize_domain("localhost"));
  EXPECT_FALSE(normalize_domain("a_b.test"));
  EXPECT_FALSE(normalize_domain(""));
  EXPECT_EQ(organizational_domain("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("a.b.example.com"), "example.com");
}

TEST(SenderPolicy, ParsesWhatAdminsType) {
  SenderIdentity id;
  std::string why;
  ASSERT_TRUE(parse_sender_identity("Alice@Example.TEST", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kAddress, "Alice@example.test"}));
  ASSERT_TRUE(parse_sender_identity("example.test", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kDomain, "example.test"}));
  ASSERT_TRUE(parse_sender_identity("@Example.test", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kDomain, "example.test"}));
  ASSERT_TRUE(parse_sender_identity("bücher.example", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kDomain, "xn--bcher-kva.example"}));
  ASSERT_TRUE(parse_sender_identity("josé@bücher.example", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kAddress, "josé@xn--bcher-kva.example"}));
  for (const char* bad : {"", "localhost", "a b@example.test", "@", "alice@", "<a@b.test>",
                          "a..b@example.test", "a@-x.test", "a@x_y.test", "a@b@c.test"}) {
    EXPECT_FALSE(parse_sender_identity(bad, id, why)) << bad;
    EXPECT_FALSE(why.empty());
  }
}

}  // namespace
}  // namespace truefrom::policy
