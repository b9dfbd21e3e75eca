#include "submission/relay/relay_health.hpp"

#include <algorithm>

namespace truefrom::relay {

RelayHealth::RelayHealth(std::size_t relays, HealthOptions options)
    : options_(options), relays_(relays) {
  options_.probe_first = std::max(options_.probe_first, std::chrono::milliseconds(1));
  options_.probe_max = std::max(options_.probe_max, options_.probe_first);
}

bool RelayHealth::any_usable() const {
  return std::any_of(relays_.begin(), relays_.end(), [](const Relay& r) { return !r.down; });
}

std::optional<RelayHealth::Change> RelayHealth::answered(std::size_t i, TimePoint now) {
  Relay& r = relays_.at(i);
  r.probing = false;
  if (!r.down) return std::nullopt;
  Change c;
  c.relay = i;
  c.up = true;
  c.down_for = std::chrono::duration_cast<std::chrono::milliseconds>(now - r.since);
  r = Relay{};
  ++up_changes_;
  return c;
}

std::optional<RelayHealth::Change> RelayHealth::failed(std::size_t i, TimePoint now,
                                                       const std::string& reason, bool probe) {
  Relay& r = relays_.at(i);
  if (r.down) {
    // A probe failed: the next one waits twice as long, up to probe_max. (A delivery that
    // started before the relay went down changes nothing.)
    if (probe && r.probing) {
      r.probing = false;
      r.backoff = std::min(r.backoff * 2, options_.probe_max);
      r.next_probe = now + r.backoff;
    }
    r.reason = reason;
    return std::nullopt;
  }
  r.down = true;
  r.probing = false;
  r.since = now;
  r.backoff = options_.probe_first;
  r.next_probe = now + r.backoff;
  r.reason = reason;
  Change c;
  c.relay = i;
  c.up = false;
  c.reason = reason;
  c.down_for = std::chrono::milliseconds(0);
  return c;
}

std::optional<RelayHealth::TimePoint> RelayHealth::probe_due(std::size_t i) const {
  const Relay& r = relays_.at(i);
  if (!r.down) return std::nullopt;
  return r.next_probe;
}

bool RelayHealth::start_probe(std::size_t i, TimePoint now) {
  Relay& r = relays_.at(i);
  if (!r.down || r.probing || now < r.next_probe) return false;
  r.probing = true;
  return true;
}

}  // namespace truefrom::relay
