#include "submission/core/trace.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace truefrom::smtp
