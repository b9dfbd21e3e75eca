// Dialogues against the sans-IO Session: each case is fed whole, byte by byte and at random
// splits, and must give the same transcript every time.
#include "submission/core/session.hpp"

#include <gtest/gtest.h>

#include <random>

namespace truefrom::smtp {
namespace {

// A scripted application: alice/secret authenticates; senders at example.test are owned;
// every recipient is accepted; messages are accepted with "250 2.0.0 queued".
struct Transcript {
  std::string output;                 // everything the server wrote
  std::vector<std::string> messages;  // accepted message contents
  int tls_handshakes = 0;
  int aborted = 0;
  bool closed = false;
};

SessionConfig test_config() {
  SessionConfig c;
  c.hostname = "mx.test";
  c.max_message_size = 100;
  c.max_recipients = 2;
  c.max_errors = 5;
  return c;
}

Transcript run(const std::vector<std::string_view>& chunks, SessionConfig config = test_config()) {
  Session s(config);
  Transcript t;
  std::string login_user;
  std::size_t next = 0;
  auto check_plain = [&](std::string_view resp) {
    if (resp == std::string_view("\0alice\0secret", 13)) {
      s.auth_succeeded("alice");
    } else {
      s.auth_failed(Reply{535, {5, 7, 8}, "Authentication credentials invalid"});
    }
  };
  std::string login_mech_state;
  for (int guard = 0; guard < 100000; ++guard) {
    Event ev = s.next_event();
    t.output += s.take_output();
    if (std::holds_alternative<event::NeedData>(ev)) {
      if (next == chunks.size()) return t;
      s.receive(chunks[next++]);
    } else if (std::holds_alternative<event::StartTls>(ev)) {
      ++t.tls_handshakes;
      s.tls_established();
    } else if (auto* a = std::get_if<event::AuthStart>(&ev)) {
      if (a->mechanism == "PLAIN") {
        if (a->initial_response) {
          check_plain(*a->initial_response);
        } else {
          login_mech_state = "plain";
          s.auth_challenge("");
        }
      } else {
        login_mech_state = "user";
        s.auth_challenge("Username:");
      }
    } else if (auto* r = std::get_if<event::AuthResponse>(&ev)) {
      if (login_mech_state == "plain") {
        check_plain(r->response);
      } else if (login_mech_state == "user") {
        login_user = r->response;
        login_mech_state = "pass";
        s.auth_challenge("Password:");
      } else {
        check_plain(std::string("\0", 1) + login_user + std::string("\0", 1) + r->response);
      }
    } else if (auto* m = std::get_if<event::MailFrom>(&ev)) {
      if (!m->argument.sender || m->argument.sender->domain == "example.test") {
        s.accept(Reply{250, {2, 1, 0}, "Sender OK"});
      } else {
        s.reply(Reply{553,
                      {5, 7, 1},
                      "<" + m->argument.sender->to_string() + ">: sender not owned by user alice"});
      }
    } else if (std::holds_alternative<event::RcptTo>(ev)) {
      s.accept(Reply{250, {2, 1, 5}, "Recipient OK"});
    } else if (std::holds_alternative<event::DataStart>(ev)) {
      EXPECT_EQ(s.message(), "");  // nothing of an earlier message
    } else if (std::holds_alternative<event::DataEnd>(ev)) {
      t.messages.push_back(s.message());
      s.accept(Reply{250, {2, 0, 0}, "queued"});
    } else if (std::holds_alternative<event::DataAborted>(ev)) {
      EXPECT_EQ(s.message(), "");  // what was received is dropped
      ++t.aborted;
    } else if (std::holds_alternative<event::Close>(ev)) {
      t.closed = true;
      return t;
    }
  }
  ADD_FAILURE() << "session did not settle";
  return t;
}

// Same transcript whole, byte by byte and at random splits.
Transcript run_all_splits(std::string_view input, SessionConfig config = test_config()) {
  Transcript whole = run({input}, config);
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  Transcript one = run(bytes, config);
  EXPECT_EQ(whole.output, one.output) << "byte-by-byte differs";
  EXPECT_EQ(whole.messages, one.messages);
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string_view> parts;
    std::size_t pos = 0;
    while (pos < input.size()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(1, 17)(rng);
      parts.push_back(input.substr(pos, n));
      pos += n;
    }
    Transcript split = run(parts, config);
    EXPECT_EQ(whole.output, split.output) << "random split differs, round " << round;
    EXPECT_EQ(whole.messages, split.messages);
  }
  return whole;
}

const std::string kLogin = "EHLO c\r\nSTARTTLS\r\nEHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n";
const std::string kLoginReplies =
    "220 mx.test ESMTP truefrom\r\n"
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
    "220 2.0.0 Ready to start TLS\r\n"
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"
    "235 2.7.0 Authentication successful\r\n";

struct Case {
  const char* name;
  std::string input;
  std::string want_output;
  std::vector<std::string> want_messages;
};

class SessionDialogue : public ::testing::TestWithParam<Case> {};

TEST_P(SessionDialogue, Transcript) {
  const Case& c = GetParam();
  Transcript t = run_all_splits(c.input);
  EXPECT_EQ(t.output, c.want_output);
  EXPECT_EQ(t.messages, c.want_messages);
}

// Note: the STARTTLS cases send the post-handshake commands as a separate chunk in real life;
// here the driver completes the handshake at once, and the core discards what was buffered
// with STARTTLS, so commands after STARTTLS appear in their own chunk (see PipelinedAfterStartTls).
const Case kCases[] = {
    {"quit",
     "QUIT\r\n",
     "220 mx.test ESMTP truefrom\r\n221 2.0.0 mx.test closing connection\r\n",
     {}},
    {"helo_noop_rset_vrfy",
     "HELO c\r\nNOOP\r\nRSET\r\nVRFY bob\r\nEXPN list\r\n",
     "220 mx.test ESMTP truefrom\r\n250 mx.test\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
     "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
     "502 5.5.1 EXPN is not supported\r\n",
     {}},
    {"ehlo_without_tls_has_no_auth_and_auth_is_refused",
     "EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<alice@example.test>\r\n",
     "220 mx.test ESMTP truefrom\r\n"
     "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
     "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
     "538 5.7.11 Encryption required: issue STARTTLS first\r\n"
     "530 5.7.0 Must issue a STARTTLS command first\r\n",
     {}},
    {"mail_before_ehlo",
     "MAIL FROM:<a@example.test>\r\n",
     "220 mx.test ESMTP truefrom\r\n503 5.5.1 Send EHLO first\r\n",
     {}},
    {"unknown_and_empty_command",
     "FOO bar\r\n\r\n",
     "220 mx.test ESMTP truefrom\r\n500 5.5.1 Command unrecognized: FOO\r\n"
     "500 5.5.1 Command unrecognized: \r\n",
     {}},
    {"bare_lf_command",
     "NOOP\nNOOP\r\n",
     "220 mx.test ESMTP truefrom\r\n500 5.5.2 Line must end with CRLF (bare LF received)\r\n"
     "250 2.0.0 Ok\r\n",
     {}},
    {"bare_cr_command",
     "NO\rOP\r\n",
     "220 mx.test ESMTP truefrom\r\n500 5.5.2 Bare CR or NUL in command line\r\n",
     {}},
    {"command_too_long",
     "NOOP " + std::string(507, 'x') + "\r\nNOOP " + std::string(505, 'x') + "\r\n",
     "220 mx.test ESMTP truefrom\r\n500 5.5.2 Command line too long (limit 512 octets)\r\n"
     "250 2.0.0 Ok\r\n",
     {}},
    {"endless_line_discarded",
     "NOOP " + std::string(20000, 'x') + "\r\nNOOP\r\n",
     "220 mx.test ESMTP truefrom\r\n500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n",
     {}},
    {"http_request_closes",
     "GET / HTTP/1.1\r\nHost: x\r\n",
     "220 mx.test ESMTP truefrom\r\n421 4.7.0 This is an SMTP server, not a web server\r\n",
     {}},
    {"too_many_errors",
     "X\r\nX\r\nX\r\nX\r\nX\r\nNOOP\r\n",
     "220 mx.test ESMTP truefrom\r\n"
     "500 5.5.1 Command unrecognized: X\r\n500 5.5.1 Command unrecognized: X\r\n"
     "500 5.5.1 Command unrecognized: X\r\n500 5.5.1 Command unrecognized: X\r\n"
     "500 5.5.1 Command unrecognized: X\r\n421 4.7.0 mx.test too many errors, closing "
     "connection\r\n",
     {}},
};

INSTANTIATE_TEST_SUITE_P(Core, SessionDialogue, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// Runs the login prefix as its own chunks (the handshake boundary), then `rest` at every split.
Transcript after_login(std::string_view rest, SessionConfig config = test_config()) {
  std::vector<std::string_view> chunks{"EHLO c\r\nSTARTTLS\r\n",
                                       "EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"};
  Transcript whole;
  {
    auto c = chunks;
    c.push_back(rest);
    whole = run(c, config);
  }
  std::vector<std::string_view> bytes = chunks;
  for (std::size_t i = 0; i < rest.size(); ++i) bytes.push_back(rest.substr(i, 1));
  Transcript one = run(bytes, config);
  EXPECT_EQ(whole.output, one.output);
  EXPECT_EQ(whole.messages, one.messages);
  EXPECT_EQ(whole.output.substr(0, kLoginReplies.size()), kLoginReplies);
  whole.output.erase(0, kLoginReplies.size());
  return whole;
}

TEST(Session, SubmitsAMessageWithPipelining) {
  auto t = after_login(
      "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@other.test>\r\nDATA\r\n"
      "Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(t.output,
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n"
            "221 2.0.0 mx.test closing connection\r\n");
  ASSERT_EQ(t.messages.size(), 1u);
  EXPECT_EQ(t.messages[0], "Subject: hi\r\n\r\n.dot\r\n");
  EXPECT_TRUE(t.closed);
}

TEST(Session, RefusedSenderLeavesNoTransaction) {
  auto t = after_login("MAIL FROM:<bob@other.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  EXPECT_EQ(t.output,
            "553 5.7.1 <bob@other.test>: sender not owned by user alice\r\n"
            "503 5.5.1 Need MAIL before RCPT\r\n503 5.5.1 Need MAIL before DATA\r\n");
}

TEST(Session, MailWithoutAuthAfterTls) {
  Transcript t = run({"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\nMAIL FROM:<alice@example.test>\r\n"});
  EXPECT_NE(t.output.find("530 5.7.0 Authentication required\r\n"), std::string::npos);
}

TEST(Session, PipelinedAfterStartTlsIsDiscarded) {
  // The NOOP arrives with STARTTLS, before the handshake: it must never be answered.
  Transcript t = run({"EHLO c\r\nSTARTTLS\r\nNOOP\r\n", "EHLO again\r\n"});
  EXPECT_EQ(t.tls_handshakes, 1);
  EXPECT_EQ(t.output.find("250 2.0.0 Ok"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("250 AUTH PLAIN LOGIN"), std::string::npos);
}

TEST(Session, EhloStateResetAfterStartTls) {
  Transcript t = run({"EHLO c\r\nSTARTTLS\r\n", "MAIL FROM:<alice@example.test>\r\n"});
  EXPECT_NE(t.output.find("503 5.5.1 Send EHLO first"), std::string::npos) << t.output;
}

TEST(Session, StartTlsTwiceRefused) {
  Transcript t = run({"EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\nSTARTTLS\r\n"});
  EXPECT_EQ(t.tls_handshakes, 1);
  EXPECT_NE(t.output.find("503 5.5.1 TLS is already active"), std::string::npos);
}

TEST(Session, AuthLoginExchange) {
  Transcript t =
      run({"EHLO c\r\nSTARTTLS\r\n",
           "EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nMAIL FROM:<a@example.test>\r\n"});
  EXPECT_NE(t.output.find("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0"), std::string::npos)
      << t.output;
  EXPECT_NE(t.output.find("250 2.1.0 Sender OK"), std::string::npos);
}

TEST(Session, AuthFailuresCloseAfterLimit) {
  Transcript t = run({"EHLO c\r\nSTARTTLS\r\n",
                      "EHLO c\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\n"
                      "AUTH PLAIN AGFsaWNlAHdyb25n\r\nNOOP\r\n"});
  EXPECT_TRUE(t.closed);
  EXPECT_NE(t.output.find("535 5.7.8 Authentication credentials invalid\r\n421 4.7.0"),
            std::string::npos)
      << t.output;
  EXPECT_EQ(t.output.find("250 2.0.0 Ok"), std::string::npos);
}

TEST(Session, AuthCancelledAndBadBase64) {
  Transcript t = run({"EHLO c\r\nSTARTTLS\r\n",
                      "EHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !!!!\r\nAUTH CRAM-MD5\r\n"});
  EXPECT_NE(t.output.find("334 \r\n501 5.7.0 Authentication cancelled\r\n"
                          "501 5.5.2 Initial response is not valid base64\r\n504 5.5.4"),
            std::string::npos)
      << t.output;
}

TEST(Session, AlreadyAuthenticated) {
  auto t = after_login("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  EXPECT_EQ(t.output, "503 5.5.1 Already authenticated\r\n");
}

TEST(Session, SmugglingAttemptIsOneRefusedMessage) {
  for (std::string_view sep : {"\n.\n", "\r.\n", "\n.\r\n", "\r.\r\n"}) {
    std::string input = "MAIL FROM:<alice@example.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nfirst";
    input += sep;
    input += "MAIL FROM:<alice@example.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nsmuggled\r\n.\r\n";
    auto t = after_login(input);
    EXPECT_TRUE(t.messages.empty()) << sep;
    EXPECT_NE(t.output.find("550 5.6.0 Message refused: bare CR or LF"), std::string::npos)
        << t.output;
    EXPECT_EQ(t.output.find("250 2.0.0 queued"), std::string::npos);
  }
}

TEST(Session, SizeLimits) {
  auto t = after_login("MAIL FROM:<alice@example.test> SIZE=101\r\n");
  EXPECT_EQ(t.output, "552 5.3.4 Message size exceeds the limit of 100 octets\r\n");
  t = after_login("MAIL FROM:<alice@example.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n" +
                  std::string(60, 'x') + "\r\n" + std::string(60, 'y') + "\r\n.\r\nNOOP\r\n");
  EXPECT_TRUE(t.messages.empty());
  EXPECT_NE(t.output.find("552 5.3.4 Message size exceeds the limit of 100 octets\r\n250 2.0.0 Ok"),
            std::string::npos)
      << t.output;
}

TEST(Session, RecipientLimit) {
  auto t = after_login(
      "MAIL FROM:<alice@example.test>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
      "RCPT TO:<c@x.test>\r\n");
  EXPECT_EQ(t.output,
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
            "452 4.5.3 Too many recipients (limit 2)\r\n");
}

TEST(Session, SyntaxErrorsInEnvelope) {
  SessionConfig config = test_config();
  config.max_errors = 10;
  auto t = after_login(
      "MAIL FROM:alice@example.test\r\nMAIL FROM:<alice@example.test> FOO=1\r\n"
      "MAIL FROM:<alice@example.test>\r\nMAIL FROM:<alice@example.test>\r\n"
      "RCPT TO:<>\r\nDATA\r\n",
      config);
  EXPECT_EQ(t.output,
            "501 5.1.7 Bad sender address syntax: address must be enclosed in <>\r\n"
            "555 5.5.4 MAIL parameter refused: unsupported parameter FOO\r\n"
            "250 2.1.0 Sender OK\r\n503 5.5.1 Nested MAIL command\r\n"
            "501 5.1.3 Bad recipient address syntax: the null path <> is not a recipient\r\n"
            "554 5.5.1 No valid recipients\r\n");
}

TEST(Session, RsetClearsTransactionAndNullSenderIsPassedOn) {
  auto t = after_login("MAIL FROM:<>\r\nRSET\r\nRCPT TO:<a@x.test>\r\n");
  EXPECT_EQ(t.output, "250 2.1.0 Sender OK\r\n250 2.0.0 Ok\r\n503 5.5.1 Need MAIL before RCPT\r\n");
}

TEST(Session, ImplicitTlsOffersAuthAtOnce) {
  SessionConfig c = test_config();
  c.implicit_tls = true;
  Transcript t = run({"EHLO c\r\n"}, c);
  EXPECT_NE(t.output.find("250 AUTH PLAIN LOGIN"), std::string::npos);
  EXPECT_EQ(t.output.find("STARTTLS"), std::string::npos);
}

TEST(Session, TimeoutAndShutdownClose) {
  Session s(test_config());
  s.timed_out();
  EXPECT_TRUE(std::holds_alternative<event::Close>(s.next_event()));
  EXPECT_NE(s.take_output().find("421 4.4.2"), std::string::npos);
}

}  // namespace
}  // namespace truefrom::smtp
