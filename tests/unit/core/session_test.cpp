// Session tests that are not golden dialogues (those are tests/golden/session/*.md, run by
// session_golden_test.cpp): behaviour that depends on where the reads end, and calls the
// transport makes without any input.
#include "submission/core/session.hpp"

#include <gtest/gtest.h>

#include "session_golden_driver.hpp"

namespace truefrom::smtp {
namespace {

SessionConfig test_config() {
  SessionConfig c;
  c.hostname = "mx.test";
  c.max_message_size = 100;
  c.max_recipients = 2;
  c.max_errors = 5;
  return c;
}

std::string records(const golden::Recording& r) {
  std::string s;
  for (const auto& line : r.flat()) s += line + "\n";
  return s;
}

// RFC 3207 4.2: a command that arrives in the same read as STARTTLS, before the handshake,
// must never be answered. No golden dialogue can say this: it holds only for that cut of
// the input (sent after the handshake, the same NOOP is answered), so any-split does not.
TEST(Session, PipelinedAfterStartTlsIsDiscarded) {
  const auto r = golden::drive(test_config(), golden::Transport{},
                               {"EHLO c\r\nSTARTTLS\r\nNOOP\r\n", "EHLO again\r\n"});
  EXPECT_EQ(records(r),
            "S: 220 mx.test ESMTP truefrom\n"
            "S: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 100\nS: 250-8BITMIME\n"
            "S: 250-SMTPUTF8\nS: 250-ENHANCEDSTATUSCODES\nS: 250 STARTTLS\n"
            "S: 220 2.0.0 Ready to start TLS\n-- tls\n"
            "S: 250-mx.test\nS: 250-PIPELINING\nS: 250-SIZE 100\nS: 250-8BITMIME\n"
            "S: 250-SMTPUTF8\nS: 250-ENHANCEDSTATUSCODES\nS: 250 AUTH PLAIN LOGIN\n");
}

TEST(Session, TimeoutCloses) {
  Session s(test_config());
  s.timed_out();
  EXPECT_TRUE(std::holds_alternative<event::Close>(s.next_event()));
  EXPECT_NE(s.take_output().find("421 4.4.2"), std::string::npos);
}

TEST(Session, ShutdownCloses) {
  Session s(test_config());
  s.shutting_down();
  EXPECT_TRUE(std::holds_alternative<event::Close>(s.next_event()));
  EXPECT_NE(s.take_output().find("421 4.3.2"), std::string::npos);
}

// A client that spoke before the greeting gets 554 instead of the 220, and what it sent is
// never served (here an EHLO and a MAIL that would otherwise be answered).
TEST(Session, InputBeforeTheGreetingCloses) {
  Session s(test_config());
  s.receive("EHLO bot\r\nMAIL FROM:<a@b.test>\r\n");
  s.spoke_before_greeting();
  const std::string out = s.take_output();
  EXPECT_EQ(out.rfind("554 5.5.0 ", 0), 0u) << out;
  EXPECT_EQ(out.find("220"), std::string::npos) << out;
  EXPECT_TRUE(std::holds_alternative<event::Close>(s.next_event()));
  EXPECT_FALSE(s.has_output());
}

// An account suspended while its session is open: whatever the client sends next is
// answered with the given reply and the connection closes; a pipelined rest is discarded.
TEST(Session, EndAtNextCommand) {
  Session s(test_config());
  s.receive("EHLO c\r\n");
  EXPECT_TRUE(std::holds_alternative<event::NeedData>(s.next_event()));
  (void)s.take_output();
  s.end_at_next_command(Reply{421, {4, 7, 1}, "mx.test account suspended"});
  EXPECT_TRUE(std::holds_alternative<event::NeedData>(s.next_event()));
  EXPECT_EQ(s.take_output(), "");  // nothing before the client speaks
  s.receive("NOOP\r\nQUIT\r\n");
  EXPECT_TRUE(std::holds_alternative<event::Close>(s.next_event()));
  EXPECT_EQ(s.take_output(), "421 4.7.1 mx.test account suspended\r\n");
}

// What a drain waits for: from the accepted MAIL FROM to the reply to the message's end
// (or RSET), and nothing else.
TEST(Session, InTransactionFromMailFromToTheReplyToTheMessage) {
  Session s(test_config());
  s.tls_established();
  s.receive("EHLO c\r\nAUTH PLAIN AGEAcGFzcw==\r\n");
  EXPECT_TRUE(std::holds_alternative<event::AuthStart>(s.next_event()));
  s.auth_succeeded("a@b.test");
  EXPECT_FALSE(s.in_transaction());
  s.receive("MAIL FROM:<a@b.test>\r\n");
  EXPECT_TRUE(std::holds_alternative<event::MailFrom>(s.next_event()));
  EXPECT_FALSE(s.in_transaction());  // not before it is accepted
  s.accept(Reply{250, {2, 1, 0}, "OK"});
  EXPECT_TRUE(s.in_transaction());
  s.receive("RSET\r\n");
  EXPECT_TRUE(std::holds_alternative<event::NeedData>(s.next_event()));
  EXPECT_FALSE(s.in_transaction());
  s.receive("MAIL FROM:<a@b.test>\r\n");
  EXPECT_TRUE(std::holds_alternative<event::MailFrom>(s.next_event()));
  s.accept(Reply{250, {2, 1, 0}, "OK"});
  s.receive("RCPT TO:<r@d.test>\r\n");
  EXPECT_TRUE(std::holds_alternative<event::RcptTo>(s.next_event()));
  s.accept(Reply{250, {2, 1, 5}, "OK"});
  s.receive("DATA\r\n");
  EXPECT_TRUE(std::holds_alternative<event::DataStart>(s.next_event()));  // 354
  EXPECT_TRUE(s.in_transaction());
  s.receive("Subject: x\r\n\r\nbody\r\n.\r\n");
  EXPECT_TRUE(std::holds_alternative<event::DataEnd>(s.next_event()));
  EXPECT_TRUE(s.in_transaction());
  s.accept(Reply{250, {2, 0, 0}, "queued"});
  EXPECT_FALSE(s.in_transaction());
}

}  // namespace
}  // namespace truefrom::smtp
