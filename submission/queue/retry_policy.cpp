#include "submission/queue/retry_policy.hpp"

#include <algorithm>
#include <cmath>

namespace truefrom::queue {

std::optional<std::chrono::seconds> next_retry(const RetryPolicy& policy, unsigned attempts,
                                               std::chrono::seconds age, std::mt19937_64& random) {
  if (age >= policy.lifetime) return std::nullopt;
  // first * 2^(attempts - 1), capped at max (doubling stops there: no overflow).
  auto delay = std::max(policy.first, std::chrono::seconds(1));
  for (unsigned i = 1; i < attempts && delay < policy.max; ++i) delay *= 2;
  delay = std::min(delay, std::max(policy.max, std::chrono::seconds(1)));
  const double spread = std::clamp(policy.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> factor(1.0 - spread, 1.0 + spread);
  const auto varied = static_cast<std::chrono::seconds::rep>(
      std::llround(static_cast<double>(delay.count()) * factor(random)));
  return std::chrono::seconds(std::max<std::chrono::seconds::rep>(varied, 1));
}

}  // namespace truefrom::queue
