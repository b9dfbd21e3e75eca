// The retry policy of the queue, as one pure function: after a temporary failure (4xx, no
// relay reachable, an attempt that failed inside truefrom), how long until the next
// attempt, or whether to give up (RFC 5321 4.5.4.1: retry, and give up after a period of
// days; the sender then gets a report, RFC 3464).
//
// The delay starts at `first` after the first failure and doubles with each further one up
// to `max`; each delay is then varied at random by up to ±`jitter` (10%), so that messages
// deferred together (an outage of the relay) do not all come back at the same instant. A
// message older than `lifetime` is given up.
//
// Thread-safety: a pure function; the random source is the caller's.
#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace truefrom::queue {

struct RetryPolicy {
  std::chrono::seconds first{60};                ///< the delay after the first failure
  std::chrono::seconds max{3600};                ///< the longest delay before jitter
  std::chrono::seconds lifetime{5 * 24 * 3600};  ///< then give up
  double jitter = 0.10;                          ///< each delay varies by up to this share
};

/// The delay until the next attempt after `attempts` attempts (>= 1, counting the one that
/// just failed), or nullopt when the message, `age` after its arrival, is to be given up.
/// The delay is at least one second (attempts are scheduled in whole unix seconds).
std::optional<std::chrono::seconds> next_retry(const RetryPolicy& policy, unsigned attempts,
                                               std::chrono::seconds age, std::mt19937_64& random);

}  // namespace truefrom::queue
