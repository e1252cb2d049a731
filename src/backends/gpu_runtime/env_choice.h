// The runtime's settings from the environment: one of a few words (SF_NVSHMEM_PIPELINE, SF_NVSHMEM_POST_ORDER,
// SF_LANDED_FLAGS, SF_EMULATED_BOOKING, SF_EMULATED_NIC, SF_EMULATED_LINK_CLOCK) or a number of seconds
// (SF_WATCHDOG_TIMEOUT_S). Plain C++, so CPU tests reach it.
#pragma once

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

#include "streamfusion/status.h"

namespace sf::gpu {

// The index in `values` of the variable's value; unset or empty is the first. Anything else is an error that names
// the variable, the values it takes and what it found ("X must be a, b or c, found 'd'").
inline Result<int> env_choice(const char* name, std::initializer_list<const char*> values) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  int index = 0;
  std::string expected;
  for (const char* value : values) {
    if (std::strcmp(v, value) == 0) return index;
    const bool last = index + 1 == static_cast<int>(values.size());
    expected += std::string(index == 0 ? "" : last ? " or " : ", ") + value;
    ++index;
  }
  return invalid_argument(std::string(name) + " must be " + expected + ", found '" + v + "'");
}

// A duration in seconds, greater than zero and finite; unset or empty is `fallback`. Anything else (a unit, a sign,
// a word) is an error that names the variable and what it found.
inline Result<double> env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const double seconds = std::strtod(v, &end);
  if (end == v || *end != '\0' || !std::isfinite(seconds) || seconds <= 0.0)
    return invalid_argument(std::string(name) + " must be a number of seconds greater than 0 (e.g. 90 or 0.5), found '" +
                            v + "'");
  return seconds;
}

}  // namespace sf::gpu
