// Automatic suspension's triggers (submission/policy/suspension.hpp) on a fake clock.
#include "submission/policy/suspension.hpp"

#include <gtest/gtest.h>

#include "submission/policy/client_network.hpp"

namespace truefrom::policy {
namespace {

constexpr SuspensionTriggers::Time kNoon = 1796385600;  // 2026-12-04 12:00:00 UTC

TEST(Suspension, HourlyLimitInThreeHoursOfADay) {
  SuspensionTriggers t({.limit_hours = 3, .login_networks = 0, .binding_refusals = 0});
  // Many refusals within one hour count once.
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(t.hourly_limit_reached("a@x", kNoon + i));
  EXPECT_FALSE(t.hourly_limit_reached("a@x", kNoon + 3600));
  const auto fired = t.hourly_limit_reached("A@X", kNoon + 5 * 3600);  // logins fold case
  ASSERT_TRUE(fired);
  EXPECT_EQ(fired->rule, "hourly limit");
  EXPECT_EQ(fired->evidence,
            "the hourly message limit was reached in 3 hours within a day (limit 3): "
            "2026-12-04 12:00, 2026-12-04 13:00, 2026-12-04 17:00");
  // Once: the caller has suspended the account.
  EXPECT_FALSE(t.hourly_limit_reached("a@x", kNoon + 6 * 3600));
  t.reset("a@x");
  EXPECT_FALSE(t.hourly_limit_reached("a@x", kNoon + 7 * 3600));
}

TEST(Suspension, HoursOlderThanADayDoNotCount) {
  SuspensionTriggers t({.limit_hours = 2, .login_networks = 0, .binding_refusals = 0});
  EXPECT_FALSE(t.hourly_limit_reached("a", kNoon));
  EXPECT_FALSE(t.hourly_limit_reached("a", kNoon + 26 * 3600));
  EXPECT_TRUE(t.hourly_limit_reached("a", kNoon + 27 * 3600));
}

TEST(Suspension, LoginsFromTooManyNetworksInAnHour) {
  SuspensionTriggers t({.limit_hours = 0, .login_networks = 2, .binding_refusals = 0});
  const auto net = [](const char* ip) { return wide_network(*parse_ip(ip)); };
  EXPECT_EQ(net("192.0.2.77"), "192.0.2.0/24");
  EXPECT_EQ(net("2001:db8:1:2::1"), "2001:db8:1::/48");
  EXPECT_FALSE(t.login_succeeded("a", net("192.0.2.1"), kNoon));
  EXPECT_FALSE(t.login_succeeded("a", net("192.0.2.200"), kNoon + 1));  // the same /24
  EXPECT_FALSE(t.login_succeeded("a", net("198.51.100.1"), kNoon + 2));
  // An hour later the first network has left the window.
  EXPECT_FALSE(t.login_succeeded("a", net("203.0.113.1"), kNoon + 3601));
  const auto fired = t.login_succeeded("a", net("2001:db8:1:2::1"), kNoon + 3601);
  ASSERT_TRUE(fired);
  EXPECT_EQ(fired->rule, "login networks");
  EXPECT_EQ(fired->evidence,
            "successful logins from 3 networks within an hour (limit 2): "
            "198.51.100.0/24 (12:00:02), 2001:db8:1::/48 (13:00:01), 203.0.113.0/24 (13:00:01)");
}

TEST(Suspension, RefusedSendersInAnHour) {
  SuspensionTriggers t({.limit_hours = 0, .login_networks = 0, .binding_refusals = 2});
  EXPECT_FALSE(t.binding_refused("a", "MAIL FROM <ceo@bank.test>", kNoon));
  EXPECT_FALSE(t.binding_refused("a", "From: ceo@bank.test", kNoon + 1));
  const auto fired = t.binding_refused("a", "MAIL FROM <x@y.test>", kNoon + 2);
  ASSERT_TRUE(fired);
  EXPECT_EQ(fired->evidence,
            "3 refused senders within an hour (limit 2), the last: MAIL FROM <x@y.test>; "
            "From: ceo@bank.test; MAIL FROM <ceo@bank.test>");
  // Another account is not affected.
  EXPECT_FALSE(t.binding_refused("b", "MAIL FROM <x@y.test>", kNoon + 2));
}

TEST(Suspension, ManyLoginsFromFewNetworksStayCheap) {
  SuspensionTriggers t({.limit_hours = 0, .login_networks = 5, .binding_refusals = 0});
  // A webmail frontend or a busy client: a million logins from two networks in an hour.
  for (int i = 0; i < 1000000; ++i) {
    ASSERT_FALSE(t.login_succeeded("a", i % 2 ? "192.0.2.0/24" : "198.51.100.0/24",
                                   kNoon + i / 300));
  }
}

TEST(Suspension, ZeroTurnsATriggerOff) {
  SuspensionTriggers t({.limit_hours = 0, .login_networks = 0, .binding_refusals = 0});
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(t.binding_refused("a", "x", kNoon + i));
    EXPECT_FALSE(t.login_succeeded("a", std::to_string(i), kNoon + i));
    EXPECT_FALSE(t.hourly_limit_reached("a", kNoon + i * 3600));
  }
}

TEST(Suspension, MemoryIsBounded) {
  SuspensionTriggers t({.limit_hours = 0, .login_networks = 0, .binding_refusals = 5,
                        .max_tracked = 2});
  EXPECT_FALSE(t.binding_refused("a", "x", kNoon));
  EXPECT_FALSE(t.binding_refused("b", "x", kNoon));
  EXPECT_FALSE(t.binding_refused("c", "x", kNoon));  // not tracked: the table is full
  // An hour later a and b have nothing left in their windows: swept for newcomers.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(t.binding_refused("c", "x", kNoon + 3600 + i));
  EXPECT_TRUE(t.binding_refused("c", "x", kNoon + 3700));
}

TEST(Suspension, NoticeNamesTheAccountTheTriggerAndTheEvidence) {
  const std::string m = suspension_notice({"mail.isp.test", "alice@example.test",
                                           {"login networks", "logins from 6 networks"},
                                           {"abuse@isp.test", "noc@isp.test"}, kNoon,
                                           "<x1.suspended@mail.isp.test>"});
  EXPECT_EQ(m.substr(0, m.find("\r\n\r\n")),
            "From: truefrom <postmaster@mail.isp.test>\r\n"
            "To: abuse@isp.test, noc@isp.test\r\n"
            "Subject: truefrom: account alice@example.test suspended (login networks)\r\n"
            "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <x1.suspended@mail.isp.test>\r\n"
            "Auto-Submitted: auto-generated\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit");
  EXPECT_NE(m.find("Evidence: logins from 6 networks\r\n"), std::string::npos);
  EXPECT_NE(m.find("truefrom account resume alice@example.test\r\n"), std::string::npos);
  // CRLF only, no line past 998 octets.
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') EXPECT_EQ(m[i - 1], '\r') << i;
  }
}

}  // namespace
}  // namespace truefrom::policy
