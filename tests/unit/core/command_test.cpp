#include "submission/core/command.hpp"

#include <gtest/gtest.h>

namespace truefrom::smtp {
namespace {

TEST(SplitCommand, VerbsAreCaseInsensitive) {
  EXPECT_EQ(split_command("ehlo client.test").verb, Verb::kEhlo);
  EXPECT_EQ(split_command("ehlo client.test").argument, "client.test");
  EXPECT_EQ(split_command("StartTLS").verb, Verb::kStartTls);
  EXPECT_EQ(split_command("QUIT").argument, "");
  EXPECT_EQ(split_command("GET / HTTP/1.1").verb, Verb::kHttp);
  EXPECT_EQ(split_command("MAILX FROM:<a@b>").verb, Verb::kUnknown);
  EXPECT_EQ(split_command("").verb, Verb::kUnknown);
}

TEST(ParseMailArgument, Table) {
  struct Case {
    const char* in;
    bool ok;
    bool parameter_error;
  };
  const Case cases[] = {
      {"FROM:<alice@example.test>", true, false},
      {"from:<alice@example.test>", true, false},
      {"FROM: <alice@example.test>", true, false},
      {"FROM:<>", true, false},
      {"FROM:<alice@example.test> SIZE=1000 BODY=8BITMIME", true, false},
      {"FROM:<alice@example.test> AUTH=<>", true, false},
      {"FROM:alice@example.test", false, false},
      {"TO:<alice@example.test>", false, false},
      {"FROM:<alice@example.test> SIZE=abc", false, true},
      {"FROM:<alice@example.test> SIZE=", false, true},
      {"FROM:<alice@example.test> BODY=BINARYMIME", false, true},
      {"FROM:<alice@example.test> SMTPUTF8", true, false},
      {"FROM:<alice@example.test> SMTPUTF8=yes", false, true},
      {"FROM:<josé@bücher.example> SMTPUTF8", true, false},
      {"FROM:<\"jos\xc3\xa9 x\"@example.test> SMTPUTF8", true, false},
      {"FROM:<josé@example.test>", false, false},
      {"FROM:<a@b\xc3.test> SMTPUTF8", false, false},
      {"FROM:<alice@example.test>SIZE=1", false, false},
  };
  for (const auto& c : cases) {
    ArgumentError err;
    auto parsed = parse_mail_argument(c.in, &err);
    EXPECT_EQ(parsed.has_value(), c.ok) << c.in << " " << err.reason;
    if (!parsed) EXPECT_EQ(err.parameter, c.parameter_error) << c.in;
  }
  ArgumentError err;
  EXPECT_FALSE(parse_mail_argument("FROM:<josé@example.test>", &err));
  EXPECT_TRUE(err.needs_smtputf8);
  auto u = parse_mail_argument("FROM:<josé@bücher.example> SMTPUTF8", nullptr);
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->smtputf8);
  EXPECT_EQ(u->sender->domain, "bücher.example");
  EXPECT_FALSE(parse_rcpt_argument("TO:<zoë@example.test>", &err, false));
  EXPECT_TRUE(err.needs_smtputf8);
  EXPECT_TRUE(parse_rcpt_argument("TO:<zoë@example.test>", &err, true));
  auto p = parse_mail_argument("FROM:<a@b.test> SIZE=1234 BODY=8bitmime", nullptr);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size, 1234u);
  EXPECT_EQ(p->body, BodyType::k8BitMime);
}

TEST(ParseRcptArgument, Table) {
  ArgumentError err;
  EXPECT_TRUE(parse_rcpt_argument("TO:<bob@example.test>", &err));
  EXPECT_FALSE(parse_rcpt_argument("TO:<>", &err));
  EXPECT_FALSE(parse_rcpt_argument("TO:<bob@example.test> NOTIFY=NEVER", &err));
  EXPECT_TRUE(err.parameter);
  EXPECT_FALSE(parse_rcpt_argument("FROM:<bob@example.test>", &err));
}

TEST(Base64, RoundTripsAndRefusesGarbage) {
  const std::string samples[] = {"", "a", "ab", "abc", "abcd", std::string("\0alice\0pw", 9)};
  for (const auto& s : samples) EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_encode("Username:"), "VXNlcm5hbWU6");
  EXPECT_FALSE(base64_decode("abc"));
  EXPECT_FALSE(base64_decode("ab=c"));
  EXPECT_FALSE(base64_decode("a==="));
  EXPECT_FALSE(base64_decode("ab!d"));
  EXPECT_FALSE(base64_decode("=abc"));
}

}  // namespace
}  // namespace truefrom::smtp
