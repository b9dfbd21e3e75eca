// Per-account sending limits (the abuse controls' second line): messages per hour and per
// day, recipients per message and per day. The values come from [limits] in the config,
// overridden by rows in PostgreSQL (schema 0005: a database default, per domain, per
// account; the most specific value wins, key by key).
//
// Counting: time is cut into 5-minute slots (kSlot, Unix time); a window (an hour, a day)
// counts every slot that overlaps it, so a count leaves its window up to 5 minutes late,
// never early. A node counts locally and its sync thread (app/sending_limits) writes the
// increments to PostgreSQL in batches and reads the cluster's totals back, so the counts
// hold across restarts and across nodes sharing one database. A transaction reserves its
// message at MAIL FROM and each recipient at RCPT TO; a transaction that ends without 250
// gives them back.
//
// Sans-IO: callers pass the time. Thread-safety: LimitRuleHolder and SendingCounter may be
// used from any thread (one mutex each, held for a map look-up and a few slots).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "submission/core/reply.hpp"

namespace truefrom::policy {

enum class LimitKey : std::size_t {
  kMessagesPerHour,
  kMessagesPerDay,
  kRecipientsPerMessage,
  kRecipientsPerDay,
};
inline constexpr std::size_t kLimitKeys = 4;

/// The keys as the config, the CLI and the database columns spell them.
inline constexpr std::array<std::string_view, kLimitKeys> kLimitNames{
    "messages_per_hour", "messages_per_day", "recipients_per_message", "recipients_per_day"};
std::optional<LimitKey> parse_limit_key(std::string_view name);
std::string_view limit_name(LimitKey key);

/// Values set at one level; nullopt: not set here (the next level decides). 0: no limit.
using LimitValues = std::array<std::optional<std::uint32_t>, kLimitKeys>;

struct LimitRule {
  enum class Scope { kDefault, kDomain, kAccount };
  Scope scope = Scope::kDefault;
  std::string key;  ///< the domain (lower-case A-labels) or the account's login; "" for default
  LimitValues values;
};

/// What applies to one account: each value (0 = no limit) and where it comes from
/// ("config", "database default", "domain example.com", "account alice@example.com").
struct EffectiveLimits {
  std::array<std::uint32_t, kLimitKeys> value{};
  std::array<std::string, kLimitKeys> source;
  std::uint32_t operator[](LimitKey k) const { return value[static_cast<std::size_t>(k)]; }
};

/// The config's values (every key set) and the database's rules, resolved per account:
/// the account's own row, then its login's domain and that domain's parents (the longest
/// first), then the database default, then the config.
class LimitRules {
 public:
  LimitRules(std::array<std::uint32_t, kLimitKeys> config, std::vector<LimitRule> rules);
  EffectiveLimits for_account(const std::string& login) const;
  std::size_t size() const { return accounts_.size() + domains_.size() + (has_default_ ? 1 : 0); }

 private:
  std::array<std::uint32_t, kLimitKeys> config_;
  LimitValues default_{};
  bool has_default_ = false;
  std::map<std::string, LimitValues> domains_;
  std::map<std::string, LimitValues> accounts_;  ///< by lower-case login
};

/// The rules in force, replaced whole when the database's rows change.
class LimitRuleHolder {
 public:
  explicit LimitRuleHolder(std::array<std::uint32_t, kLimitKeys> config);
  std::shared_ptr<const LimitRules> current() const;
  void replace(std::vector<LimitRule> rules);

 private:
  const std::array<std::uint32_t, kLimitKeys> config_;
  mutable std::mutex mutex_;
  std::shared_ptr<const LimitRules> current_;
};

/// A refusal: the limit, the count that reached it, and when sending is possible again
/// (Unix time; 0 for recipients per message: at once, in another message).
struct LimitHit {
  LimitKey key{};
  std::uint32_t limit = 0;
  std::uint64_t count = 0;
  std::int64_t retry_at = 0;
};

/// The client's reply for a hit (451 4.7.1: never a permanent failure) and the log's words.
smtp::Reply limit_reply(const LimitHit& hit, const std::string& login, std::int64_t now);
std::string describe_hit(const LimitHit& hit, const std::string& login, std::int64_t now);

class SendingCounter {
 public:
  using Time = std::int64_t;  ///< Unix seconds
  static constexpr Time kSlot = 300;
  static constexpr Time kHour = 3600;
  static constexpr Time kDay = 86400;
  static Time slot_of(Time t) { return t - (t % kSlot + kSlot) % kSlot; }

  struct Counts {
    std::int64_t messages = 0;
    std::int64_t recipients = 0;
  };

  /// False when the account's cluster totals were never read on this node (a first
  /// sight): the caller loads them (apply_totals) before it counts, or counts on what it
  /// has when the database cannot tell.
  bool known(const std::string& login) const;

  /// MAIL FROM: refuses when the hourly or daily message limit is reached, else reserves
  /// one message in the slot of `now` (returned in `*slot`).
  std::optional<LimitHit> begin_message(const std::string& login, const EffectiveLimits& limits,
                                        Time now, Time* slot);
  /// RCPT TO: `in_message` recipients are accepted in this transaction already. Refuses
  /// past the per-message or the daily recipient limit, else reserves one in `slot`.
  std::optional<LimitHit> add_recipient(const std::string& login, const EffectiveLimits& limits,
                                        std::size_t in_message, Time slot, Time now);
  /// A transaction that did not end in 250 gives back what it reserved.
  void give_back(const std::string& login, Time slot, Counts counts);

  /// The counts of the last hour and the last day as this node knows them.
  Counts in_window(const std::string& login, Time window, Time now) const;

  // The sync thread's side.
  struct Delta {
    std::string login;
    Time slot = 0;
    Counts counts;
  };
  /// The increments not yet written, moved aside (they still count) until the totals read
  /// after the write come back (apply_totals) or the write fails (restore_deltas).
  std::vector<Delta> take_deltas();
  void restore_deltas(std::vector<Delta> deltas);
  /// The write succeeded but the totals could not be read: what was written counts as if
  /// it had been read back.
  void keep_written(std::vector<Delta> deltas);
  /// Accounts whose totals to read: every account seen here within the last hour or not
  /// yet known, and when `all` the others too (seen within the last day).
  std::vector<std::string> accounts_to_refresh(Time now, bool all) const;
  /// The cluster's totals of `login` per slot (after this node's written increments).
  /// Replaces what the account had been read as, and drops the moved-aside increments.
  /// `first_sight` (a load at MAIL FROM, not the sync thread): only if still unknown.
  void apply_totals(const std::string& login, const std::vector<std::pair<Time, Counts>>& slots,
                    Time now, bool first_sight = false);
  /// Forgets accounts not seen for a day with nothing left to write.
  void sweep(Time now);
  std::size_t tracked() const;

 private:
  struct Account {
    std::map<Time, Counts> totals;    ///< as last read from the database
    std::map<Time, Counts> pending;   ///< counted here, not yet written
    std::map<Time, Counts> written;   ///< being written (take_deltas .. apply_totals)
    bool known = false;
    Time last_seen = 0;  ///< the last MAIL FROM (or first load) of the account here
  };
  Counts window_locked(const Account& a, Time window, Time now) const;
  Time retry_at_locked(const Account& a, Time window, std::uint32_t limit, bool recipients,
                       Time now) const;
  static void add(std::map<Time, Counts>& m, Time slot, Counts c);

  mutable std::mutex mutex_;
  std::map<std::string, Account> accounts_;
};

}  // namespace truefrom::policy
