// Device::merge_partials on a GPU: an fp32 accumulator (Õ, m, l) of some keys and a finalized partial (O, lse)
// of the other keys, merged row by row into the output. One thread per eight elements of a row in 16-byte
// accesses where a 16-bit launch's pointers and strides allow it, else per four (head_dim a multiple of 4, as both
// kernels' head dims are) or per element; every merge of a launch in blockIdx.y. Memory-bound: it reads the
// accumulator (4 bytes per element) and the partial and writes the output.
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

// The merge of one row's weights: the accumulator's (wa) and the partial's (wb), and 1 / their sum.
struct RowWeights {
  float wa, wb, inv;
};
__device__ __forceinline__ RowWeights row_weights(const Device::PartialMerge& mg, int64_t row) {
  const float l_a = mg.acc_l[row], lse_b = mg.part_lse[row];
  const float m_a = l_a > 0.f ? mg.acc_m[row] : -INFINITY;
  const float m = fmaxf(m_a, lse_b);
  const float wa = m_a == -INFINITY ? 0.f : __expf(m_a - m), wb = lse_b == -INFINITY ? 0.f : __expf(lse_b - m);
  const float l = wa * l_a + wb;  // wa = 0 where the accumulator saw no keys
  return {wa, wb, l > 0.f ? 1.f / l : 0.f};
}

// kVec elements per thread; rows are (b, s, h) of head_dim elements, `groups` = head_dim / kVec per row; total =
// B·len·heads·groups. Index math in Index (32-bit where the launch's elements allow: 64-bit divisions cost more
// than the loads).
template <typename T, int kVec, typename Index>
__global__ void merge_partials_kernel(const __grid_constant__ MergeBatch batch, Index len, Index heads,
                                      Index head_dim, Index total) {
  const Device::PartialMerge& mg = batch.m[blockIdx.y];
  const Index groups = head_dim / kVec;
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index row = i / groups, d0 = (i - row * groups) * kVec;
    const Index h = row % heads, rest = row / heads, s = rest % len, b = rest / len;
    const RowWeights w = row_weights(mg, row);
    const T* part = static_cast<const T*>(mg.part_o.data) + b * mg.part_o.stride_b + s * mg.part_o.stride_s +
                    h * mg.part_o.stride_h + d0;
    T* out = static_cast<T*>(mg.out.data) + b * mg.out.stride_b + s * mg.out.stride_s + h * mg.out.stride_h + d0;
    const float* acc = mg.acc_o + static_cast<int64_t>(row) * head_dim + d0;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const float a = w.wa > 0.f ? acc[k] : 0.f, p = w.wb > 0.f ? to_float(part[k]) : 0.f;
      out[k] = from_float<T>((w.wa * a + w.wb * p) * w.inv);
    }
  }
}

// 16-bit outputs, eight elements a thread in 16-byte loads and stores (two float4 of the accumulator, one uint4 of
// the partial and of the output): 8192 rows x 12 heads at D=128 in 0.032 ms (3.1 TB/s) against 0.056 with four
// scalar elements a thread (2x H200, session 28). Every pointer 16-byte aligned and every stride a multiple of 8
// (launch checks).
template <typename T, typename Index>
__global__ void merge_partials_vec8_kernel(const __grid_constant__ MergeBatch batch, Index len, Index heads,
                                           Index head_dim, Index total) {
  static_assert(sizeof(T) == 2, "16-bit outputs");
  const Device::PartialMerge& mg = batch.m[blockIdx.y];
  const Index groups = head_dim / 8;
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index row = i / groups, d0 = (i - row * groups) * 8;
    const Index h = row % heads, rest = row / heads, s = rest % len, b = rest / len;
    const RowWeights w = row_weights(mg, row);
    const T* part = static_cast<const T*>(mg.part_o.data) + b * mg.part_o.stride_b + s * mg.part_o.stride_s +
                    h * mg.part_o.stride_h + d0;
    T* out = static_cast<T*>(mg.out.data) + b * mg.out.stride_b + s * mg.out.stride_s + h * mg.out.stride_h + d0;
    const float4* acc = reinterpret_cast<const float4*>(mg.acc_o + static_cast<int64_t>(row) * head_dim + d0);
    float a[8] = {};
    if (w.wa > 0.f) {
      const float4 lo = acc[0], hi = acc[1];
      a[0] = lo.x, a[1] = lo.y, a[2] = lo.z, a[3] = lo.w, a[4] = hi.x, a[5] = hi.y, a[6] = hi.z, a[7] = hi.w;
    }
    uint4 praw = make_uint4(0, 0, 0, 0);
    if (w.wb > 0.f) praw = *reinterpret_cast<const uint4*>(part);
    const T* p = reinterpret_cast<const T*>(&praw);
    uint4 oraw;
    T* o = reinterpret_cast<T*>(&oraw);
    const float inv = w.inv;
#pragma unroll
    for (int k = 0; k < 8; ++k) o[k] = from_float<T>((w.wa * a[k] + w.wb * to_float(p[k])) * inv);
    *reinterpret_cast<uint4*>(out) = oraw;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether every merge of the launch can take 16-byte accesses.
bool vec8_ok(const MergeBatch& b, int n, int64_t head_dim, size_t elem) {
  if (elem != 2 || head_dim % 8 != 0) return false;
  for (int i = 0; i < n; ++i) {
    const Device::PartialMerge& m = b.m[i];
    for (const RowChunk* c : {&m.part_o, &m.out})
      if (!aligned16(c->data) || c->stride_b % 8 || c->stride_s % 8 || c->stride_h % 8) return false;
    if (!aligned16(m.acc_o)) return false;
  }
  return true;
}

template <typename T>
Status launch(const MergeBatch& b, int n, int64_t batch, int64_t len, int64_t heads, int64_t head_dim,
              cudaStream_t stream) {
  const bool vec8 = vec8_ok(b, n, head_dim, sizeof(T));
  const int64_t vec = vec8 ? 8 : head_dim % 4 == 0 ? 4 : 1, total = batch * len * heads * (head_dim / vec);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 4096));
  const dim3 grid(blocks, static_cast<unsigned>(n));
  // 32-bit indices where every element offset of the launch fits (rows · head_dim, and the strided pointers').
  const bool narrow = batch * len * heads * head_dim < (int64_t{1} << 31);
  auto go = [&](auto index) {
    using Index = decltype(index);
    const Index l = static_cast<Index>(len), h = static_cast<Index>(heads), d = static_cast<Index>(head_dim),
                t = static_cast<Index>(total);
    if constexpr (sizeof(T) == 2) {
      if (vec8) return merge_partials_vec8_kernel<T, Index><<<grid, 256, 0, stream>>>(b, l, h, d, t);
    }
    if (vec == 4) return merge_partials_kernel<T, 4, Index><<<grid, 256, 0, stream>>>(b, l, h, d, t);
    return merge_partials_kernel<T, 1, Index><<<grid, 256, 0, stream>>>(b, l, h, d, t);
  };
  if (narrow) go(int32_t{0});
  else go(int64_t{0});
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
