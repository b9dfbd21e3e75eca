#include "submission/app/sending_limits.hpp"

#include <ctime>
#include <map>
#include <set>

namespace truefrom::app {

namespace {

using Time = policy::SendingCounter::Time;
using Slots = std::vector<std::pair<Time, policy::SendingCounter::Counts>>;

// The day's totals are read for every account seen within the day this often; old slots
// are deleted and idle accounts forgotten this often.
constexpr Time kAllEvery = 60;
constexpr Time kExpireEvery = 300;

Time now_s() { return static_cast<Time>(std::time(nullptr)); }

std::map<std::string, Slots> by_login(const std::vector<auth::SlotCount>& rows) {
  std::map<std::string, Slots> out;
  for (const auto& r : rows) out[r.login].push_back({r.slot, {r.messages, r.recipients}});
  return out;
}

}  // namespace

std::vector<policy::LimitRule> to_limit_rules(const std::vector<auth::LimitRuleRow>& rows) {
  std::vector<policy::LimitRule> out;
  for (const auto& row : rows) {
    policy::LimitRule r;
    if (row.scope == "default") {
      r.scope = policy::LimitRule::Scope::kDefault;
    } else if (row.scope == "domain") {
      r.scope = policy::LimitRule::Scope::kDomain;
      r.key = row.domain;
    } else if (row.scope == "account") {
      r.scope = policy::LimitRule::Scope::kAccount;
      r.key = row.login;
    } else {
      continue;
    }
    for (std::size_t i = 0; i < policy::kLimitKeys; ++i) {
      const auto& v = row.values[i];
      if (v && *v >= 0 && *v <= 0xffffffffLL) r.values[i] = static_cast<std::uint32_t>(*v);
    }
    out.push_back(std::move(r));
  }
  return out;
}

SendingLimitSync::SendingLimitSync(auth::IdentityStore& store, policy::LimitRuleHolder& rules,
                                   policy::SendingCounter& counter,
                                   std::chrono::milliseconds interval, Log log)
    : store_(store), rules_(rules), counter_(counter), interval_(interval), log_(std::move(log)) {}

SendingLimitSync::~SendingLimitSync() { stop(); }

auth::StoreStatus SendingLimitSync::load_rules() {
  std::vector<auth::LimitRuleRow> rows;
  auto st = store_.list_limit_rules(rows);
  if (st) rules_.replace(to_limit_rules(rows));
  return st;
}

void SendingLimitSync::start() {
  listener_ = auth::start_reloader(
      store_, auth::kSendingLimitChannel, "sending limits", [this] { return load_rules(); }, log_);
  thread_ = std::thread([this] { loop(); });
}

void SendingLimitSync::stop() {
  if (listener_) listener_->stop();
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool SendingLimitSync::load_account(const std::string& login) {
  std::vector<auth::SlotCount> rows;
  const Time now = now_s();
  if (!store_.read_counts({login}, policy::SendingCounter::slot_of(now - policy::SendingCounter::kDay),
                          rows)) {
    return false;
  }
  auto slots = by_login(rows);
  counter_.apply_totals(login, slots[login], now, true);
  return true;
}

void SendingLimitSync::loop() {
  Time last_all = 0;
  Time last_expire = now_s();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, interval_, [this] { return stopping_.load(); });
    }
    const Time now = now_s();
    if (stopping_) {
      // What is left goes to the database once; the totals are of no use any more.
      auto deltas = counter_.take_deltas();
      std::vector<auth::SlotCount> rows;
      for (auto& d : deltas) rows.push_back({d.login, d.slot, d.counts.messages, d.counts.recipients});
      if (const auto st = store_.add_counts(rows); !st && log_) {
        log_(false, std::to_string(rows.size()) +
                        " count(s) not written at stop: " + st.detail);
      }
      return;
    }
    const bool all = now - last_all >= kAllEvery;
    if (all) last_all = now;
    sync_once(all);
    if (now - last_expire >= kExpireEvery) {
      last_expire = now;
      counter_.sweep(now);
      (void)store_.expire_counts(policy::SendingCounter::slot_of(now - policy::SendingCounter::kDay));
    }
  }
}

void SendingLimitSync::sync_once(bool all) {
  const Time now = now_s();
  auto deltas = counter_.take_deltas();
  std::vector<auth::SlotCount> rows;
  rows.reserve(deltas.size());
  for (const auto& d : deltas) rows.push_back({d.login, d.slot, d.counts.messages, d.counts.recipients});
  auto st = store_.add_counts(rows);
  if (!st) {
    counter_.restore_deltas(std::move(deltas));
    if (!down_ && log_) {
      log_(false, "cannot write the counts (" + st.detail +
                      "); counting on this node's own until PostgreSQL is back");
    }
    down_ = true;
    return;
  }
  // The accounts to read: the recent ones, and every one just written.
  std::set<std::string> logins;
  for (auto& l : counter_.accounts_to_refresh(now, all)) logins.insert(std::move(l));
  for (const auto& d : deltas) logins.insert(d.login);
  std::vector<auth::SlotCount> totals;
  st = store_.read_counts({logins.begin(), logins.end()},
                          policy::SendingCounter::slot_of(now - policy::SendingCounter::kDay),
                          totals);
  if (!st) {
    counter_.keep_written(std::move(deltas));
    if (!down_ && log_) {
      log_(false, "cannot read the cluster's counts (" + st.detail +
                      "); counting on what is known here until PostgreSQL is back");
    }
    down_ = true;
    return;
  }
  auto slots = by_login(totals);
  for (const auto& login : logins) counter_.apply_totals(login, slots[login], now);
  if (down_ && log_) log_(true, "counts written and read again");
  down_ = false;
}

}  // namespace truefrom::app
