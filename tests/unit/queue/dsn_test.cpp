#include "submission/queue/dsn.hpp"

#include <gtest/gtest.h>

#include "submission/core/header_fields.hpp"

namespace truefrom::queue {
namespace {

DsnInput input() {
  DsnInput in;
  in.reporting_host = "mx.example.net";
  in.original_sender = "alice@example.test";
  in.original_id = "0123456789ABCDEF01";
  in.arrival = 1790000000;
  in.now = 1790000600;
  in.relay = "relay.example.net:25";
  in.failed = {{"bob@dest.test", smtp::Reply{550, {5, 1, 1}, "no such user"}, false}};
  in.original_headers = "From: alice@example.test\r\nSubject: hello\r\n\r\n";
  in.message_id = "<X.dsn@mx.example.net>";
  in.boundary = "X/mx.example.net";
  return in;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Dsn, Rfc3464Structure) {
  const Dsn d = build_dsn(input());
  const std::string& m = d.message;
  EXPECT_FALSE(d.smtputf8);
  EXPECT_FALSE(d.eight_bit);
  std::string why;
  const auto section = smtp::parse_header_section(m, &why);
  ASSERT_TRUE(section) << why;
  EXPECT_NE(m.find("Content-Type: multipart/report; report-type=delivery-status;"),
            std::string::npos);
  EXPECT_NE(m.find("To: <alice@example.test>\r\n"), std::string::npos);
  EXPECT_NE(m.find("Auto-Submitted: auto-replied\r\n"), std::string::npos);
  EXPECT_NE(m.find("Message-ID: <X.dsn@mx.example.net>\r\n"), std::string::npos);
  // three parts, closed
  EXPECT_EQ(count(m, "\r\n--X/mx.example.net\r\n"), 3u);
  EXPECT_NE(m.find("\r\n--X/mx.example.net--\r\n"), std::string::npos);
  EXPECT_NE(m.find("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
                   "mx.example.net\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("\r\n\r\nFinal-Recipient: rfc822; bob@dest.test\r\nAction: failed\r\n"
                   "Status: 5.1.1\r\nRemote-MTA: dns; relay.example.net\r\n"
                   "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.test\r\n"
                   "Subject: hello\r\n\r\n--"),
            std::string::npos);
  // only CRLF line ends
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
  }
}

TEST(Dsn, ExpiredAndSeveralRecipients) {
  DsnInput in = input();
  in.failed = {{"a@dest.test", smtp::Reply{451, {4, 4, 1}, "relay down"}, true},
               {"b@dest.test", smtp::Reply{554, {5, 7, 1}, "spam"}, false}};
  const std::string m = build_dsn(in).message;
  EXPECT_NE(m.find("Final-Recipient: rfc822; a@dest.test\r\nAction: failed\r\nStatus: 4.4.7\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("Diagnostic-Code: smtp; 451 4.4.1 relay down"), std::string::npos);
  EXPECT_NE(m.find("Final-Recipient: rfc822; b@dest.test\r\nAction: failed\r\nStatus: 5.7.1\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("delivery time expired"), std::string::npos);
  EXPECT_NE(m.find("these recipients"), std::string::npos);
}

TEST(Dsn, InternationalAddressesUseGlobalTypes) {
  DsnInput in = input();
  in.failed[0].address = "bj\xc3\xb6rn@d\xc3\xa9st.test";
  const Dsn d = build_dsn(in);
  EXPECT_TRUE(d.smtputf8);
  EXPECT_NE(d.message.find("Content-Type: message/global-delivery-status"), std::string::npos);
  EXPECT_NE(d.message.find("report-type=global-delivery-status;"), std::string::npos);
  EXPECT_NE(d.message.find("Final-Recipient: utf-8; bj\xc3\xb6rn@d\xc3\xa9st.test"),
            std::string::npos);
}

TEST(Dsn, EightBitHeadersAreDeclared) {
  DsnInput in = input();
  in.original_headers =
      "Subject: gr\xc3\xbc\xc3\x9f"
      "e\r\n\r\n";
  const Dsn d = build_dsn(in);
  EXPECT_TRUE(d.eight_bit);
  EXPECT_FALSE(d.smtputf8);
  EXPECT_NE(d.message.find("Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 8bit"),
            std::string::npos);
}

TEST(Dsn, LongDiagnosticsAreFolded) {
  DsnInput in = input();
  std::string text;
  for (int i = 0; i < 100; ++i) text += "word" + std::to_string(i) + " ";
  in.failed[0].reply.text = text + std::string(2000, 'x');
  const std::string m = build_dsn(in).message;
  std::size_t start = 0;
  for (auto end = m.find("\r\n"); end != std::string::npos; end = m.find("\r\n", start)) {
    EXPECT_LE(end - start, 998u) << m.substr(start, 60);
    start = end + 2;
  }
  EXPECT_NE(m.find("Diagnostic-Code: smtp; 550 5.1.1 word0 word1"), std::string::npos);
  EXPECT_NE(m.find("\r\n word"), std::string::npos);  // continuation lines
}

TEST(Dsn, ReplyTextCannotBreakTheReport) {
  DsnInput in = input();
  in.failed[0].reply.text = "bad\r\n--X/mx.example.net--\r\nInjected: yes";
  const std::string m = build_dsn(in).message;
  EXPECT_EQ(m.find("\r\nInjected: yes"), std::string::npos);
  EXPECT_EQ(count(m, "\r\n--X/mx.example.net--\r\n"), 1u);
}

}  // namespace
}  // namespace truefrom::queue
