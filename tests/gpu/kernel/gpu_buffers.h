// Small helpers for the GPU kernel tests: checked allocation, poisoning, strided layouts, scoped settings.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "../../scoped_env.h"
#include "streamfusion/attention_problem.h"

namespace sf::test {

#define SF_CUDA_ASSERT(expr)                                                              \
  do {                                                                                    \
    cudaError_t sf_err_ = (expr);                                                         \
    ASSERT_EQ(sf_err_, cudaSuccess) << #expr << ": " << cudaGetErrorString(sf_err_);      \
  } while (0)

// Owns one device allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes > 0 && cudaMalloc(&ptr_, bytes) != cudaSuccess) ptr_ = nullptr;
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size() * sizeof(T), bytes_);
    if (bytes_ == 0) return;
    SF_CUDA_ASSERT(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice));
  }
  template <typename T>
  std::vector<T> download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    if (bytes_ == 0) return host;
    EXPECT_EQ(cudaMemcpy(host.data(), ptr_, bytes_, cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// How a [B, len, H, D] tensor sits in memory.
enum class Layout {
  kDense,      // [B, len, H, D]
  kSeqMajor,   // [len, B, H, D]
  kHeadMajor,  // [B, H, len, D]
  kPadded,     // [B, len, H, D] with padding after every head row, token row and batch
};

struct Strides {
  int64_t b = 0, s = 0, h = 0, total = 0;  // total: elements the allocation needs
};

inline Strides layout_strides(Layout layout, int64_t batch, int64_t len, int64_t heads, int64_t dim) {
  Strides st;
  switch (layout) {
    case Layout::kDense: st = {len * heads * dim, heads * dim, dim, 0}; break;
    case Layout::kSeqMajor: st = {heads * dim, batch * heads * dim, dim, 0}; break;
    case Layout::kHeadMajor: st = {heads * len * dim, dim, len * dim, 0}; break;
    case Layout::kPadded: {
      const int64_t sh = dim + 8, ss = heads * sh + 16;
      st = {len * ss + 24, ss, sh, 0};
      break;
    }
  }
  st.total = std::max<int64_t>(1, (batch - 1) * st.b + (len - 1) * st.s + (heads - 1) * st.h + dim +
                                      (layout == Layout::kPadded ? 24 : 0));
  if (len == 0) st.total = 1;
  return st;
}

}  // namespace sf::test
