#include "gpu_commands.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace sf::cli {

void exit_rank_on_error(int rank, const char* command, const Status& status) {
  std::fprintf(stderr, "[rank %d] %s: %s\n", rank, command, status.to_string().c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(1);
}

std::vector<std::string> split_list(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& it : items) {
    std::stringstream ss(it);
    std::string part;
    while (std::getline(ss, part, ',')) {
      if (!part.empty()) out.push_back(part);
    }
  }
  return out;
}

void register_gpu_commands(CLI::App& app) {
  register_launch_command(app);
  register_gpu_attention_command(app);
  register_gpu_links_command(app);
}

}  // namespace sf::cli
