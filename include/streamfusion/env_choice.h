// Settings from the environment: one of a few words (the GPU runtime's SF_NVSHMEM_PIPELINE, SF_EMULATED_NIC, ...;
// the CUDA kernels' SF_CUDA_ATTENTION_PATH, ...), a number of seconds (SF_WATCHDOG_TIMEOUT_S) or a whole number in
// a range (SF_CUDA_COMM_SMS). A value that is none of these is an error naming the variable, what it takes and what
// it found: a misspelt setting must not quietly run the default. Plain C++, so CPU tests reach it.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

#include "streamfusion/status.h"

namespace sf {

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
    return invalid_argument(std::string(name) +
                            " must be a number of seconds greater than 0 (e.g. 90 or 0.5), found '" + v + "'");
  return seconds;
}

// Whether `text` is a whole number (decimal digits, no sign) from `least` to `most`; its value in *value.
inline bool parse_count(const char* text, int64_t least, int64_t most, int64_t* value) {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(text, &end, 10);
  if (*end != '\0' || errno == ERANGE || n < least || n > most) return false;
  *value = n;
  return true;
}

// A whole number from `least` to `most`; unset or empty is `fallback`. Anything else is an error that names the
// variable, the range and what it found.
inline Result<int64_t> env_count(const char* name, int64_t fallback, int64_t least, int64_t most) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  int64_t n = 0;
  if (!parse_count(v, least, most, &n))
    return invalid_argument(std::string(name) + " must be a whole number from " + std::to_string(least) + " to " +
                            std::to_string(most) + ", found '" + v + "'");
  return n;
}

}  // namespace sf
