#include "submission/policy/suspension.hpp"

#include <ctime>

#include "auth/identity_syntax.hpp"
#include "submission/core/trace.hpp"

namespace truefrom::policy {

namespace {

constexpr SuspensionTriggers::Time kHour = 3600;
constexpr SuspensionTriggers::Time kDay = 86400;

std::string utc(SuspensionTriggers::Time t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

void prune(std::deque<std::pair<SuspensionTriggers::Time, std::string>>& d,
           SuspensionTriggers::Time now) {
  while (!d.empty() && d.front().first + kHour <= now) d.pop_front();
}

void prune(std::map<std::string, SuspensionTriggers::Time>& m, SuspensionTriggers::Time now) {
  for (auto it = m.begin(); it != m.end();) it = it->second + kHour <= now ? m.erase(it) : ++it;
}

}  // namespace

std::string suspension_notice(const SuspensionNotice& n) {
  std::string to;
  for (const auto& a : n.to) to += (to.empty() ? "" : ", ") + a;
  // Header lines stay short: the evidence goes into the body, wrapped by the reader.
  std::string m = "From: truefrom <postmaster@" + n.hostname + ">\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: truefrom: account " + n.login + " suspended (" + n.trigger.rule + ")\r\n";
  m += "Date: " + smtp::rfc5322_date(static_cast<std::time_t>(n.now)) + "\r\n";
  m += "Message-ID: " + n.message_id + "\r\n";
  m += "Auto-Submitted: auto-generated\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n\r\n";
  m += "truefrom on " + n.hostname + " suspended the account " + n.login + " at " + utc(n.now) +
       ".\r\n\r\n";
  m += "Trigger: " + n.trigger.rule + "\r\n";
  m += "Evidence: " + n.trigger.evidence + "\r\n\r\n";
  m += "The account still logs in, but every MAIL FROM is refused (550 5.7.1), and its\r\n"
       "messages still in the queue are held, not delivered:\r\n"
       "  truefrom queue list --account " + n.login + "\r\n\r\n"
       "When the account is safe again (e.g. its password changed):\r\n"
       "  truefrom account resume " + n.login + "\r\n"
       "and then deliver or discard what it left in the queue:\r\n"
       "  truefrom queue release --account " + n.login + "\r\n"
       "  truefrom queue delete --account " + n.login + "\r\n";
  return m;
}

SuspensionTriggers::SuspensionTriggers(SuspensionOptions options) : options_(std::move(options)) {}

SuspensionTriggers::Account* SuspensionTriggers::track(const std::string& login, Time now) {
  const std::string key = auth::ascii_lower(login);
  auto it = accounts_.find(key);
  if (it == accounts_.end()) {
    if (accounts_.size() >= options_.max_tracked && now >= next_sweep_) {
      next_sweep_ = now + 1;
      for (auto s = accounts_.begin(); s != accounts_.end();) {
        Account& a = s->second;
        prune(a.logins, now);
        prune(a.refusals, now);
        a.limit_hours.erase(a.limit_hours.begin(), a.limit_hours.lower_bound((now - kDay) / kHour));
        const bool spent =
            !a.fired && a.logins.empty() && a.refusals.empty() && a.limit_hours.empty();
        s = spent ? accounts_.erase(s) : std::next(s);
      }
    }
    if (accounts_.size() >= options_.max_tracked) return nullptr;
    it = accounts_.emplace(key, Account{}).first;
  }
  it->second.last = now;
  return &it->second;
}

std::optional<SuspensionTrigger> SuspensionTriggers::fire(Account& a, SuspensionTrigger t) {
  if (a.fired) return std::nullopt;
  a.fired = true;
  return t;
}

std::optional<SuspensionTrigger> SuspensionTriggers::hourly_limit_reached(const std::string& login,
                                                                         Time now) {
  if (options_.limit_hours == 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  Account* a = track(login, now);
  if (!a) return std::nullopt;
  a->limit_hours.insert(now / kHour);
  // Clock hours that overlap the last 24 hours.
  a->limit_hours.erase(a->limit_hours.begin(), a->limit_hours.lower_bound((now - kDay) / kHour));
  if (a->limit_hours.size() < options_.limit_hours) return std::nullopt;
  std::string hours;
  for (Time h : a->limit_hours) hours += (hours.empty() ? "" : ", ") + utc(h * kHour).substr(0, 16);
  return fire(*a, {"hourly limit",
                   "the hourly message limit was reached in " +
                       std::to_string(a->limit_hours.size()) + " hours within a day (limit " +
                       std::to_string(options_.limit_hours) + "): " + hours});
}

std::optional<SuspensionTrigger> SuspensionTriggers::login_succeeded(
    const std::string& login, const std::string& wide_network, Time now) {
  if (options_.login_networks == 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  Account* a = track(login, now);
  if (!a) return std::nullopt;
  // Each login costs a look-up: the map holds at most login_networks + 1 networks (one
  // more fires), however often the same ones log in.
  if (auto it = a->logins.find(wide_network); it != a->logins.end()) {
    it->second = now;
    return std::nullopt;
  }
  prune(a->logins, now);
  a->logins.emplace(wide_network, now);
  if (a->logins.size() <= options_.login_networks) return std::nullopt;
  std::string nets;
  for (const auto& [net, when] : a->logins) {
    nets += (nets.empty() ? "" : ", ") + net + " (" + utc(when).substr(11, 8) + ")";
  }
  const auto n = a->logins.size();
  a->logins.clear();  // fired: counting starts afresh
  return fire(*a, {"login networks", "successful logins from " + std::to_string(n) +
                                         " networks within an hour (limit " +
                                         std::to_string(options_.login_networks) + "): " + nets});
}

std::optional<SuspensionTrigger> SuspensionTriggers::binding_refused(const std::string& login,
                                                                    const std::string& what,
                                                                    Time now) {
  if (options_.binding_refusals == 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  Account* a = track(login, now);
  if (!a) return std::nullopt;
  prune(a->refusals, now);
  a->refusals.emplace_back(now, what);
  if (a->refusals.size() <= options_.binding_refusals) return std::nullopt;
  const auto n = a->refusals.size();
  std::string last;
  std::size_t shown = 0;
  for (auto it = a->refusals.rbegin(); it != a->refusals.rend() && shown < 5; ++it, ++shown) {
    last += (last.empty() ? "" : "; ") + it->second;
  }
  a->refusals.clear();  // fired: counting starts afresh (and the deque stays bounded)
  return fire(*a, {"sender binding", std::to_string(n) + " refused senders within an hour (limit " +
                                         std::to_string(options_.binding_refusals) +
                                         "), the last: " + last});
}

void SuspensionTriggers::reset(const std::string& login) {
  std::lock_guard lock(mutex_);
  accounts_.erase(auth::ascii_lower(login));
}

}  // namespace truefrom::policy
