// streamfusion-gpu: the GPU subcommands alone (same code as in `streamfusion`), for GPU machines and tests.
#include <CLI/CLI.hpp>

#include "../cli_exit.h"
#include "gpu_commands.h"
#include "streamfusion/build_id.h"

int main(int argc, char** argv) {
  CLI::App app{"StreamFusion GPU tools: launch, gpu-attention, gpu-links"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "StreamFusion " SF_BUILD_ID);  // also what ranks compare at start-up
  sf::cli::register_gpu_commands(app);
  return sf::cli::parse_and_run(app, sf::cli::launch_command_from(argc, argv), argv, [] { return 0; });
}
