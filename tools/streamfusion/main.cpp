// streamfusion: plan, run and check sequence-parallel attention.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli_exit.h"
#include "commands.h"
#include "streamfusion/build_id.h"

int main(int argc, char** argv) {
  CLI::App app{"StreamFusion: topology-aware sequence-parallel attention for DiT inference"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "StreamFusion " SF_BUILD_ID);
  sf::cli::register_plan(app);
  sf::cli::register_attention(app);
#ifdef STREAMFUSION_HAVE_GPU_RUNTIME
  sf::cli::register_gpu_commands(app);
  argc = sf::cli::launch_command_from(argc, argv);
#endif
  return sf::cli::parse_and_run(app, argc, argv, sf::cli::exit_code);
}
