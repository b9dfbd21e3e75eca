// RelayHealth: whether each configured relay answers, as a plain state machine fed with
// outcomes and times (sans-IO: no socket, no timer, no clock of its own).
//
// A relay that does not answer (connection refused, no greeting, a reply that does not come
// within its timeout) is marked down at once, for every delivery: deliveries skip it (the
// next relay in [relay] hosts, or "451 4.4.1 relay down" without waiting for a timeout),
// and one probe at a time tries it again, after 1 s, then doubling up to `probe_max`. The
// first connection that is set up again (a probe's, or any other) marks it up. Each change
// is returned once, for the one log line it gets; `up_changes()` counts the returns so that
// the queue can retry at once what was deferred while a relay was unreachable.
//
// Thread-safety: none; the relay client keeps it under its mutex.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace truefrom::relay {

struct HealthOptions {
  std::chrono::milliseconds probe_first{1000};  ///< the first probe after a relay went down
  std::chrono::milliseconds probe_max{5000};    ///< probes back off, doubling, up to this
};

class RelayHealth {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  /// One change of a relay's state, for its log line.
  struct Change {
    std::size_t relay = 0;
    bool up = false;
    std::string reason;                  ///< down: why; up: empty
    std::chrono::milliseconds down_for;  ///< up: how long it was down
  };

  RelayHealth(std::size_t relays, HealthOptions options);

  /// Whether deliveries may use relay `i` (it is up; a down one is the prober's).
  bool usable(std::size_t i) const { return !relays_.at(i).down; }
  bool any_usable() const;

  /// Relay `i` answered: a connection to it was set up, or a transaction got its replies.
  /// Returns the change when it was down.
  std::optional<Change> answered(std::size_t i, TimePoint now);
  /// Relay `i` did not answer (refused, timed out, closed before its greeting). Returns the
  /// change when it was up. A failed probe (`probe`: the one start_probe() gave) returns
  /// nothing and backs the next one off.
  std::optional<Change> failed(std::size_t i, TimePoint now, const std::string& reason,
                               bool probe = false);

  /// When the next probe of relay `i` is due; nullopt when it is up.
  std::optional<TimePoint> probe_due(std::size_t i) const;
  /// Claims the probe of relay `i`: true when it is down, the probe is due and no other probe
  /// runs; the caller then reports answered() or failed().
  bool start_probe(std::size_t i, TimePoint now);

  /// Why relay `i` is down and since when (for the 451 of a skipped delivery).
  const std::string& down_reason(std::size_t i) const { return relays_.at(i).reason; }
  TimePoint down_since(std::size_t i) const { return relays_.at(i).since; }

  /// How many times a relay came back up so far.
  std::uint64_t up_changes() const { return up_changes_; }

 private:
  struct Relay {
    bool down = false;
    bool probing = false;
    TimePoint since{};
    TimePoint next_probe{};
    std::chrono::milliseconds backoff{0};
    std::string reason;
  };
  HealthOptions options_;
  std::vector<Relay> relays_;
  std::uint64_t up_changes_ = 0;
};

}  // namespace truefrom::relay
