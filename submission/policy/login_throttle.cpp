#include "submission/policy/login_throttle.hpp"

#include <algorithm>

#include "auth/identity_syntax.hpp"

namespace truefrom::policy {

namespace {

// Networks one account remembers as its owner's, at most (the oldest is forgotten first).
constexpr std::size_t kGoodNetworksPerAccount = 64;

}  // namespace

std::string throttle_account_key(const std::string& login) { return auth::ascii_lower(login); }

LoginThrottle::LoginThrottle(ThrottleOptions options) : options_(std::move(options)) {}

bool LoginThrottle::allowed(const IpAddress& client) const {
  return std::any_of(options_.allow.begin(), options_.allow.end(),
                     [&](const Network& n) { return n.contains(client); });
}

void LoginThrottle::prune(std::deque<Clock::time_point>& d, Clock::time_point now) const {
  while (!d.empty() && d.front() + options_.window <= now) d.pop_front();
}

void LoginThrottle::prune(Account& a, Clock::time_point now) const {
  while (!a.failures.empty() && a.failures.front().first + options_.window <= now) {
    a.failures.pop_front();
  }
}

// Room for one more entry under `max_tracked`. A full table is swept of what no longer
// counts at most once a second (a sweep walks it all); if it is still full, the newcomer is
// not tracked. Nothing is evicted that still counts: an account's remembered networks stay,
// so nobody can push them out by spraying made-up logins.
bool LoginThrottle::room_for_source(const std::string& key, Clock::time_point now) {
  if (sources_.size() < options_.max_tracked || sources_.count(key)) return true;
  if (now >= next_source_sweep_) {
    next_source_sweep_ = now + std::chrono::seconds(1);
    for (auto it = sources_.begin(); it != sources_.end();) {
      Source& src = it->second;
      prune(src.failures, now);
      const bool spent = src.failures.empty() && src.blocked_until <= now;
      it = spent ? sources_.erase(it) : std::next(it);
    }
  }
  return sources_.size() < options_.max_tracked;
}

bool LoginThrottle::room_for_account(const std::string& key, Clock::time_point now) {
  if (accounts_.size() < options_.max_tracked || accounts_.count(key)) return true;
  if (now >= next_account_sweep_) {
    next_account_sweep_ = now + std::chrono::seconds(1);
    for (auto it = accounts_.begin(); it != accounts_.end();) {
      Account& a = it->second;
      prune(a, now);
      const bool remembered = std::any_of(a.good.begin(), a.good.end(), [&](const auto& g) {
        return g.second + options_.remember_good > now;
      });
      it = a.failures.empty() && !remembered ? accounts_.erase(it) : std::next(it);
    }
  }
  return accounts_.size() < options_.max_tracked;
}

LoginThrottle::Gate LoginThrottle::check(const IpAddress& client, Clock::time_point now) {
  Gate g;
  if (allowed(client)) return g;
  std::lock_guard lock(mutex_);
  const auto it = sources_.find(client_network(client));
  if (it == sources_.end()) return g;
  Source& s = it->second;
  prune(s.failures, now);
  g.failures = static_cast<unsigned>(s.failures.size());
  if (s.blocked_until > now) {
    g.blocked = true;
    g.retry_after = s.blocked_until - now;
    return g;
  }
  if (g.failures >= options_.delay_after) {
    // Doubling from first_delay: the (delay_after+1)th failure waits first_delay, and so on.
    auto d = std::chrono::duration_cast<Clock::duration>(options_.first_delay);
    for (unsigned i = options_.delay_after; i < g.failures && d < options_.max_delay; ++i) d *= 2;
    g.delay = std::min<Clock::duration>(d, options_.max_delay);
  }
  return g;
}

LoginThrottle::Recorded LoginThrottle::record_failure(const IpAddress& client,
                                                      const std::string& login,
                                                      Clock::time_point now) {
  Recorded r;
  if (allowed(client)) return r;
  const std::string net = client_network(client);
  std::lock_guard lock(mutex_);
  const std::string account = login.empty() ? std::string{} : throttle_account_key(login);
  if (!account.empty() && room_for_account(account, now)) {
    Account& a = accounts_[account];
    a.last = now;
    prune(a, now);
    a.failures.emplace_back(now, net);
    while (a.failures.size() > options_.account_block_after + 1) a.failures.pop_front();
  }
  if (!room_for_source(net, now)) return r;
  Source& s = sources_[net];
  s.last = now;
  prune(s.failures, now);
  s.failures.push_back(now);
  while (s.failures.size() > std::max(options_.block_after, options_.delay_after) + 1) {
    s.failures.pop_front();
  }
  r.failures = static_cast<unsigned>(s.failures.size());
  if (r.failures >= options_.block_after && s.blocked_until <= now) {
    s.blocked_until = now + options_.block_time;
    r.blocked_now = true;
  }
  return r;
}

bool LoginThrottle::account_blocked(const IpAddress& client, const std::string& login,
                                    Clock::time_point now) {
  if (allowed(client)) return false;
  const std::string net = client_network(client);
  std::lock_guard lock(mutex_);
  const auto it = accounts_.find(throttle_account_key(login));
  if (it == accounts_.end()) return false;
  Account& a = it->second;
  prune(a, now);
  if (a.failures.size() < options_.account_block_after) return false;
  const auto good = a.good.find(net);
  return good == a.good.end() || good->second + options_.remember_good <= now;
}

void LoginThrottle::record_success(const IpAddress& client, const std::string& login,
                                   Clock::time_point now) {
  const std::string net = client_network(client);
  std::lock_guard lock(mutex_);
  const std::string key = throttle_account_key(login);
  auto it = accounts_.find(key);
  if (it == accounts_.end()) {
    if (options_.remember_good.count() == 0 || !room_for_account(key, now)) return;
    it = accounts_.emplace(key, Account{}).first;
  }
  Account& a = it->second;
  a.last = now;
  a.good[net] = now;
  if (a.good.size() > kGoodNetworksPerAccount) {
    a.good.erase(std::min_element(a.good.begin(), a.good.end(), [](const auto& x, const auto& y) {
      return x.second < y.second;
    }));
  }
  // A success clears this network's failures for the account (not the network's own count:
  // one valid login must not reset an attacker's budget for the others).
  a.failures.erase(std::remove_if(a.failures.begin(), a.failures.end(),
                                  [&](const auto& f) { return f.second == net; }),
                   a.failures.end());
}

}  // namespace truefrom::policy
