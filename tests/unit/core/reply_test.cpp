#include "submission/core/reply.hpp"

#include <gtest/gtest.h>

namespace truefrom::smtp {
namespace {

TEST(Reply, SerializesSingleLineWithEnhancedStatus) {
  EXPECT_EQ(Reply(553, {5, 7, 1}, "<x@y>: sender not owned by user alice").serialize(),
            "553 5.7.1 <x@y>: sender not owned by user alice\r\n");
}

TEST(Reply, SerializesMultilineWithStatusOnEveryLine) {
  EXPECT_EQ(Reply(214, {2, 0, 0}, "one\ntwo").serialize(), "214-2.0.0 one\r\n214 2.0.0 two\r\n");
}

TEST(Reply, PlainReplyHasNoStatus) {
  EXPECT_EQ(Reply::plain(250, "host\nPIPELINING").serialize(), "250-host\r\n250 PIPELINING\r\n");
}

TEST(Reply, NeverEmitsCarriageReturnFromText) {
  EXPECT_EQ(Reply(550, {5, 0, 0}, "a\rb").serialize(), "550 5.0.0 a b\r\n");
}

TEST(Reply, ParsesEnhancedStatus) {
  struct Case {
    const char* in;
    std::optional<EnhancedStatus> want;
  };
  const Case cases[] = {
      {"2.0.0", EnhancedStatus{2, 0, 0}},
      {"5.7.1", EnhancedStatus{5, 7, 1}},
      {"4.3.999", EnhancedStatus{4, 3, 999}},
      {"3.0.0", std::nullopt},
      {"5.7", std::nullopt},
      {"5.7.1.", std::nullopt},
      {"5..1", std::nullopt},
      {"5.7.1000", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_enhanced_status(c.in), c.want) << c.in;
}

}  // namespace
}  // namespace truefrom::smtp
