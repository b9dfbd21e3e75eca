// The retry policy (retry_policy.hpp): the doubling table without jitter, the give-up rule,
// and the jitter's bounds and spread with a seeded random source (the seed is printed; set
// TRUEFROM_TEST_SEED to replay a run).
#include "submission/queue/retry_policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>

namespace truefrom::queue {
namespace {

using std::chrono::seconds;

std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    const char* given = std::getenv("TRUEFROM_TEST_SEED");
    const std::uint64_t s = given ? std::strtoull(given, nullptr, 10) : std::random_device{}();
    std::cout << "retry policy tests: seed " << s << " (TRUEFROM_TEST_SEED=" << s
              << " replays it)\n";
    return s;
  }();
  return seed;
}

TEST(RetryPolicy, DoublesFromFirstUpToMaxAndGivesUpAfterLifetime) {
  const RetryPolicy hour{seconds(60), seconds(3600), seconds(5 * 24 * 3600), 0.0};
  const RetryPolicy tight{seconds(1), seconds(1), seconds(3), 0.0};
  struct Case {
    RetryPolicy policy;
    unsigned attempts;
    seconds age;
    std::optional<seconds> want;
  };
  const Case cases[] = {
      {hour, 1, seconds(0), seconds(60)},
      {hour, 0, seconds(0), seconds(60)},  // no attempt yet counts as the first
      {hour, 2, seconds(60), seconds(120)},
      {hour, 3, seconds(180), seconds(240)},
      {hour, 6, seconds(2000), seconds(1920)},
      {hour, 7, seconds(4000), seconds(3600)},  // 3840 capped
      {hour, 8, seconds(8000), seconds(3600)},
      {hour, 4000000000u, seconds(9000), seconds(3600)},  // no overflow
      {hour, 50, seconds(5 * 24 * 3600 - 1), seconds(3600)},
      {hour, 50, seconds(5 * 24 * 3600), std::nullopt},  // lifetime reached: give up
      {hour, 1, seconds(6 * 24 * 3600), std::nullopt},
      {tight, 1, seconds(0), seconds(1)},
      {tight, 3, seconds(2), seconds(1)},
      {tight, 4, seconds(3), std::nullopt},
      {RetryPolicy{seconds(600), seconds(60), seconds(86400), 0.0}, 1, seconds(0), seconds(60)},
      {RetryPolicy{seconds(0), seconds(0), seconds(86400), 0.0}, 1, seconds(0), seconds(1)},
  };
  std::mt19937_64 random(test_seed());
  for (const auto& c : cases) {
    const auto got = next_retry(c.policy, c.attempts, c.age, random);
    EXPECT_EQ(got.has_value(), c.want.has_value())
        << c.attempts << " attempts, age " << c.age.count();
    if (got && c.want) {
      EXPECT_EQ(got->count(), c.want->count()) << c.attempts << " attempts, age " << c.age.count();
    }
  }
}

TEST(RetryPolicy, JitterStaysWithinTenPercentAndSpreads) {
  const RetryPolicy policy{seconds(60), seconds(3600), seconds(5 * 24 * 3600)};
  EXPECT_DOUBLE_EQ(policy.jitter, 0.10);
  std::mt19937_64 random(test_seed());
  struct Case {
    unsigned attempts;
    long base;
  };
  for (const Case c : {Case{1, 60}, Case{2, 120}, Case{7, 3600}, Case{30, 3600}}) {
    std::set<long> seen;
    double sum = 0;
    constexpr int kDraws = 2000;
    for (int i = 0; i < kDraws; ++i) {
      const auto d = next_retry(policy, c.attempts, seconds(0), random);
      ASSERT_TRUE(d);
      EXPECT_GE(d->count(), c.base - c.base / 10) << "seed " << test_seed();
      EXPECT_LE(d->count(), c.base + c.base / 10) << "seed " << test_seed();
      seen.insert(static_cast<long>(d->count()));
      sum += static_cast<double>(d->count());
    }
    // Messages deferred together come back spread over the window, centred on the base.
    EXPECT_GE(*seen.rbegin() - *seen.begin(), c.base / 10) << "seed " << test_seed();
    EXPECT_NEAR(sum / kDraws, static_cast<double>(c.base), static_cast<double>(c.base) / 50)
        << "seed " << test_seed();
  }
}

TEST(RetryPolicy, TheSameSeedGivesTheSameDelays) {
  const RetryPolicy policy;
  std::mt19937_64 a(test_seed()), b(test_seed());
  for (unsigned i = 1; i < 20; ++i) {
    EXPECT_EQ(next_retry(policy, i, seconds(0), a), next_retry(policy, i, seconds(0), b));
  }
}

TEST(RetryPolicy, AtLeastOneSecond) {
  const RetryPolicy policy{seconds(1), seconds(1), seconds(100)};
  std::mt19937_64 random(test_seed());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(next_retry(policy, 1, seconds(0), random), seconds(1));
}

}  // namespace
}  // namespace truefrom::queue
