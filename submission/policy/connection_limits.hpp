// Connections per client network (client_network.hpp): at most `concurrent` open at once and
// `per_minute` new ones in any sliding minute; beyond either, the connection is greeted with
// 421 4.7.0 and closed (the global [server] max_connections stays). Allowed networks are
// not limited. Memory is bounded: a network is tracked while it has connections or recent
// ones, `max_tracked` at most (a full table lets newcomers in untracked).
// Sans-IO (the caller passes the time). Thread-safe: one mutex.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "submission/policy/client_network.hpp"

namespace truefrom::policy {

struct ConnectionLimitOptions {
  unsigned concurrent = 30;   ///< 0: no limit
  unsigned per_minute = 120;  ///< 0: no limit
  std::vector<Network> allow;
  std::size_t max_tracked = 65536;
};

class ConnectionLimits {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ConnectionLimits(ConnectionLimitOptions options = {});

  /// Empty: admitted (call release() when it ends). Otherwise why it is refused, for the log.
  std::string admit(const IpAddress& client, Clock::time_point now);
  void release(const IpAddress& client);

 private:
  bool allowed(const IpAddress& client) const;
  struct Entry {
    unsigned open = 0;
    std::deque<Clock::time_point> recent;  ///< starts within the last minute
  };
  ConnectionLimitOptions options_;
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  Clock::time_point next_sweep_{};
};

}  // namespace truefrom::policy
