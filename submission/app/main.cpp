#include <string>
#include <vector>

#include "submission/app/commands.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return truefrom::app::run_command_line(args);
}
