// CPU references for the GPU kernel tests: float64 attention with an optional starting accumulator, and a
// same-precision emulation (fp32 scores and sums, P rounded to the input type before P·V, output rounded) whose
// error against float64 bounds what the kernel may show ("at most 2x a same-precision reference").
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "streamfusion/dtype.h"

namespace sf::test {

// Element conversions (round-to-nearest-even), local to the tests so they need no other library.
uint16_t to_bits(float v, DType t);
float from_bits(uint16_t v, DType t);
inline float round_to(float v, DType t) { return from_bits(to_bits(v, t), t); }

// A dense [B, len, H, D] host tensor of values already representable in the element type.
struct HostRows {
  int64_t len = 0;
  std::vector<float> v;  // canonical dense layout
};

HostRows random_rows(std::mt19937_64& rng, int64_t batch, int64_t len, int64_t heads, int64_t dim, float stddev,
                     DType t);

// Running accumulator in float64, dense like the kernel's: o [B, len, H, D], m and l [B, len, H].
struct RefAccumulator {
  std::vector<double> o, m, l;
};

struct RefOptions {
  int64_t batch = 1, heads = 1, dim = 64;
  double scale = 0.125;
  DType dtype = DType::kBF16;
};

// Merges all K/V rows into `acc` (float64; acc must be sized for q and initialized by the caller).
void reference_accumulate(const RefOptions& opt, const HostRows& q, const std::vector<HostRows>& k,
                          const std::vector<HostRows>& v, RefAccumulator* acc);

// Same-precision emulation, starting from `init` (fp32-representable values) or an empty accumulator when
// null: returns O = Õ/l as floats, rounded to the dtype when round_output is set (finalized outputs), else
// kept in fp32 (accumulator outputs).
std::vector<float> emulate_attention(const RefOptions& opt, const HostRows& q, const std::vector<HostRows>& k,
                                     const std::vector<HostRows>& v, bool round_output,
                                     const RefAccumulator* init);

// Empty float64 accumulator (Õ = 0, m = −inf, l = 0) for `len` query rows.
RefAccumulator empty_accumulator(const RefOptions& opt, int64_t len);

// O = Õ / l per row (0 where l == 0).
std::vector<double> normalize(const RefOptions& opt, const RefAccumulator& acc);

}  // namespace sf::test
