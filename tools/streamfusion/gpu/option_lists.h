// The numbers in the GPU commands' list options (-S 4096,16384; --gbps 50,6.25; --sizes-mib 64,256), read before
// any GPU or rank starts: a typo is then a clear error at once, not an exception after the ranks have met.
// Plain C++, so that CPU tests reach it.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

#include "streamfusion/status.h"

namespace sf::cli {

// Whole numbers of at least `min`, e.g. sequence lengths.
inline Result<std::vector<int64_t>> parse_counts(const std::string& option, const std::vector<std::string>& items,
                                                 int64_t min) {
  std::vector<int64_t> out;
  for (const std::string& item : items) {
    int64_t v = 0;
    const auto [end, err] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (err != std::errc() || end != item.data() + item.size() || v < min)
      return invalid_argument(option + " takes whole numbers of at least " + std::to_string(min) +
                              " (a comma list), found '" + item + "'");
    out.push_back(v);
  }
  if (out.empty()) return invalid_argument(option + " needs at least one value");
  return out;
}

// The whole of `text` as a finite number; NaN when it is not one (empty, trailing characters, inf, nan, overflow).
inline double parse_finite(const std::string& text) {
  char* end = nullptr;
  const double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size() && std::isfinite(v) ? v : NAN;
}

// Finite numbers above 0, e.g. link speeds in GB/s or sizes in MiB.
inline Result<std::vector<double>> parse_rates(const std::string& option, const std::vector<std::string>& items) {
  std::vector<double> out;
  for (const std::string& item : items) {
    const double v = parse_finite(item);
    if (!(v > 0.0)) return invalid_argument(option + " takes numbers above 0 (a comma list), found '" + item + "'");
    out.push_back(v);
  }
  if (out.empty()) return invalid_argument(option + " needs at least one value");
  return out;
}

}  // namespace sf::cli
