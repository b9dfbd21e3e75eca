#include "submission/policy/sending_limits.hpp"

#include <algorithm>
#include <ctime>

#include "auth/identity_syntax.hpp"

namespace truefrom::policy {

namespace {

constexpr std::size_t idx(LimitKey k) { return static_cast<std::size_t>(k); }

std::string utc_hhmm(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M UTC", &tm);
  return buf;
}

std::string wait_words(std::int64_t seconds) {
  const std::int64_t minutes = std::max<std::int64_t>(1, (seconds + 59) / 60);
  if (minutes < 120) return std::to_string(minutes) + " minute" + (minutes == 1 ? "" : "s");
  return std::to_string((minutes + 59) / 60) + " hours";
}

// What a limit counts and over which window.
struct Measure {
  bool recipients;
  SendingCounter::Time window;
  const char* per;
};
Measure measure(LimitKey k) {
  switch (k) {
    case LimitKey::kMessagesPerHour:
      return {false, SendingCounter::kHour, "messages per hour"};
    case LimitKey::kMessagesPerDay:
      return {false, SendingCounter::kDay, "messages per day"};
    case LimitKey::kRecipientsPerMessage:
      return {true, 0, "recipients per message"};
    case LimitKey::kRecipientsPerDay:
      break;
  }
  return {true, SendingCounter::kDay, "recipients per day"};
}

}  // namespace

std::optional<LimitKey> parse_limit_key(std::string_view name) {
  for (std::size_t i = 0; i < kLimitKeys; ++i) {
    if (kLimitNames[i] == name) return static_cast<LimitKey>(i);
  }
  return std::nullopt;
}

std::string_view limit_name(LimitKey key) { return kLimitNames[idx(key)]; }

LimitRules::LimitRules(std::array<std::uint32_t, kLimitKeys> config, std::vector<LimitRule> rules)
    : config_(config) {
  for (auto& r : rules) {
    switch (r.scope) {
      case LimitRule::Scope::kDefault:
        default_ = r.values;
        has_default_ = true;
        break;
      case LimitRule::Scope::kDomain:
        domains_[auth::ascii_lower(r.key)] = r.values;
        break;
      case LimitRule::Scope::kAccount:
        accounts_[auth::ascii_lower(r.key)] = r.values;
        break;
    }
  }
}

EffectiveLimits LimitRules::for_account(const std::string& login) const {
  EffectiveLimits out;
  out.value = config_;
  out.source.fill("config");
  std::array<bool, kLimitKeys> decided{};
  auto apply = [&](const LimitValues& v, const std::string& source) {
    for (std::size_t i = 0; i < kLimitKeys; ++i) {
      if (decided[i] || !v[i]) continue;
      out.value[i] = *v[i];
      out.source[i] = source;
      decided[i] = true;
    }
  };
  const std::string key = auth::ascii_lower(login);
  if (auto it = accounts_.find(key); it != accounts_.end()) apply(it->second, "account " + login);
  if (const auto at = key.rfind('@'); at != std::string::npos && !domains_.empty()) {
    // The login's domain, then its parents: the longest (most specific) first.
    std::string_view d = std::string_view(key).substr(at + 1);
    while (!d.empty()) {
      if (auto it = domains_.find(std::string(d)); it != domains_.end()) {
        apply(it->second, "domain " + it->first);
      }
      const auto dot = d.find('.');
      if (dot == std::string_view::npos) break;
      d.remove_prefix(dot + 1);
    }
  }
  if (has_default_) apply(default_, "database default");
  return out;
}

LimitRuleHolder::LimitRuleHolder(std::array<std::uint32_t, kLimitKeys> config)
    : config_(config), current_(std::make_shared<LimitRules>(config, std::vector<LimitRule>{})) {}

std::shared_ptr<const LimitRules> LimitRuleHolder::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void LimitRuleHolder::replace(std::vector<LimitRule> rules) {
  auto next = std::make_shared<const LimitRules>(config_, std::move(rules));
  std::lock_guard lock(mutex_);
  current_ = std::move(next);
}

smtp::Reply limit_reply(const LimitHit& hit, const std::string& login, std::int64_t now) {
  const Measure m = measure(hit.key);
  if (hit.key == LimitKey::kRecipientsPerMessage) {
    return {451,
            {4, 7, 1},
            "Too many recipients for one message: the limit for " + login + " is " +
                std::to_string(hit.limit) + " " + m.per + "; send to the others in another message"};
  }
  return {451,
          {4, 7, 1},
          "Sending limit reached for " + login + ": " + std::to_string(hit.limit) + " " + m.per +
              "; sending is possible again after " + utc_hhmm(hit.retry_at) + " (in " +
              wait_words(hit.retry_at - now) + ")"};
}

std::string describe_hit(const LimitHit& hit, const std::string& login, std::int64_t now) {
  std::string out = "limit " + std::string(limit_name(hit.key)) + " = " +
                    std::to_string(hit.limit) + " reached by " + login + " (" +
                    std::to_string(hit.count) + " counted";
  if (hit.retry_at) out += ", possible again in " + std::to_string(hit.retry_at - now) + " s";
  return out + ")";
}

void SendingCounter::add(std::map<Time, Counts>& m, Time slot, Counts c) {
  Counts& x = m[slot];
  x.messages += c.messages;
  x.recipients += c.recipients;
  if (x.messages == 0 && x.recipients == 0) m.erase(slot);
}

bool SendingCounter::known(const std::string& login) const {
  std::lock_guard lock(mutex_);
  const auto it = accounts_.find(login);
  return it != accounts_.end() && it->second.known;
}

SendingCounter::Counts SendingCounter::window_locked(const Account& a, Time window,
                                                     Time now) const {
  // A slot counts while any part of it is within the window.
  const Time first = slot_of(now - window);
  Counts sum;
  for (const auto* m : {&a.totals, &a.pending, &a.written}) {
    for (auto it = m->lower_bound(first); it != m->end(); ++it) {
      sum.messages += it->second.messages;
      sum.recipients += it->second.recipients;
    }
  }
  sum.messages = std::max<std::int64_t>(0, sum.messages);
  sum.recipients = std::max<std::int64_t>(0, sum.recipients);
  return sum;
}

// When the count falls below `limit` if nothing more is sent: the slots leave the window
// oldest first.
SendingCounter::Time SendingCounter::retry_at_locked(const Account& a, Time window,
                                                     std::uint32_t limit, bool recipients,
                                                     Time now) const {
  const Time first = slot_of(now - window);
  std::map<Time, std::int64_t> by_slot;
  for (const auto* m : {&a.totals, &a.pending, &a.written}) {
    for (auto it = m->lower_bound(first); it != m->end(); ++it) {
      by_slot[it->first] += recipients ? it->second.recipients : it->second.messages;
    }
  }
  std::int64_t left = 0;
  for (const auto& [slot, n] : by_slot) left += n;
  for (const auto& [slot, n] : by_slot) {
    left -= n;
    if (left < static_cast<std::int64_t>(limit)) return std::max(now + 1, slot + kSlot + window);
  }
  return now + 1;
}

std::optional<LimitHit> SendingCounter::begin_message(const std::string& login,
                                                      const EffectiveLimits& limits, Time now,
                                                      Time* slot) {
  std::lock_guard lock(mutex_);
  Account& a = accounts_[login];
  a.last_seen = now;
  for (LimitKey k : {LimitKey::kMessagesPerHour, LimitKey::kMessagesPerDay}) {
    const std::uint32_t limit = limits[k];
    if (limit == 0) continue;
    const Time window = measure(k).window;
    const Counts c = window_locked(a, window, now);
    if (c.messages >= static_cast<std::int64_t>(limit)) {
      return LimitHit{k, limit, static_cast<std::uint64_t>(c.messages),
                      retry_at_locked(a, window, limit, false, now)};
    }
  }
  // A day's recipients already at the limit: no message of this transaction could go.
  if (const std::uint32_t limit = limits[LimitKey::kRecipientsPerDay]) {
    const Counts c = window_locked(a, kDay, now);
    if (c.recipients >= static_cast<std::int64_t>(limit)) {
      return LimitHit{LimitKey::kRecipientsPerDay, limit, static_cast<std::uint64_t>(c.recipients),
                      retry_at_locked(a, kDay, limit, true, now)};
    }
  }
  *slot = slot_of(now);
  add(a.pending, *slot, {1, 0});
  return std::nullopt;
}

std::optional<LimitHit> SendingCounter::add_recipient(const std::string& login,
                                                      const EffectiveLimits& limits,
                                                      std::size_t in_message, Time slot,
                                                      Time now) {
  if (const std::uint32_t limit = limits[LimitKey::kRecipientsPerMessage];
      limit && in_message >= limit) {
    return LimitHit{LimitKey::kRecipientsPerMessage, limit, in_message, 0};
  }
  std::lock_guard lock(mutex_);
  Account& a = accounts_[login];
  if (const std::uint32_t limit = limits[LimitKey::kRecipientsPerDay]) {
    const Counts c = window_locked(a, kDay, now);
    if (c.recipients >= static_cast<std::int64_t>(limit)) {
      return LimitHit{LimitKey::kRecipientsPerDay, limit, static_cast<std::uint64_t>(c.recipients),
                      retry_at_locked(a, kDay, limit, true, now)};
    }
  }
  add(a.pending, slot, {0, 1});
  return std::nullopt;
}

void SendingCounter::give_back(const std::string& login, Time slot, Counts counts) {
  if (counts.messages == 0 && counts.recipients == 0) return;
  std::lock_guard lock(mutex_);
  add(accounts_[login].pending, slot, {-counts.messages, -counts.recipients});
}

SendingCounter::Counts SendingCounter::in_window(const std::string& login, Time window,
                                                 Time now) const {
  std::lock_guard lock(mutex_);
  const auto it = accounts_.find(login);
  return it == accounts_.end() ? Counts{} : window_locked(it->second, window, now);
}

std::vector<SendingCounter::Delta> SendingCounter::take_deltas() {
  std::vector<Delta> out;
  std::lock_guard lock(mutex_);
  for (auto& [login, a] : accounts_) {
    for (const auto& [slot, c] : a.pending) {
      out.push_back({login, slot, c});
      add(a.written, slot, c);
    }
    a.pending.clear();
  }
  return out;
}

void SendingCounter::restore_deltas(std::vector<Delta> deltas) {
  std::lock_guard lock(mutex_);
  for (auto& d : deltas) {
    Account& a = accounts_[d.login];
    add(a.written, d.slot, {-d.counts.messages, -d.counts.recipients});
    add(a.pending, d.slot, d.counts);
  }
}

void SendingCounter::keep_written(std::vector<Delta> deltas) {
  std::lock_guard lock(mutex_);
  for (auto& d : deltas) {
    Account& a = accounts_[d.login];
    add(a.written, d.slot, {-d.counts.messages, -d.counts.recipients});
    add(a.totals, d.slot, d.counts);
  }
}

std::vector<std::string> SendingCounter::accounts_to_refresh(Time now, bool all) const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  for (const auto& [login, a] : accounts_) {
    if (all || !a.known || a.last_seen + kHour > now) out.push_back(login);
  }
  return out;
}

void SendingCounter::apply_totals(const std::string& login,
                                  const std::vector<std::pair<Time, Counts>>& slots, Time now,
                                  bool first_sight) {
  std::lock_guard lock(mutex_);
  Account& a = accounts_[login];
  if (first_sight && a.known) return;
  if (!a.last_seen) a.last_seen = now;
  a.totals.clear();
  const Time first = slot_of(now - kDay);
  for (const auto& [slot, c] : slots) {
    if (slot >= first) add(a.totals, slot, c);
  }
  a.written.clear();
  a.known = true;
}

void SendingCounter::sweep(Time now) {
  std::lock_guard lock(mutex_);
  const Time first = slot_of(now - kDay);
  for (auto it = accounts_.begin(); it != accounts_.end();) {
    Account& a = it->second;
    a.totals.erase(a.totals.begin(), a.totals.lower_bound(first));
    const bool idle = a.last_seen + kDay + kSlot <= now && a.pending.empty() && a.written.empty();
    it = idle ? accounts_.erase(it) : std::next(it);
  }
}

std::size_t SendingCounter::tracked() const {
  std::lock_guard lock(mutex_);
  return accounts_.size();
}

}  // namespace truefrom::policy
