// Subcommands register themselves on the app; each sets the process exit code through set_exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace sf::cli {

void register_plan(CLI::App& app);
void register_attention(CLI::App& app);
#ifdef STREAMFUSION_HAVE_GPU_RUNTIME
void register_gpu_commands(CLI::App& app);  // launch, gpu-attention (src/backends/gpu_runtime)
// `launch ... -- <command>`: the command taken off the command line before parsing (gpu/gpu_commands.h).
int launch_command_from(int argc, char** argv);
#endif

void set_exit_code(int code);
int exit_code();

}  // namespace sf::cli
