// The GPU subcommands of the streamfusion CLI: `launch` (one process per GPU on this host), `gpu-attention`
// (SpAttention on NCCL/NVSHMEM ranks vs the one-GPU result, timed) and `gpu-links` (emulated-link check).
#pragma once

#include <CLI/CLI.hpp>

namespace sf::cli {

void register_gpu_commands(CLI::App& app);

// Parts, each in its own file.
void register_launch_command(CLI::App& app);
void register_gpu_attention_command(CLI::App& app);
void register_gpu_links_command(CLI::App& app);

// Splits "a,b,c" (a CLI11 vector option given once with commas also arrives here already split).
std::vector<std::string> split_list(const std::vector<std::string>& items);

}  // namespace sf::cli
