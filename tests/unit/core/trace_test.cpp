#include "submission/core/trace.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace truefrom::smtp {
namespace {

TEST(Trace, Rfc5322Date) {
  EXPECT_EQ(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(1795314600), "Sun, 22 Nov 2026 02:30:00 +0000");
}

TEST(Trace, ReceivedRecordsAuthenticatedSubmission) {
  ReceivedFields f;
  f.helo = "laptop(evil)\r\nX-Injected: 1";
  f.peer_address = "192.0.2.7";
  f.by_host = "mail.example.test";
  f.protocol = "ESMTPSA";
  f.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  f.login = "alice@example.test";
  f.id = "abc123";
  f.for_recipient = "bob@example.test";
  f.when = 0;
  const std::string h = received_header(f);
  EXPECT_EQ(h,
            "Received: from laptop_evil___X-Injected: 1 ([192.0.2.7])\r\n"
            "\tby mail.example.test (truefrom) with ESMTPSA id abc123\r\n"
            "\t(TLSv1.3 TLS_AES_256_GCM_SHA384; authenticated as alice@example.test)\r\n"
            "\tfor <bob@example.test>;\r\n"
            "\tThu, 01 Jan 1970 00:00:00 +0000\r\n");
}

TEST(Trace, MissingOriginationFields) {
  struct Case {
    const char* message;
    const char* want;
  };
  const std::vector<Case> cases{
      {"From: a@b.test\r\n\r\nx\r\n",
       "Message-ID: <id@host.test>\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n"},
      {"From: a@b.test\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n",
       "Message-ID: <id@host.test>\r\n"},
      {"message-id: <x@y>\r\nFrom: a@b.test\r\n\r\n", "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"},
      {"Message-ID: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n", ""},
      // Only the header section counts, not a "Date:" line in the body.
      {"From: a@b.test\r\n\r\nDate: in the body\r\nMessage-ID: <no@body>\r\n",
       "Message-ID: <id@host.test>\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n"},
  };
  for (const auto& c : cases) {
    const auto section = parse_header_section(c.message);
    ASSERT_TRUE(section) << c.message;
    EXPECT_EQ(missing_origination_fields(*section, "<id@host.test>", 0), c.want) << c.message;
  }
}

TEST(HeaderFields, RawOffsetsKeepFoldingAndFindTheBody) {
  const std::string m = "Subject: a\r\n b\r\nFrom : x@y.test\r\n\r\nbody\r\n";
  const auto s = parse_header_section(m);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->fields.size(), 2u);
  auto raw = [&](const HeaderField& f) { return m.substr(f.offset, f.raw_end - f.offset); };
  EXPECT_EQ(raw(s->fields[0]), "Subject: a\r\n b");
  EXPECT_EQ(raw(s->fields[1]), "From : x@y.test");
  EXPECT_EQ(m.substr(s->body_offset(m.size())), "body\r\n");
  const std::string no_body = "From: x@y.test\r\n";
  const auto t = parse_header_section(no_body);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->body_offset(no_body.size()), no_body.size());
  const std::string empty_body = "From: x@y.test\r\n\r\n";
  const auto e = parse_header_section(empty_body);
  EXPECT_EQ(e->body_offset(empty_body.size()), empty_body.size());
}

}  // namespace
}  // namespace truefrom::smtp
