#include "contrib/bench/sink_protocol.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace truefrom::bench {
namespace {

const std::string kHost = "sink.test";

// Feeds `input` in pieces of at most `piece` octets, as the sink's read loop does (the
// unconsumed rest is given again with the next bytes). Returns every reply.
std::string feed(SinkProtocol& p, std::string_view input, std::size_t piece) {
  std::string pending, out;
  for (std::size_t at = 0; at < input.size() && !p.quit(); at += piece) {
    pending.append(input.substr(at, piece));
    pending.erase(0, p.consume(pending, out));
  }
  return out;
}

TEST(SinkProtocol, DataIsUnstuffed) {
  SinkProtocol p(kHost, true, true);
  const std::string out = feed(p,
                               "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                               "..dot\r\nline\r\n.\r\nQUIT\r\n",
                               1000);
  EXPECT_NE(out.find("250-CHUNKING\r\n"), std::string::npos);
  EXPECT_NE(out.find("354 "), std::string::npos);
  EXPECT_NE(out.find("250 2.0.0 Ok: received\r\n221 "), std::string::npos);
  ASSERT_EQ(p.kept().size(), 1U);
  EXPECT_EQ(p.kept()[0], ".dot\r\nline\r\n");
  EXPECT_EQ(p.take_completed(), 1U);
}

// Chunks are taken octet for octet (dots, CRLF.CRLF and command words included) however the
// input is cut.
TEST(SinkProtocol, BdatChunksWhateverTheReads) {
  const std::string first = ".x\r\n.\r\nMAIL FROM:<evil@x>\r\n";
  const std::string second = "tail without CRLF";
  const std::string input = "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT " +
                            std::to_string(first.size()) + "\r\n" + first + "BDAT " +
                            std::to_string(second.size()) + " LAST\r\n" + second +
                            "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 0 LAST\r\nNOOP\r\n";
  for (std::size_t piece : {1u, 2u, 3u, 7u, 64u, 4096u}) {
    SinkProtocol p(kHost, true, true);
    const std::string out = feed(p, input, piece);
    EXPECT_EQ(out.substr(out.find("250 2.1.0")),
              "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Chunk received\r\n"
              "250 2.0.0 Ok: received\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
              "250 2.0.0 Ok: received\r\n250 2.0.0 Ok\r\n")
        << "piece " << piece;
    ASSERT_EQ(p.kept().size(), 2U);
    EXPECT_EQ(p.kept()[0], first + second);
    EXPECT_EQ(p.kept()[1], "");
    EXPECT_EQ(p.take_octets(), first.size() + second.size());
  }
}

TEST(SinkProtocol, BdatWithoutRecipientsIsReadAndRefused) {
  SinkProtocol p(kHost, true, true);
  const std::string out =
      feed(p, "EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 6 LAST\r\nNOOP\r\nNOOP\r\n", 5);
  EXPECT_NE(out.find("554 5.5.1 No valid recipients\r\n250 2.0.0 Ok\r\n"), std::string::npos);
  EXPECT_EQ(out.find("250 2.0.0 Ok\r\n250 2.0.0 Ok"), std::string::npos);  // one NOOP only
  EXPECT_TRUE(p.kept().empty());
}

TEST(SinkProtocol, BadBdatEndsTheSession) {
  for (const char* line : {"BDAT\r\n", "BDAT x\r\n", "BDAT 5 FIRST\r\n", "BDAT -1\r\n"}) {
    SinkProtocol p(kHost, false, true);
    const std::string out = feed(p, std::string("EHLO c\r\n") + line + "NOOP\r\n", 100);
    EXPECT_NE(out.find("501 5.5.4"), std::string::npos) << line;
    EXPECT_TRUE(p.quit()) << line;
  }
}

TEST(SinkProtocol, WithoutChunking) {
  SinkProtocol p(kHost, false, false);
  const std::string out = feed(p, "EHLO c\r\nBDAT 4 LAST\r\n", 100);
  EXPECT_EQ(out.find("CHUNKING"), std::string::npos);
  EXPECT_NE(out.find("502 5.5.1"), std::string::npos);
}

}  // namespace
}  // namespace truefrom::bench
