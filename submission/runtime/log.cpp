#include "submission/runtime/log.hpp"

#include <cstdio>
#include <mutex>
#include <string>

namespace truefrom::runtime {

void log(LogLevel level, std::string_view text) {
  static std::mutex mutex;
  const char* name = level == LogLevel::kInfo      ? "info"
                     : level == LogLevel::kWarning ? "warning"
                                                   : "error";
  std::string line = "truefrom: ";
  line += name;
  line += ": ";
  for (char c : text) line += (c == '\n' || c == '\r') ? ' ' : c;
  line += '\n';
  std::lock_guard lock(mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace truefrom::runtime
