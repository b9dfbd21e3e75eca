#include "submission/runtime/fault_injection.hpp"

#ifdef TRUEFROM_FAULT_INJECTION

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "submission/runtime/log.hpp"

namespace truefrom::runtime {

namespace {

struct Armed {
  std::mutex mutex;
  std::map<std::string, long, std::less<>> hits;
  Armed() {
    const char* env = std::getenv("TRUEFROM_FAULT_POINTS");
    if (!env) return;
    std::string_view spec(env);
    while (!spec.empty()) {
      const auto comma = spec.find(',');
      std::string_view item = spec.substr(0, comma);
      spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
      long count = 1;
      if (const auto colon = item.find(':'); colon != std::string_view::npos) {
        count = std::strtol(std::string(item.substr(colon + 1)).c_str(), nullptr, 10);
        item = item.substr(0, colon);
      }
      if (!item.empty() && count > 0) hits[std::string(item)] = count;
    }
  }
};

Armed& armed() {
  static Armed a;
  return a;
}

}  // namespace

bool fault_point(std::string_view name) {
  Armed& a = armed();
  std::lock_guard lock(a.mutex);
  const auto it = a.hits.find(name);
  if (it == a.hits.end() || it->second <= 0) return false;
  --it->second;
  log_warning("fault injected at " + std::string(name) + " (TRUEFROM_FAULT_POINTS)");
  return true;
}

}  // namespace truefrom::runtime

#endif
