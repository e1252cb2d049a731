#include "streamfusion/tensor.h"

namespace sf {

namespace {
std::string dims(const std::array<int64_t, 4>& s) {
  return "[" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " + std::to_string(s[2]) + ", " +
         std::to_string(s[3]) + "]";
}
}  // namespace

std::string TensorView::shape_string() const { return dims(shape) + " " + dtype_name(dtype); }

Status TensorView::expect(const char* name, DType want_dtype, const std::array<int64_t, 4>& want_shape) const {
  const std::string want = dims(want_shape) + " " + dtype_name(want_dtype);
  if (!data && numel() > 0) return invalid_argument(std::string(name) + " has no data pointer; expected " + want);
  if (dtype != want_dtype || shape != want_shape)
    return invalid_argument(std::string(name) + " must be " + want + " [B, S_local, H, D], found " + shape_string());
  if (!is_dense())
    return invalid_argument(std::string(name) + " must be dense row-major (strides [" + std::to_string(shape[1] * shape[2] * shape[3]) +
                            ", " + std::to_string(shape[2] * shape[3]) + ", " + std::to_string(shape[3]) + ", 1])");
  return Status::ok();
}

}  // namespace sf
