// `streamfusion launch` (tools/streamfusion/gpu/launch_command.cpp) alone, so that a CPU build tests the built-in
// launcher too (tests/cpu/CMakeLists.txt, launch_*): what every rank gets in its environment, the first failure's
// exit code with the other ranks terminated after the grace period, and bad invocations. The launcher itself is plain
// POSIX; the GPU build's binaries carry the same code.
#include <CLI/CLI.hpp>

#include "cli_exit.h"
#include "gpu/gpu_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"streamfusion launch, alone"};
  app.require_subcommand(1);
  sf::cli::register_launch_command(app);
  return sf::cli::parse_and_run(app, sf::cli::launch_command_from(argc, argv), argv, [] { return 0; });
}
