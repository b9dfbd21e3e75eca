// Table tests of the relay client session's parts: the EHLO extensions, the error category,
// which failure leaves a transaction "unanswered" (a reused connection may then be retried),
// and that the message goes out without a copy.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "submission/relay/client_session.hpp"
#include "submission/relay/extensions.hpp"

namespace truefrom::relay {
namespace {

using smtp::Reply;

TEST(Extensions, FromEhloReply) {
  struct Case {
    std::string text;  // the 250 reply's lines
    Extensions want;
  };
  const Case cases[] = {
      {"relay.test", {}},
      {"relay.test\nPIPELINING\nCHUNKING", {.pipelining = true, .chunking = true}},
      {"relay.test\npipelining\nChunking\n8bitmime\nsmtputf8\nstarttls",
       {.starttls = true,
        .pipelining = true,
        .chunking = true,
        .eight_bit = true,
        .smtputf8 = true}},
      {"relay.test\nAUTH LOGIN PLAIN", {.auth_plain = true}},
      {"relay.test\nAUTH plain", {.auth_plain = true}},
      {"relay.test\nAUTH LOGIN CRAM-MD5", {}},
      {"relay.test\nAUTH=PLAIN", {}},  // the pre-RFC 4954 form is not taken
      {"relay.test\nAUTH PLAINX", {}},
      {"relay.test\nPIPELININGX\nXCHUNKING", {}},
      {"relay.test\nSIZE 1000\nDSN", {}},
      // RFC 5321 4.1.1.1: the first line is the relay's name, never a keyword.
      {"PIPELINING", {}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parse_extensions(Reply::plain(250, c.text)), c.want) << c.text;
  }
}

TEST(ClientError, CategoryNamesEveryCode) {
  EXPECT_STREQ(client_category().name(), "relay client");
  for (int e = static_cast<int>(ClientError::kGreetingRefused);
       e <= static_cast<int>(ClientError::kConnectionClosed); ++e) {
    const std::error_code ec = static_cast<ClientError>(e);
    EXPECT_EQ(ec.category(), client_category());
    EXPECT_NE(ec.message(), "unknown relay client error") << e;
  }
  const std::error_code closing = ClientError::kRelayClosing;
  EXPECT_EQ(closing, ClientError::kRelayClosing);
  EXPECT_NE(closing, std::make_error_code(std::errc::connection_reset));
}

// Plays the relay's replies into a session set up without TLS and one transaction.
struct Played {
  ClientSession session;
  std::vector<ClientEvent> events;
  std::string output;
};

ClientConfig plain_config() {
  ClientConfig c;
  c.starttls = RelayTls::kNone;
  c.helo_name = "client.test";
  return c;
}

void drain(Played& p) {
  for (;;) {
    ClientEvent ev = p.session.next_event();
    for (const auto piece : p.session.pending_output()) p.output.append(piece);
    if (std::holds_alternative<client_event::NeedData>(ev)) return;
    p.events.push_back(std::move(ev));
  }
}

TEST(ClientSession, WhatCountsAsAnswered) {
  // answered() decides whether the driver may retry a failed transaction on a fresh
  // connection (a reused one may have gone stale while idle): only before any reply of the
  // relay's to this transaction, and never after it took the message.
  struct Case {
    const char* name;
    bool reuse_dirty;     // the first transaction was refused: RSET before the second
    const char* replies;  // to the second transaction
    bool want_answered;
    ClientError want_error;
  };
  const Case cases[] = {
      {"421 to MAIL on a reused connection", false, "421 4.4.2 idle too long\r\n", false,
       ClientError::kRelayClosing},
      {"closed before MAIL's reply", false, "", false, ClientError::kConnectionClosed},
      {"421 to RSET", true, "421 4.4.2 idle too long\r\n", false, ClientError::kRelayClosing},
      {"RSET refused", true, "502 5.5.1 no RSET\r\n", false, ClientError::kRsetRefused},
      {"MAIL answered, then closed", false, "250 2.1.0 ok\r\n", true,
       ClientError::kConnectionClosed},
      {"RSET answered, then 421 to MAIL", true, "250 ok\r\n421 4.3.2 bye\r\n", true,
       ClientError::kRelayClosing},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Played p{ClientSession(plain_config()), {}, {}};
    p.session.receive("220 relay.test\r\n250 relay.test\r\n");
    drain(p);
    ASSERT_EQ(p.session.state(), ClientSession::State::kReady);
    const Envelope env{"a@example.test", {"b@dest.test"}};
    const std::vector<std::string_view> message{"Subject: x\r\n\r\nbody\r\n"};
    p.session.start(env, message, false);
    p.session.receive(c.reuse_dirty ? "550 5.7.1 no\r\n" : "250 2.1.0 ok\r\n");
    if (!c.reuse_dirty) p.session.receive("250 2.1.5 ok\r\n354 go\r\n250 2.0.0 done\r\n");
    drain(p);
    ASSERT_TRUE(std::holds_alternative<client_event::Done>(p.events.back()));
    p.events.clear();
    p.session.start(env, message, false);
    p.session.receive(c.replies);
    drain(p);
    p.session.connection_closed();
    drain(p);
    ASSERT_EQ(p.events.size(), 1u);
    const auto* f = std::get_if<client_event::Failed>(&p.events[0]);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->error, c.want_error) << f->reason;
    EXPECT_EQ(p.session.answered(), c.want_answered);
  }
}

TEST(ClientSession, WhatTheDriverWaitsFor) {
  // waiting_for() picks the driver's timeout (greeting, each reply, the message's reply);
  // replies() restarts it: one count per whole reply, none for bytes of an unfinished one.
  using W = ClientSession::Wait;
  Played p{ClientSession(plain_config()), {}, {}};
  EXPECT_EQ(p.session.waiting_for(), W::kGreeting);
  p.session.receive("220 relay.test\r\n250-relay.test\r\n250-PIPELINING\r\n");
  drain(p);
  EXPECT_EQ(p.session.waiting_for(), W::kReply);  // the rest of EHLO's reply
  EXPECT_EQ(p.session.replies(), 1u);
  p.session.receive("250 CHUNKING\r\n");
  drain(p);
  EXPECT_EQ(p.session.replies(), 2u);
  EXPECT_EQ(p.session.waiting_for(), W::kNothing);  // idle
  const Envelope env{"a@example.test", {"b@dest.test"}};
  const std::vector<std::string_view> message{"Subject: x\r\n\r\nbody\r\n"};
  p.session.start(env, message, false);
  drain(p);
  EXPECT_EQ(p.session.waiting_for(), W::kReply);  // MAIL's reply first
  p.session.receive("250 2.1.0 ok\r\n250 2.1.5 ok\r\n25");
  drain(p);
  EXPECT_EQ(p.session.waiting_for(), W::kMessageReply);  // BDAT LAST's
  EXPECT_EQ(p.session.replies(), 4u);
  p.session.receive("0 2.0.0 done\r\n");
  drain(p);
  EXPECT_EQ(p.session.replies(), 5u);
  EXPECT_EQ(p.session.waiting_for(), W::kNothing);
  p.session.check();
  EXPECT_EQ(p.session.state(), ClientSession::State::kCheck);
  EXPECT_EQ(p.session.waiting_for(), W::kReply);
  p.events.clear();
  p.session.receive("250 2.0.0 reset\r\n");
  drain(p);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<client_event::Ready>(p.events[0]));
  EXPECT_TRUE(p.session.reusable());
}

TEST(ClientSession, MessageGoesOutWithoutACopy) {
  // The message's octets are written from the caller's buffers (one write with the
  // commands under PIPELINING + CHUNKING), not copied into the session.
  Played p{ClientSession(plain_config()), {}, {}};
  p.session.receive("220 relay.test\r\n250-relay.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
  drain(p);
  const std::string body(100000, 'x');
  const std::string text = "Subject: big\r\n\r\n" + body + "\r\n";
  const std::vector<std::string_view> message{text};
  p.session.start(Envelope{"a@example.test", {"b@dest.test"}}, message, false);
  const auto out = p.session.pending_output();
  EXPECT_TRUE(p.session.output_carries_message());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@dest.test>\r\nBDAT " +
                        std::to_string(text.size()) + " LAST\r\n");
  EXPECT_EQ(out[1].data(), text.data());
  EXPECT_EQ(out[1].size(), text.size());
  EXPECT_TRUE(p.session.pending_output().empty());
  EXPECT_FALSE(p.session.output_carries_message());
}

TEST(ClientSession, ReplyLimitCoversAllLinesOfOneReply) {
  // The old client bounded each line (64 KiB) but not a reply's number of lines: a relay
  // sending "250-" lines without end grew its memory. Each reply starts the count anew.
  struct Case {
    std::size_t lines;  // "250-x" continuation lines before the final one
    bool want_failed;
  };
  const Case cases[] = {{10, false}, {4000, false}, {4100, true}, {100000, true}};
  for (const auto& c : cases) {
    ClientSession s(plain_config());  // 64 KiB
    s.receive("220 relay.test\r\n");
    (void)s.next_event();
    for (std::size_t i = 0; i < c.lines; ++i) s.receive("250-relay.test\r\n");
    s.receive("250 PIPELINING\r\n");
    const ClientEvent ev = s.next_event();
    const auto* f = std::get_if<client_event::Failed>(&ev);
    EXPECT_EQ(f != nullptr, c.want_failed) << c.lines;
    if (f) EXPECT_EQ(f->error, ClientError::kReplyTooLong);
  }
}

TEST(ClientSession, BytesDuringTheHandshakeFail) {
  ClientConfig config = plain_config();
  config.starttls = RelayTls::kRequired;
  ClientSession s(config);
  s.receive("220 relay.test\r\n250-relay.test\r\n250 STARTTLS\r\n");
  EXPECT_TRUE(std::holds_alternative<client_event::NeedData>(s.next_event()));
  s.receive("220 go ahead\r\n");
  EXPECT_TRUE(std::holds_alternative<client_event::StartTls>(s.next_event()));
  (void)s.pending_output();       // EHLO, STARTTLS
  s.receive("250 injected\r\n");  // read from the plain socket before the handshake
  const ClientEvent ev = s.next_event();
  const auto* f = std::get_if<client_event::Failed>(&ev);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->error, ClientError::kDataBeforeTls);
  s.tls_established();  // too late: nothing happens
  EXPECT_EQ(s.state(), ClientSession::State::kClosed);
  EXPECT_FALSE(s.has_output());
}

}  // namespace
}  // namespace truefrom::relay
