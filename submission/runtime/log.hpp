// Logging to stderr, one line per event, "truefrom: LEVEL: text", for journald or a
// supervisor to collect. Thread-safe (lines never interleave).
#pragma once

#include <string_view>

namespace truefrom::runtime {

enum class LogLevel { kInfo, kWarning, kError };

void log(LogLevel level, std::string_view text);
inline void log_info(std::string_view text) { log(LogLevel::kInfo, text); }
inline void log_warning(std::string_view text) { log(LogLevel::kWarning, text); }
inline void log_error(std::string_view text) { log(LogLevel::kError, text); }

}  // namespace truefrom::runtime
