#include "submission/core/address.hpp"

#include <gtest/gtest.h>

namespace truefrom::smtp {
namespace {

TEST(ParseMailbox, Table) {
  struct Case {
    std::string in;
    bool ok;
    std::string local;
    std::string domain;
  };
  const Case cases[] = {
      {"alice@example.test", true, "alice", "example.test"},
      {"a.b+tag@sub.example.test", true, "a.b+tag", "sub.example.test"},
      {"\"john doe\"@example.test", true, "john doe", "example.test"},
      {"\"a\\\"b\"@example.test", true, "a\"b", "example.test"},
      {"x@[192.0.2.1]", true, "x", "[192.0.2.1]"},
      {"x@[IPv6:2001:db8::1]", true, "x", "[IPv6:2001:db8::1]"},
      {"", false, "", ""},
      {"alice", false, "", ""},
      {"alice@", false, "", ""},
      {"@example.test", false, "", ""},
      {".alice@example.test", false, "", ""},
      {"al..ice@example.test", false, "", ""},
      {"alice@-example.test", false, "", ""},
      {"alice@example..test", false, "", ""},
      {"alice@exa_mple.test", false, "", ""},
      {"al ice@example.test", false, "", ""},
      {"\"unterminated@example.test", false, "", ""},
      {"j\xc3\xb6rg@example.test", false, "", ""},
      {std::string(65, 'a') + "@example.test", false, "", ""},
      {std::string(64, 'a') + "@example.test", true, std::string(64, 'a'), "example.test"},
  };
  for (const auto& c : cases) {
    std::string why;
    auto mb = parse_mailbox(c.in, &why);
    ASSERT_EQ(mb.has_value(), c.ok) << c.in << " " << why;
    if (mb) {
      EXPECT_EQ(mb->local, c.local) << c.in;
      EXPECT_EQ(mb->domain, c.domain) << c.in;
    } else {
      EXPECT_FALSE(why.empty()) << c.in;
    }
  }
}

TEST(ParsePath, NullPathSourceRouteAndRest) {
  auto p = parse_path("<>");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->mailbox);
  p = parse_path("<@relay.test,@other.test:bob@example.test> SIZE=10");
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->mailbox);
  EXPECT_EQ(p->mailbox->to_string(), "bob@example.test");
  EXPECT_EQ(p->rest, " SIZE=10");
  p = parse_path("<\"a>b\"@example.test>");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mailbox->local, "a>b");
  EXPECT_FALSE(parse_path("bob@example.test"));
  EXPECT_FALSE(parse_path("<bob@example.test"));
  EXPECT_FALSE(parse_path("<" + std::string(250, 'a') + "@example.test>"));
}

TEST(Mailbox, ToStringQuotesOnlyWhenNeeded) {
  EXPECT_EQ((Mailbox{"a.b", "x.test"}.to_string()), "a.b@x.test");
  EXPECT_EQ((Mailbox{"a b", "x.test"}.to_string()), "\"a b\"@x.test");
  EXPECT_EQ((Mailbox{"a\"b", "x.test"}.to_string()), "\"a\\\"b\"@x.test");
}

}  // namespace
}  // namespace truefrom::smtp
