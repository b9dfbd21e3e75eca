// What the benchmark tools read about processes: their own CPU time (getrusage), another
// process's resident memory (/proc/PID/status VmRSS), and the open-files limit they raise
// before opening thousands of connections; SIGINT/SIGTERM turned into a flag polled by
// the tools' loops.
// Thread-safety: each call is independent; stop_requested() may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace truefrom::bench {

/// User + system CPU seconds this process has used so far.
double own_cpu_seconds();

/// VmRSS of `pid` in KiB; nullopt with `error` set when it cannot be read.
std::optional<std::uint64_t> resident_kib(int pid, std::string& error);

/// Number of open file descriptors of `pid` (entries of /proc/PID/fd); nullopt when they
/// cannot be listed (another user's process without the right to look).
std::optional<std::uint64_t> open_fd_count(int pid);

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the soft limit now in force.
std::uint64_t raise_open_files_limit();

/// Makes SIGINT and SIGTERM set a flag instead of ending the process.
void catch_stop_signals();
/// Whether SIGINT or SIGTERM arrived since catch_stop_signals().
bool stop_requested();

}  // namespace truefrom::bench
