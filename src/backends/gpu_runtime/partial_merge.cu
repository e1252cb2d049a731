// Device::merge_partials on a GPU: an fp32 accumulator (Õ, m, l) of some keys and a finalized partial (O, lse)
// of the other keys, merged row by row into the output. One thread per four elements of a row (head_dim a
// multiple of 4, as both kernels' head dims are; otherwise one per element), every merge of a launch in
// blockIdx.y. Memory-bound: it reads the accumulator (4 bytes per element) and the partial and writes the output.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "device_kernels.cuh"
#include "gpu_check.h"

namespace sf::gpu {
namespace {

struct MergeBatch {
  Device::PartialMerge m[kMaxBatchedMerges];
};

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return __half2float(v);
}
template <typename T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(v);
  else return __float2half_rn(v);
}

// kVec elements per thread; rows are (b, s, h) of head_dim elements, `groups` = head_dim / kVec per row; total =
// B·len·heads·groups.
template <typename T, int kVec>
__global__ void merge_partials_kernel(const __grid_constant__ MergeBatch batch, int64_t len, int64_t heads,
                                      int64_t head_dim, int64_t total) {
  const Device::PartialMerge& mg = batch.m[blockIdx.y];
  const int64_t groups = head_dim / kVec;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / groups, d0 = (i - row * groups) * kVec;
    const int64_t h = row % heads, s = (row / heads) % len, b = row / (heads * len);
    const float l_a = mg.acc_l[row], lse_b = mg.part_lse[row];
    const float m_a = l_a > 0.f ? mg.acc_m[row] : -INFINITY;
    const float m = fmaxf(m_a, lse_b);
    const float wa = m_a == -INFINITY ? 0.f : __expf(m_a - m), wb = lse_b == -INFINITY ? 0.f : __expf(lse_b - m);
    const float l = wa * l_a + wb;  // wa = 0 where the accumulator saw no keys
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const T* part = static_cast<const T*>(mg.part_o.data) + b * mg.part_o.stride_b + s * mg.part_o.stride_s +
                    h * mg.part_o.stride_h + d0;
    T* out = static_cast<T*>(mg.out.data) + b * mg.out.stride_b + s * mg.out.stride_s + h * mg.out.stride_h + d0;
    const float* acc = mg.acc_o + row * head_dim + d0;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const float a = wa > 0.f ? acc[k] : 0.f, p = wb > 0.f ? to_float(part[k]) : 0.f;
      out[k] = from_float<T>((wa * a + wb * p) * inv);
    }
  }
}

template <typename T>
Status launch(const MergeBatch& b, int n, int64_t batch, int64_t len, int64_t heads, int64_t head_dim,
              cudaStream_t stream) {
  const int64_t vec = head_dim % 4 == 0 ? 4 : 1, total = batch * len * heads * (head_dim / vec);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 2048));
  if (vec == 4)
    merge_partials_kernel<T, 4><<<dim3(blocks, static_cast<unsigned>(n)), 256, 0, stream>>>(b, len, heads, head_dim,
                                                                                             total);
  else
    merge_partials_kernel<T, 1><<<dim3(blocks, static_cast<unsigned>(n)), 256, 0, stream>>>(b, len, heads, head_dim,
                                                                                             total);
  SF_CUDA_LAUNCH_RETURN("merge_partials kernel launch");
  return Status::ok();
}

}  // namespace

Status merge_partials_kernel(const Device::PartialMerge* merges, int n, int64_t batch, int64_t heads,
                             int64_t head_dim, DType dtype, cudaStream_t stream) {
  if (n < 0 || n > kMaxBatchedMerges)
    return invalid_argument("merge_partials: " + std::to_string(n) + " merges in one launch, at most " +
                            std::to_string(kMaxBatchedMerges));
  // One launch covers merges of one row count: the kernel's grid walks len·heads rows of each.
  int64_t len = -1;
  MergeBatch b{};
  for (int i = 0; i < n; ++i) {
    const Device::PartialMerge& m = merges[i];
    if (m.out.len != m.part_o.len)
      return invalid_argument("merge_partials: out has " + std::to_string(m.out.len) + " rows, the partial " +
                              std::to_string(m.part_o.len));
    if (len >= 0 && m.out.len != len) return invalid_argument("merge_partials: merges of one launch differ in rows");
    len = m.out.len;
    b.m[i] = m;
  }
  if (n == 0 || len * batch * heads * head_dim == 0) return Status::ok();
  switch (dtype) {
    case DType::kF32: return launch<float>(b, n, batch, len, heads, head_dim, stream);
    case DType::kBF16: return launch<__nv_bfloat16>(b, n, batch, len, heads, head_dim, stream);
    case DType::kF16: return launch<__half>(b, n, batch, len, heads, head_dim, stream);
  }
  return invalid_argument("merge_partials: unknown dtype");
}

}  // namespace sf::gpu
