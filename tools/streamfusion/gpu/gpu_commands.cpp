#include "gpu_commands.h"
#include "option_lists.h"

#include <cmath>
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

CLI::Validator finite_number(double lo, double hi, bool lo_open) {
  std::ostringstream want;
  want.precision(12);
  if (!std::isfinite(hi)) want << "a number " << (lo_open ? "above " : "of at least ") << lo;
  else want << "a number " << (lo_open ? "above " : "from ") << lo << (lo_open ? " up to " : " to ") << hi;
  return CLI::Validator(
      [lo, hi, lo_open, expected = want.str()](std::string& text) -> std::string {
        const double v = parse_finite(text);  // NaN fails every comparison below
        const bool ok = (lo_open ? v > lo : v >= lo) && v <= hi;
        return ok ? std::string() : "expected " + expected + ", found '" + text + "'";
      },
      want.str());
}

void register_gpu_commands(CLI::App& app) {
  register_launch_command(app);
  register_gpu_attention_command(app);
  register_gpu_links_command(app);
}

}  // namespace sf::cli
