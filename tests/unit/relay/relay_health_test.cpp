// RelayHealth fed with outcomes and times: down at the first failure (one change, one log
// line), one probe at a time, probes backing off 1, 2, 4, 5, 5 s, up at the first answer,
// and up_changes() counting the returns.
#include "submission/relay/relay_health.hpp"

#include <gtest/gtest.h>

namespace truefrom::relay {
namespace {

using namespace std::chrono_literals;
using TimePoint = RelayHealth::TimePoint;

const TimePoint t0 = TimePoint{} + 1000s;

TEST(RelayHealth, DownAtTheFirstFailureUpAtTheFirstAnswer) {
  RelayHealth h(2, {});
  EXPECT_TRUE(h.usable(0));
  EXPECT_FALSE(h.answered(0, t0));  // up already: no change
  const auto down = h.failed(0, t0, "timed out waiting for the greeting");
  ASSERT_TRUE(down);
  EXPECT_FALSE(down->up);
  EXPECT_EQ(down->relay, 0u);
  EXPECT_EQ(down->reason, "timed out waiting for the greeting");
  EXPECT_FALSE(h.usable(0));
  EXPECT_TRUE(h.usable(1));
  EXPECT_TRUE(h.any_usable());
  // The other deliveries that were waiting on it fail too: no second change.
  EXPECT_FALSE(h.failed(0, t0 + 1s, "timed out waiting for the greeting"));
  EXPECT_EQ(h.down_since(0), t0);
  EXPECT_EQ(h.up_changes(), 0u);
  const auto up = h.answered(0, t0 + 7s);
  ASSERT_TRUE(up);
  EXPECT_TRUE(up->up);
  EXPECT_EQ(up->down_for, 7000ms);
  EXPECT_TRUE(h.usable(0));
  EXPECT_EQ(h.up_changes(), 1u);
  EXPECT_FALSE(h.probe_due(0));
}

TEST(RelayHealth, OneProbeAtATimeBackingOff) {
  RelayHealth h(1, {1000ms, 5000ms});
  EXPECT_FALSE(h.probe_due(0));
  EXPECT_FALSE(h.start_probe(0, t0));  // up: nothing to probe
  h.failed(0, t0, "connection refused");
  EXPECT_FALSE(h.any_usable());
  struct Step {
    std::chrono::milliseconds wait;  // the delay before this probe
  };
  const Step steps[] = {{1000ms}, {2000ms}, {4000ms}, {5000ms}, {5000ms}};
  TimePoint now = t0;
  for (const auto& s : steps) {
    ASSERT_TRUE(h.probe_due(0));
    EXPECT_EQ(*h.probe_due(0) - now, s.wait);
    EXPECT_FALSE(h.start_probe(0, now + s.wait - 1ms)) << "before it is due";
    now += s.wait;
    EXPECT_TRUE(h.start_probe(0, now));
    EXPECT_FALSE(h.start_probe(0, now)) << "a second probe at the same time";
    // A delivery that started before the relay went down fails meanwhile: the probe stays
    // the only one, and its backoff is not touched.
    EXPECT_FALSE(h.failed(0, now, "connection refused"));
    EXPECT_FALSE(h.start_probe(0, now + 10s));
    EXPECT_FALSE(h.failed(0, now, "connection refused", true));  // the probe failed
  }
  now += 5000ms;
  EXPECT_TRUE(h.start_probe(0, now));
  EXPECT_TRUE(h.answered(0, now));
  EXPECT_TRUE(h.usable(0));
  // Down again later: the backoff starts over.
  h.failed(0, now + 60s, "timed out");
  EXPECT_EQ(*h.probe_due(0) - (now + 60s), 1000ms);
}

TEST(RelayHealth, UpChangesCountEveryReturn) {
  RelayHealth h(2, {});
  for (int round = 1; round <= 3; ++round) {
    EXPECT_TRUE(h.failed(1, t0, "refused"));
    EXPECT_TRUE(h.answered(1, t0 + 1s));
    EXPECT_EQ(h.up_changes(), static_cast<std::uint64_t>(round));
  }
  EXPECT_TRUE(h.usable(0));  // relay 0 was never touched
}

}  // namespace
}  // namespace truefrom::relay
