// Login throttling, connections per network and client networks (submission/policy/
// login_throttle.hpp, connection_limits.hpp, client_network.hpp): table tests on a fake
// clock (the time is an argument; nothing sleeps).
#include <gtest/gtest.h>

#include <chrono>

#include "submission/policy/client_network.hpp"
#include "submission/policy/connection_limits.hpp"
#include "submission/policy/login_throttle.hpp"

namespace truefrom::policy {
namespace {

using namespace std::chrono_literals;
using Clock = LoginThrottle::Clock;

IpAddress ip(const char* text) {
  auto a = parse_ip(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddress{});
}

TEST(ClientNetwork, KeysTable) {
  struct Case {
    const char* address;
    const char* want;
  };
  const Case cases[] = {
      {"192.0.2.1", "192.0.2.1"},
      {"::ffff:192.0.2.1", "192.0.2.1"},
      {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
      {"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
      {"::1", "0:0:0:0::/64"},
  };
  for (const auto& c : cases) EXPECT_EQ(client_network(ip(c.address)), c.want) << c.address;
  EXPECT_FALSE(parse_ip("192.0.2"));
  EXPECT_FALSE(parse_ip("host.example"));
  EXPECT_FALSE(parse_ip(""));
}

TEST(ClientNetwork, NetworksTable) {
  struct Case {
    const char* network;
    const char* address;
    bool contains;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"192.0.2.7", "192.0.2.7", true},
      {"192.0.2.7", "192.0.2.8", false},
      {"192.0.2.0/25", "192.0.2.127", true},
      {"192.0.2.0/25", "192.0.2.128", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "2001:db8::1", false},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"::1", "::1", true},
      {"::1", "127.0.0.1", false},
      {"127.0.0.0/8", "::ffff:127.0.0.2", true},
  };
  for (const auto& c : cases) {
    const auto n = parse_network(c.network);
    ASSERT_TRUE(n) << c.network;
    EXPECT_EQ(n->contains(ip(c.address)), c.contains) << c.network << " " << c.address;
  }
  std::string why;
  for (const char* bad : {"10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/x", "mx/8"}) {
    EXPECT_FALSE(parse_network(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

ThrottleOptions small() {
  ThrottleOptions o;
  o.window = 600s;
  o.delay_after = 2;
  o.first_delay = 1000ms;
  o.max_delay = 4000ms;
  o.block_after = 5;
  o.block_time = 900s;
  o.account_block_after = 4;
  o.remember_good = 30 * 86400s;
  return o;
}

TEST(LoginThrottle, DelaysDoubleThenTheNetworkIsBlockedAndTheBlockEnds) {
  LoginThrottle t(small());
  const Clock::time_point t0{};
  const auto a = ip("192.0.2.1");
  // (failures so far, expected delay in ms before the next attempt)
  struct Step {
    unsigned failures;
    long delay_ms;
    bool blocked;
  };
  const Step steps[] = {{0, 0, false},    {1, 0, false},    {2, 1000, false},
                        {3, 2000, false}, {4, 4000, false}, {5, 0, true}};
  for (std::size_t i = 0; i < std::size(steps); ++i) {
    const auto now = t0 + std::chrono::seconds(i);
    const auto g = t.check(a, now);
    EXPECT_EQ(g.failures, steps[i].failures) << i;
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(g.delay).count(),
              steps[i].delay_ms)
        << i;
    EXPECT_EQ(g.blocked, steps[i].blocked) << i;
    if (!g.blocked) {
      const auto r = t.record_failure(a, "victim@example.test", now);
      EXPECT_EQ(r.blocked_now, i == 4) << i;
    }
  }
  // Another network is untouched.
  EXPECT_FALSE(t.check(ip("192.0.2.2"), t0 + 10s).blocked);
  EXPECT_EQ(t.check(ip("192.0.2.2"), t0 + 10s).delay, Clock::duration::zero());
  // Still blocked just before the block time ends; free after it, with the failures out of
  // the (shorter) window too.
  EXPECT_TRUE(t.check(a, t0 + 4s + 899s).blocked);
  const auto later = t.check(a, t0 + 4s + 901s);
  EXPECT_FALSE(later.blocked);
  EXPECT_EQ(later.failures, 0u);
}

TEST(LoginThrottle, IPv6CountsPerSlash64) {
  LoginThrottle t(small());
  const Clock::time_point t0{};
  for (int i = 0; i < 5; ++i) {
    const std::string a = "2001:db8:1:2::" + std::to_string(i + 1);
    t.record_failure(ip(a.c_str()), "x", t0);
  }
  EXPECT_TRUE(t.check(ip("2001:db8:1:2:ffff::9"), t0 + 1s).blocked);
  EXPECT_FALSE(t.check(ip("2001:db8:1:3::1"), t0 + 1s).blocked);
}

TEST(LoginThrottle, AnAccountUnderAttackStaysUsableFromItsOwnersNetwork) {
  LoginThrottle t(small());
  const Clock::time_point t0{};
  const auto home = ip("198.51.100.7");
  // The owner logged in from home once.
  EXPECT_FALSE(t.account_blocked(home, "Alice@example.test", t0));
  t.record_success(home, "Alice@example.test", t0);
  // Four attackers, one failure each: the account is blocked for other networks...
  for (const char* a : {"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"}) {
    t.record_failure(ip(a), "alice@example.test", t0 + 1s);
  }
  EXPECT_TRUE(t.account_blocked(ip("203.0.113.9"), "alice@example.test", t0 + 2s));
  // ...but not for the owner's (logins compare case-insensitively).
  EXPECT_FALSE(t.account_blocked(home, "ALICE@example.test", t0 + 3s));
  // Once the failures leave the window, a new network may log in again.
  EXPECT_FALSE(t.account_blocked(ip("203.0.113.9"), "alice@example.test", t0 + 602s));
}

TEST(LoginThrottle, ASuccessClearsThatNetworksFailuresForTheAccountOnly) {
  const Clock::time_point t0{};
  const auto a = ip("192.0.2.1");
  {
    // Three typos from A, then A gets it right: A's failures leave bob's count, so three
    // more failures from elsewhere keep bob below its threshold (4) for a new network E.
    LoginThrottle t(small());
    for (int i = 0; i < 3; ++i) t.record_failure(a, "bob", t0);
    t.record_success(a, "bob", t0 + 1s);
    for (const char* n : {"198.51.100.1", "198.51.100.2", "198.51.100.3"}) {
      t.record_failure(ip(n), "bob", t0 + 2s);
    }
    EXPECT_FALSE(t.account_blocked(ip("203.0.113.5"), "bob", t0 + 3s));
  }
  {
    // Without that success the same failures reach the threshold: E is refused.
    LoginThrottle t(small());
    for (int i = 0; i < 3; ++i) t.record_failure(a, "bob", t0);
    for (const char* n : {"198.51.100.1", "198.51.100.2", "198.51.100.3"}) {
      t.record_failure(ip(n), "bob", t0 + 2s);
    }
    EXPECT_TRUE(t.account_blocked(ip("203.0.113.5"), "bob", t0 + 3s));
  }
  {
    // The network's own count survives a success there: one valid login must not reset
    // an attacker's budget for the other accounts.
    LoginThrottle t(small());
    for (int i = 0; i < 3; ++i) t.record_failure(a, "carol", t0);
    t.record_success(a, "dave", t0 + 1s);
    EXPECT_EQ(t.check(a, t0 + 2s).failures, 3u);
  }
  {
    // Allowed networks are never delayed or blocked.
    ThrottleOptions o = small();
    o.allow = {*parse_network("192.0.2.0/24")};
    LoginThrottle t(o);
    for (int i = 0; i < 10; ++i) t.record_failure(a, "bob", t0);
    EXPECT_FALSE(t.check(a, t0 + 1s).blocked);
    EXPECT_EQ(t.check(a, t0 + 1s).delay, Clock::duration::zero());
  }
}

TEST(LoginThrottle, MemoryIsBoundedAndAFullTableEvictsNothingThatCounts) {
  ThrottleOptions o = small();
  o.max_tracked = 100;
  LoginThrottle t(o);
  const Clock::time_point t0{};
  // The owner's network is remembered before the spray.
  t.record_success(ip("198.51.100.7"), "victim", t0);
  for (int i = 0; i < 1000; ++i) {
    const std::string a = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250);
    t.record_failure(ip(a.c_str()), "made-up-" + std::to_string(i),
                     t0 + std::chrono::milliseconds(i));
  }
  // Full of entries that still count: the first networks stay tracked, the newcomers not.
  EXPECT_EQ(t.check(ip("10.0.0.0"), t0 + 2s).failures, 1u);
  EXPECT_EQ(t.check(ip("10.0.3.249"), t0 + 2s).failures, 0u);
  // The victim's remembered network survived the spray: an attack on it from four
  // networks does not lock its owner out.
  for (const char* n : {"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"}) {
    t.record_failure(ip(n), "victim", t0 + 3s);
  }
  EXPECT_FALSE(t.account_blocked(ip("198.51.100.7"), "victim", t0 + 4s));
  // Once the window has passed, the spent entries are swept and newcomers counted again.
  t.record_failure(ip("10.9.9.9"), "x", t0 + 700s);
  EXPECT_EQ(t.check(ip("10.9.9.9"), t0 + 701s).failures, 1u);
}

TEST(ConnectionLimits, AFullTableLetsNewcomersInUntracked) {
  ConnectionLimitOptions o;
  o.concurrent = 1;
  o.per_minute = 0;
  o.max_tracked = 2;
  ConnectionLimits l(o);
  const Clock::time_point t0{};
  EXPECT_EQ(l.admit(ip("192.0.2.1"), t0), "");
  EXPECT_EQ(l.admit(ip("192.0.2.2"), t0), "");
  EXPECT_EQ(l.admit(ip("192.0.2.3"), t0), "");  // untracked: the table is full
  EXPECT_EQ(l.admit(ip("192.0.2.3"), t0), "");
  EXPECT_NE(l.admit(ip("192.0.2.1"), t0), "");  // tracked ones keep their limit
  l.release(ip("192.0.2.2"));
  EXPECT_EQ(l.admit(ip("192.0.2.4"), t0 + 2s), "");  // swept: room again, and tracked
  EXPECT_NE(l.admit(ip("192.0.2.4"), t0 + 2s), "");
}

TEST(ConnectionLimits, ConcurrentAndPerMinuteTable) {
  ConnectionLimitOptions o;
  o.concurrent = 2;
  o.per_minute = 3;
  ConnectionLimits l(o);
  const Clock::time_point t0{};
  const auto a = ip("192.0.2.1");
  EXPECT_EQ(l.admit(a, t0), "");
  EXPECT_EQ(l.admit(a, t0), "");
  EXPECT_NE(l.admit(a, t0).find("2 connections open from 192.0.2.1 (limit 2)"), std::string::npos);
  EXPECT_EQ(l.admit(ip("192.0.2.2"), t0), "");  // another network
  l.release(a);
  EXPECT_EQ(l.admit(a, t0 + 1s), "");  // the third start within the minute
  l.release(a);
  EXPECT_NE(l.admit(a, t0 + 2s).find("3 connections from 192.0.2.1 in the last minute"),
            std::string::npos);
  EXPECT_EQ(l.admit(a, t0 + 61s), "");  // the first starts left the minute
  // Allowed networks are not counted.
  o.allow = {*parse_network("192.0.2.0/24")};
  ConnectionLimits free(o);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(free.admit(a, t0), "");
}

}  // namespace
}  // namespace truefrom::policy
