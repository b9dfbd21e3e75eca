// Running helper programs (initdb, pg_ctl, createdb) without a shell, optionally as another
// user through runuser(1), with their output appended to a log file. Blocking; used only by
// the CLI and at server start, never on an I/O thread. Thread-safe.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace truefrom::app {

/// Runs argv[0] (searched in PATH) with `argv`; as `run_as` when given. Output goes to
/// `log` (appended). Returns the exit status, or -1 when it could not be started.
int run_program(const std::vector<std::string>& argv, const std::optional<std::string>& run_as,
                const std::filesystem::path& log);

}  // namespace truefrom::app
