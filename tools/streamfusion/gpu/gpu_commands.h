// The GPU subcommands of the streamfusion CLI: `launch` (one process per GPU on this host), `gpu-attention`
// (SpAttention on NCCL/NVSHMEM ranks vs the one-GPU result, timed) and `gpu-links` (emulated-link check).
#pragma once

#include <CLI/CLI.hpp>

#include "streamfusion/status.h"

namespace sf::cli {

void register_gpu_commands(CLI::App& app);

// Parts, each in its own file.
void register_launch_command(CLI::App& app);
// Before parsing: for `launch ... -- <command>`, takes the command off the command line (it runs as given, never
// parsed: CLI11 would turn an argument like "[a,b]" into two) and returns the arguments left for CLI11, the count
// up to the `--`. Any other command line is left whole.
int launch_command_from(int argc, char** argv);
void register_gpu_attention_command(CLI::App& app);
void register_gpu_links_command(CLI::App& app);

// Ends this rank's process on a failed Status: "[rank r] <command>: <message>". It skips teardown on purpose:
// destructors run collective barriers that would wait for peers which may never come.
[[noreturn]] void exit_rank_on_error(int rank, const char* command, const Status& status);

// Splits "a,b,c" (a CLI11 vector option given once with commas also arrives here already split).
std::vector<std::string> split_list(const std::vector<std::string>& items);

// A number option's check: finite, at least `lo` (above it when `lo_open`) and at most `hi`. CLI11's own range
// checks let NaN through and, given no upper bound, print the largest double in their message.
CLI::Validator finite_number(double lo, double hi, bool lo_open = false);

}  // namespace sf::cli

// Checks a Status inside a GPU subcommand (needs `rank` in scope); see exit_rank_on_error.
#define SF_GPU_CLI_CHECK(command, expr)                                                   \
  do {                                                                                 \
    ::sf::Status sf_gpu_st_ = (expr);                                                  \
    if (!sf_gpu_st_.is_ok()) ::sf::cli::exit_rank_on_error(rank, command, sf_gpu_st_); \
  } while (0)
