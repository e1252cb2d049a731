// Element types of attention tensors. Inputs are bf16/fp16 on GPUs; fp32 is used on CPU ranks and for
// accumulators. Conversions here are the scalar reference ones (round-to-nearest-even).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace sf {

enum class DType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2 };

inline int dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }
const char* dtype_name(DType t);
// Parses "fp32"/"f32"/"float32", "bf16"/"bfloat16", "fp16"/"f16"/"float16"; false if unknown.
bool parse_dtype(const std::string& s, DType* out);

float bf16_to_float(uint16_t v);
uint16_t float_to_bf16(float f);
float fp16_to_float(uint16_t v);
uint16_t float_to_fp16(float f);

// Reads element i of a buffer of type t as float.
inline float load_as_float(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(base)[i];
    case DType::kBF16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::kF16: return fp16_to_float(static_cast<const uint16_t*>(base)[i]);
  }
  return 0.f;
}
inline void store_from_float(void* base, int64_t i, DType t, float v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(base)[i] = v; break;
    case DType::kBF16: static_cast<uint16_t*>(base)[i] = float_to_bf16(v); break;
    case DType::kF16: static_cast<uint16_t*>(base)[i] = float_to_fp16(v); break;
  }
}

}  // namespace sf
