// Per-account sending limits (submission/policy/sending_limits.hpp): the rules' resolution,
// the slot windows, reservations given back, and the sync thread's hand-over of increments,
// on a fake clock (the time is an argument; nothing sleeps).
#include <gtest/gtest.h>

#include "submission/policy/sending_limits.hpp"

namespace truefrom::policy {
namespace {

using Time = SendingCounter::Time;
constexpr std::array<std::uint32_t, kLimitKeys> kConfig{100, 1000, 50, 2000};
// A time at the start of a slot: 2026-12-04 12:00:00 UTC.
constexpr Time kNoon = 1796385600;
static_assert(kNoon % SendingCounter::kSlot == 0);

LimitValues values(std::optional<std::uint32_t> mph, std::optional<std::uint32_t> mpd = {},
                   std::optional<std::uint32_t> rpm = {}, std::optional<std::uint32_t> rpd = {}) {
  return {mph, mpd, rpm, rpd};
}

EffectiveLimits limits(std::uint32_t mph, std::uint32_t mpd, std::uint32_t rpm,
                       std::uint32_t rpd) {
  EffectiveLimits e;
  e.value = {mph, mpd, rpm, rpd};
  return e;
}

TEST(LimitRules, MostSpecificValueWinsKeyByKey) {
  LimitRules rules(kConfig, {
                                {LimitRule::Scope::kDefault, "", values(200, {}, 20)},
                                {LimitRule::Scope::kDomain, "example.com", values(300, 3000)},
                                {LimitRule::Scope::kDomain, "sub.example.com", values(400)},
                                {LimitRule::Scope::kAccount, "Alice@Sub.Example.com", values(7)},
                            });
  const auto a = rules.for_account("alice@sub.example.com");
  EXPECT_EQ(a[LimitKey::kMessagesPerHour], 7u);
  EXPECT_EQ(a.source[0], "account alice@sub.example.com");
  EXPECT_EQ(a[LimitKey::kMessagesPerDay], 3000u);
  EXPECT_EQ(a.source[1], "domain example.com");
  EXPECT_EQ(a[LimitKey::kRecipientsPerMessage], 20u);
  EXPECT_EQ(a.source[2], "database default");
  EXPECT_EQ(a[LimitKey::kRecipientsPerDay], 2000u);
  EXPECT_EQ(a.source[3], "config");

  const auto b = rules.for_account("bob@sub.example.com");
  EXPECT_EQ(b[LimitKey::kMessagesPerHour], 400u);
  EXPECT_EQ(b.source[0], "domain sub.example.com");
  const auto c = rules.for_account("carol@other.example");
  EXPECT_EQ(c[LimitKey::kMessagesPerHour], 200u);
  EXPECT_EQ(c.source[0], "database default");
  // A login without a domain has no domain level; "example.com" is not a parent of
  // "notexample.com".
  EXPECT_EQ(rules.for_account("dave")[LimitKey::kMessagesPerDay], 1000u);
  EXPECT_EQ(rules.for_account("erin@notexample.com")[LimitKey::kMessagesPerDay], 1000u);
}

TEST(LimitRules, ZeroMeansNoLimitAndOverridesALowerLevel) {
  LimitRules rules(kConfig, {{LimitRule::Scope::kAccount, "bulk@example.com", values(0)}});
  EXPECT_EQ(rules.for_account("bulk@example.com")[LimitKey::kMessagesPerHour], 0u);
  SendingCounter counter;
  const auto lim = rules.for_account("bulk@example.com");
  Time slot = 0;
  for (int i = 0; i < 500; ++i) {
    ASSERT_FALSE(counter.begin_message("bulk@example.com", lim, kNoon, &slot)) << i;
  }
}

TEST(LimitRuleHolder, ReplaceSwapsTheRulesWhole) {
  LimitRuleHolder holder(kConfig);
  const auto before = holder.current();
  holder.replace({{LimitRule::Scope::kDefault, "", values(5)}});
  EXPECT_EQ(before->for_account("a@x")[LimitKey::kMessagesPerHour], 100u);
  EXPECT_EQ(holder.current()->for_account("a@x")[LimitKey::kMessagesPerHour], 5u);
}

TEST(SendingCounter, HourlyLimitRefusesAndNamesWhenItIsPossibleAgain) {
  SendingCounter counter;
  const auto lim = limits(3, 0, 0, 0);
  Time slot = 0;
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon + 10, &slot));
  EXPECT_EQ(slot, kNoon);
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon + 400, &slot));  // next slot
  EXPECT_EQ(slot, kNoon + 300);
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon + 401, &slot));
  const auto hit = counter.begin_message("a", lim, kNoon + 500, &slot);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->key, LimitKey::kMessagesPerHour);
  EXPECT_EQ(hit->count, 3u);
  // The first slot (one message) leaves the hour at 13:05: then 2 < 3.
  EXPECT_EQ(hit->retry_at, kNoon + 300 + 3600);
  const auto reply = limit_reply(*hit, "a", kNoon + 500);
  EXPECT_EQ(reply.code, 451);
  EXPECT_EQ(reply.status, (smtp::EnhancedStatus{4, 7, 1}));
  EXPECT_EQ(reply.text,
            "Sending limit reached for a: 3 messages per hour; sending is possible again after "
            "13:05 UTC (in 57 minutes)");
  // Still refused one second before, accepted at 13:05.
  EXPECT_TRUE(counter.begin_message("a", lim, kNoon + 3899, &slot));
  EXPECT_FALSE(counter.begin_message("a", lim, kNoon + 3900, &slot));
  // Other accounts are not affected.
  EXPECT_FALSE(counter.begin_message("b", lim, kNoon + 500, &slot));
}

TEST(SendingCounter, DailyLimitCountsTheWholeDay) {
  SendingCounter counter;
  const auto lim = limits(0, 2, 0, 0);
  Time slot = 0;
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon + 5 * 3600, &slot));
  const auto hit = counter.begin_message("a", lim, kNoon + 23 * 3600, &slot);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->key, LimitKey::kMessagesPerDay);
  EXPECT_EQ(hit->retry_at, kNoon + 300 + 86400);
  EXPECT_FALSE(counter.begin_message("a", lim, kNoon + 300 + 86400, &slot));
}

TEST(SendingCounter, RecipientLimitsPerMessageAndPerDay) {
  SendingCounter counter;
  const auto lim = limits(0, 0, 2, 3);
  Time slot = 0;
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  EXPECT_FALSE(counter.add_recipient("a", lim, 0, slot, kNoon));
  EXPECT_FALSE(counter.add_recipient("a", lim, 1, slot, kNoon));
  const auto per_message = counter.add_recipient("a", lim, 2, slot, kNoon);
  ASSERT_TRUE(per_message);
  EXPECT_EQ(per_message->key, LimitKey::kRecipientsPerMessage);
  EXPECT_EQ(limit_reply(*per_message, "a", kNoon).text,
            "Too many recipients for one message: the limit for a is 2 recipients per message; "
            "send to the others in another message");
  // The next message gets one more recipient, then the day is full.
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon + 1, &slot));
  EXPECT_FALSE(counter.add_recipient("a", lim, 0, slot, kNoon + 1));
  const auto per_day = counter.add_recipient("a", lim, 1, slot, kNoon + 1);
  ASSERT_TRUE(per_day);
  EXPECT_EQ(per_day->key, LimitKey::kRecipientsPerDay);
  EXPECT_EQ(per_day->count, 3u);
  // A new transaction is refused at MAIL FROM already: no recipient could be accepted.
  const auto at_mail = counter.begin_message("a", lim, kNoon + 2, &slot);
  ASSERT_TRUE(at_mail);
  EXPECT_EQ(at_mail->key, LimitKey::kRecipientsPerDay);
}

TEST(SendingCounter, GiveBackReturnsAReservation) {
  SendingCounter counter;
  const auto lim = limits(1, 0, 0, 5);
  Time slot = 0;
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  ASSERT_FALSE(counter.add_recipient("a", lim, 0, slot, kNoon));
  EXPECT_TRUE(counter.begin_message("a", lim, kNoon + 1, &slot));
  counter.give_back("a", kNoon, {1, 1});
  EXPECT_EQ(counter.in_window("a", SendingCounter::kDay, kNoon + 2).recipients, 0);
  EXPECT_FALSE(counter.begin_message("a", lim, kNoon + 2, &slot));
}

TEST(SendingCounter, IncrementsCountWhileTheyAreWrittenAndAfterTheyAreReadBack) {
  SendingCounter counter;
  const auto lim = limits(3, 0, 0, 0);
  Time slot = 0;
  EXPECT_FALSE(counter.known("a"));
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  auto deltas = counter.take_deltas();
  ASSERT_EQ(deltas.size(), 1u);
  EXPECT_EQ(deltas[0].login, "a");
  EXPECT_EQ(deltas[0].slot, kNoon);
  EXPECT_EQ(deltas[0].counts.messages, 2);
  // Being written: still counted (2), and new counts go to the next batch.
  EXPECT_EQ(counter.in_window("a", SendingCounter::kHour, kNoon).messages, 2);
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  EXPECT_TRUE(counter.begin_message("a", lim, kNoon, &slot));
  // The database says 2 (ours) + 5 (another node's): 7 + the one not yet written.
  counter.apply_totals("a", {{kNoon, {2, 0}}, {kNoon - 300, {5, 0}}}, kNoon);
  EXPECT_TRUE(counter.known("a"));
  EXPECT_EQ(counter.in_window("a", SendingCounter::kHour, kNoon).messages, 8);
  const auto next = counter.take_deltas();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].counts.messages, 1);
}

TEST(SendingCounter, AFailedWriteKeepsTheIncrementsForTheNextBatch) {
  SendingCounter counter;
  const auto lim = limits(0, 0, 0, 0);
  Time slot = 0;
  ASSERT_FALSE(counter.begin_message("a", lim, kNoon, &slot));
  counter.restore_deltas(counter.take_deltas());
  EXPECT_EQ(counter.in_window("a", SendingCounter::kHour, kNoon).messages, 1);
  auto again = counter.take_deltas();
  ASSERT_EQ(again.size(), 1u);
  // Written but not read back: counted as read.
  counter.keep_written(std::move(again));
  EXPECT_EQ(counter.in_window("a", SendingCounter::kHour, kNoon).messages, 1);
  EXPECT_TRUE(counter.take_deltas().empty());
}

TEST(SendingCounter, AFirstSightLoadDoesNotOverwriteTheSyncThreadsTotals) {
  SendingCounter counter;
  counter.apply_totals("a", {{kNoon, {4, 0}}}, kNoon);
  counter.apply_totals("a", {{kNoon, {1, 0}}}, kNoon, true);
  EXPECT_EQ(counter.in_window("a", SendingCounter::kHour, kNoon).messages, 4);
}

TEST(SendingCounter, RefreshListsRecentAccountsAndSweepForgetsIdleOnes) {
  SendingCounter counter;
  const auto lim = limits(0, 0, 0, 0);
  Time slot = 0;
  ASSERT_FALSE(counter.begin_message("old", lim, kNoon, &slot));
  ASSERT_FALSE(counter.begin_message("new", lim, kNoon + 2 * 3600, &slot));
  counter.apply_totals("old", {}, kNoon);
  counter.apply_totals("new", {}, kNoon + 2 * 3600);
  EXPECT_EQ(counter.accounts_to_refresh(kNoon + 2 * 3600, false),
            (std::vector<std::string>{"new"}));
  EXPECT_EQ(counter.accounts_to_refresh(kNoon + 2 * 3600, true),
            (std::vector<std::string>{"new", "old"}));
  (void)counter.take_deltas();
  counter.apply_totals("old", {}, kNoon + 86400);
  counter.apply_totals("new", {}, kNoon + 86400);
  counter.sweep(kNoon + 86400 + 300);
  EXPECT_EQ(counter.tracked(), 1u);
  EXPECT_FALSE(counter.known("old"));
}

TEST(LimitKeys, ParseAndName) {
  for (std::size_t i = 0; i < kLimitKeys; ++i) {
    const auto k = parse_limit_key(kLimitNames[i]);
    ASSERT_TRUE(k);
    EXPECT_EQ(limit_name(*k), kLimitNames[i]);
  }
  EXPECT_FALSE(parse_limit_key("messages_per_week"));
}

}  // namespace
}  // namespace truefrom::policy
