#include "submission/relay/reply_parser.hpp"

#include <gtest/gtest.h>

namespace truefrom::relay {
namespace {

TEST(ReplyParser, MultilineWithEnhancedCodes) {
  ReplyParser p;
  EXPECT_EQ(p.feed("250-relay.test"), ReplyParser::Result::kMore);
  EXPECT_EQ(p.feed("250-STARTTLS"), ReplyParser::Result::kMore);
  EXPECT_EQ(p.feed("250 8BITMIME"), ReplyParser::Result::kDone);
  EXPECT_EQ(p.reply().code, 250);
  EXPECT_EQ(p.reply().text, "relay.test\nSTARTTLS\n8BITMIME");
  p.reset();
  EXPECT_EQ(p.feed("451 4.3.2 sink says later"), ReplyParser::Result::kDone);
  EXPECT_EQ(p.reply().status, (smtp::EnhancedStatus{4, 3, 2}));
  EXPECT_EQ(p.reply().text, "sink says later");
  p.reset();
  // A status whose class disagrees with the code is text, not a status.
  EXPECT_EQ(p.feed("550 4.0.0 odd"), ReplyParser::Result::kDone);
  EXPECT_FALSE(p.reply().status);
  p.reset();
  EXPECT_EQ(p.feed("250"), ReplyParser::Result::kDone);
}

TEST(ReplyParser, RefusesGarbage) {
  for (const char* bad : {"", "25", "abc def", "150 preliminary", "250x", "700 no"}) {
    ReplyParser p;
    EXPECT_EQ(p.feed(bad), ReplyParser::Result::kError) << bad;
  }
  ReplyParser p;
  EXPECT_EQ(p.feed("250-a"), ReplyParser::Result::kMore);
  EXPECT_EQ(p.feed("251 b"), ReplyParser::Result::kError);
}

}  // namespace
}  // namespace truefrom::relay
