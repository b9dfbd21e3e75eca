// Fault points for tests of the real binary: code that must survive a failure asks
// fault_point("name") and throws (or fails) when it says so. Armed only in builds with
// TRUEFROM_FAULT_INJECTION (the debug and asan presets; never in release builds) and only
// by the environment variable TRUEFROM_FAULT_POINTS="name[:count],..." (count: how many
// hits fail, default 1). In other builds fault_point() is a constant false.
// Thread-safety: fault_point() may be called from any thread.
#pragma once

#include <string_view>

namespace truefrom::runtime {

#ifdef TRUEFROM_FAULT_INJECTION
/// True when the point `name` is armed and has hits left (consumes one).
bool fault_point(std::string_view name);
#else
constexpr bool fault_point(std::string_view) { return false; }
#endif

}  // namespace truefrom::runtime
