#include "auth/sender_policy.hpp"

#include <gtest/gtest.h>

namespace truefrom::auth {
namespace {

using K = SenderIdentity::Kind;

TEST(SenderPolicy, OwnsAddressTable) {
  const std::vector<SenderIdentity> ids{{K::kAddress, "alice@example.test"},
                                        {K::kDomain, "carol.test"}};
  struct Case {
    const char* local;
    const char* domain;
    bool want;
  };
  const Case cases[] = {
      {"alice", "example.test", true},      {"Alice", "EXAMPLE.test", true},
      {"alice", "example.test.", true},     {"bob", "example.test", false},
      {"alice", "sub.example.test", false}, {"anyone", "carol.test", true},
      {"anyone", "Carol.Test", true},       {"anyone", "sub.carol.test", false},
      {"alice", "example.testx", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(owns_address(ids, c.local, c.domain), c.want) << c.local << "@" << c.domain;
  }
  EXPECT_FALSE(owns_address({}, "alice", "example.test"));
}

TEST(SenderPolicy, ParsesWhatAdminsType) {
  SenderIdentity id;
  std::string why;
  ASSERT_TRUE(parse_sender_identity("Alice@Example.TEST", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kAddress, "alice@example.test"}));
  ASSERT_TRUE(parse_sender_identity("example.test", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kDomain, "example.test"}));
  ASSERT_TRUE(parse_sender_identity("@Example.test", id, why));
  EXPECT_EQ(id, (SenderIdentity{K::kDomain, "example.test"}));
  for (const char* bad : {"", "localhost", "a b@example.test", "@", "alice@", "<a@b.test>",
                          "a@b@c.test", "a..b@example.test", "a@-x.test", "a@x_y.test"}) {
    EXPECT_FALSE(parse_sender_identity(bad, id, why)) << bad;
    EXPECT_FALSE(why.empty());
  }
}

}  // namespace
}  // namespace truefrom::auth
