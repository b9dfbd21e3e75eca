// The truefrom executable's subcommands: serve, db migrate, account ..., sender ....
// Each returns the process exit status; errors are printed to stderr with what is wrong and
// how to fix it, and change nothing.
#pragma once

#include <string>
#include <vector>

namespace truefrom::app {

/// Entry point: `args` excludes the program name.
int run_command_line(const std::vector<std::string>& args);

}  // namespace truefrom::app
