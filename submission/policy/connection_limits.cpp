#include "submission/policy/connection_limits.hpp"

#include <algorithm>

namespace truefrom::policy {

namespace {
constexpr std::chrono::minutes kMinute{1};
}  // namespace

ConnectionLimits::ConnectionLimits(ConnectionLimitOptions options) : options_(std::move(options)) {}

bool ConnectionLimits::allowed(const IpAddress& client) const {
  return std::any_of(options_.allow.begin(), options_.allow.end(),
                     [&](const Network& n) { return n.contains(client); });
}

std::string ConnectionLimits::admit(const IpAddress& client, Clock::time_point now) {
  if (allowed(client)) return {};
  const std::string net = client_network(client);
  std::lock_guard lock(mutex_);
  if (entries_.size() >= options_.max_tracked && !entries_.count(net)) {
    // Full: forget networks with nothing open and nothing recent (a walk of the table, at
    // most once a second). Still full: this network is let in untracked.
    if (now >= next_sweep_) {
      next_sweep_ = now + std::chrono::seconds(1);
      for (auto it = entries_.begin(); it != entries_.end();) {
        auto& r = it->second.recent;
        while (!r.empty() && r.front() + kMinute <= now) r.pop_front();
        it = (it->second.open == 0 && r.empty()) ? entries_.erase(it) : std::next(it);
      }
    }
    if (entries_.size() >= options_.max_tracked) return {};
  }
  Entry& e = entries_[net];
  while (!e.recent.empty() && e.recent.front() + kMinute <= now) e.recent.pop_front();
  if (options_.concurrent && e.open >= options_.concurrent) {
    return std::to_string(e.open) + " connections open from " + net + " (limit " +
           std::to_string(options_.concurrent) + ")";
  }
  if (options_.per_minute && e.recent.size() >= options_.per_minute) {
    return std::to_string(e.recent.size()) + " connections from " + net +
           " in the last minute (limit " + std::to_string(options_.per_minute) + ")";
  }
  ++e.open;
  if (options_.per_minute) e.recent.push_back(now);
  return {};
}

void ConnectionLimits::release(const IpAddress& client) {
  if (allowed(client)) return;
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(client_network(client));
  if (it == entries_.end() || it->second.open == 0) return;
  if (--it->second.open == 0 && it->second.recent.empty()) entries_.erase(it);
}

}  // namespace truefrom::policy
