// Small strict parsers shared by the core's string formats (topologies, meshes).
#pragma once

#include <cstdint>
#include <string>

namespace sf {

// Parses a decimal integer ≥ 1 that fills the whole string (no sign, no spaces, at most 9 digits).
inline bool parse_positive(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < 1) return false;
  *out = v;
  return true;
}

}  // namespace sf
