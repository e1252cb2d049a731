// TensorView: a non-owning view of a 4-D tensor (dtype, shape, strides in elements) — what callers hand to
// SpAttention::forward so that shapes and dtypes are checked at the edge, with messages that say what was
// expected and what was found.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "streamfusion/dtype.h"
#include "streamfusion/status.h"

namespace sf {

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  std::array<int64_t, 4> shape{};    // [B, S, H, D] for attention tensors
  std::array<int64_t, 4> strides{};  // in elements

  // A dense row-major view.
  static TensorView dense(void* data, DType dtype, std::array<int64_t, 4> shape) {
    TensorView t{data, dtype, shape, {}};
    int64_t s = 1;
    for (int i = 3; i >= 0; --i) {
      t.strides[i] = s;
      s *= shape[i];
    }
    return t;
  }
  int64_t numel() const { return shape[0] * shape[1] * shape[2] * shape[3]; }
  bool is_dense() const {
    int64_t s = 1;
    for (int i = 3; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != s) return false;
      s *= shape[i];
    }
    return true;
  }
  std::string shape_string() const;  // "[1, 4096, 24, 128] bf16"

  // Checks dtype, shape and density against what a caller needs; `name` labels the message ("q", "o", ...).
  Status expect(const char* name, DType want_dtype, const std::array<int64_t, 4>& want_shape) const;
};

}  // namespace sf
