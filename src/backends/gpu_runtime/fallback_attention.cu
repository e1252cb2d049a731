#include <cuda_fp16.h>
// A straightforward exact attention kernel for AttentionProblem: one block per (32-row query tile, b, h),
// four threads per query row, K/V tiles staged through shared memory as fp32, online softmax per tile.
// Correct for every dtype and head_dim ≤ 256; CUDA-core arithmetic, so slow next to sf::cuda::attention.
#include <cmath>

#include "device_kernels.cuh"
#include "gpu_check.h"

namespace sf::gpu {
namespace {

constexpr int kRowsPerBlock = 32;
constexpr int kThreadsPerRow = 4;
constexpr int kThreads = kRowsPerBlock * kThreadsPerRow;
constexpr int kMaxChunks = 12;  // chunk lists are passed by value (kernel parameter space)

struct FallbackParams {
  DType dtype;
  int32_t heads, head_dim, num_q, num_kv;
  bool resume, finalize;
  float scale;
  int32_t tile_prefix[kMaxChunks + 1];
  QChunk q[kMaxChunks];
  KVChunk kv[kMaxChunks];
};

__device__ __forceinline__ float load_elem(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(base)[i];
    case DType::kBF16: {
      const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(base)[i]) << 16;
      return __uint_as_float(bits);
    }
    default: return __half2float(reinterpret_cast<const __half*>(base)[i]);
  }
}

__device__ __forceinline__ void store_elem(void* base, int64_t i, DType t, float v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(base)[i] = v; break;
    case DType::kBF16: {
      // round to nearest even, NaN kept NaN
      uint32_t u = __float_as_uint(v);
      uint16_t r = (v != v) ? uint16_t(0x7fc0) : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
      static_cast<uint16_t*>(base)[i] = r;
      break;
    }
    default: reinterpret_cast<__half*>(base)[i] = __float2half_rn(v);
  }
}

template <int kMaxD>
__global__ void __launch_bounds__(kThreads) fallback_attention_kernel(const __grid_constant__ FallbackParams p) {
  constexpr int kPer = kMaxD / kThreadsPerRow;          // elements of a row each thread holds
  constexpr int kKeys = kMaxD <= 128 ? 32 : 16;         // keys per shared-memory tile
  __shared__ float ks[kKeys][kMaxD];
  __shared__ float vs[kKeys][kMaxD];

  int chunk = 0;
  while (chunk + 1 < p.num_q && static_cast<int>(blockIdx.x) >= p.tile_prefix[chunk + 1]) ++chunk;
  const QChunk& qc = p.q[chunk];
  const int64_t row = static_cast<int64_t>(blockIdx.x - p.tile_prefix[chunk]) * kRowsPerBlock +
                      threadIdx.x / kThreadsPerRow;
  const int lane = threadIdx.x % kThreadsPerRow;
  const int64_t b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
  const int D = p.head_dim;
  const bool valid = row < qc.q.len;

  float q[kPer], o[kPer];
  float m = -INFINITY, l = 0.f;
  const int64_t acc_row = (b * qc.q.len + row) * p.heads + h;  // index into acc_m / acc_l
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int d = lane + kThreadsPerRow * i;
    q[i] = (valid && d < D)
               ? load_elem(qc.q.data, b * qc.q.stride_b + row * qc.q.stride_s + h * qc.q.stride_h + d, p.dtype) *
                     p.scale
               : 0.f;
    o[i] = (valid && p.resume && d < D) ? qc.acc_o[acc_row * D + d] : 0.f;
  }
  if (valid && p.resume) {
    m = qc.acc_m[acc_row];
    l = qc.acc_l[acc_row];
  }

  for (int c = 0; c < p.num_kv; ++c) {
    const KVChunk& kv = p.kv[c];
    for (int64_t k0 = 0; k0 < kv.k.len; k0 += kKeys) {
      __syncthreads();
      for (int e = threadIdx.x; e < kKeys * kMaxD; e += kThreads) {
        const int kk = e / kMaxD, d = e % kMaxD;
        const int64_t key = k0 + kk;
        const bool in = key < kv.k.len && d < D;
        ks[kk][d] = in ? load_elem(kv.k.data, b * kv.k.stride_b + key * kv.k.stride_s + h * kv.k.stride_h + d,
                                   p.dtype)
                       : 0.f;
        vs[kk][d] = in ? load_elem(kv.v.data, b * kv.v.stride_b + key * kv.v.stride_s + h * kv.v.stride_h + d,
                                   p.dtype)
                       : 0.f;
      }
      __syncthreads();
      const int nkeys = static_cast<int>(kv.k.len - k0 < kKeys ? kv.k.len - k0 : kKeys);
      float s[kKeys];
      float tile_max = -INFINITY;
#pragma unroll
      for (int kk = 0; kk < kKeys; ++kk) {
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < kPer; ++i) dot += q[i] * ks[kk][lane + kThreadsPerRow * i];
        dot += __shfl_xor_sync(0xffffffffu, dot, 1);
        dot += __shfl_xor_sync(0xffffffffu, dot, 2);
        s[kk] = kk < nkeys ? dot : -INFINITY;
        tile_max = fmaxf(tile_max, s[kk]);
      }
      const float m_new = fmaxf(m, tile_max);
      const float alpha = m == -INFINITY ? 0.f : __expf(m - m_new);
      float psum = 0.f;
#pragma unroll
      for (int i = 0; i < kPer; ++i) o[i] *= alpha;
#pragma unroll
      for (int kk = 0; kk < kKeys; ++kk) {
        const float pk = s[kk] == -INFINITY ? 0.f : __expf(s[kk] - m_new);
        psum += pk;
#pragma unroll
        for (int i = 0; i < kPer; ++i) o[i] += pk * vs[kk][lane + kThreadsPerRow * i];
      }
      l = l * alpha + psum;
      m = m_new;
    }
  }

  if (!valid) return;
  if (p.finalize) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int d = lane + kThreadsPerRow * i;
      if (d < D)
        store_elem(qc.out.data, b * qc.out.stride_b + row * qc.out.stride_s + h * qc.out.stride_h + d, p.dtype,
                   o[i] * inv);
    }
    if (lane == 0 && qc.lse != nullptr) qc.lse[acc_row] = l > 0.f ? m + __logf(l) : -INFINITY;
  } else {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int d = lane + kThreadsPerRow * i;
      if (d < D) qc.acc_o[acc_row * D + d] = o[i];
    }
    if (lane == 0) {
      qc.acc_m[acc_row] = m;
      qc.acc_l[acc_row] = l;
    }
  }
}

template <int kMaxD>
Status launch(const FallbackParams& fp, int total_tiles, int64_t batch_heads, cudaStream_t stream) {
  if (total_tiles == 0) return Status::ok();
  dim3 grid(static_cast<unsigned>(total_tiles), static_cast<unsigned>(batch_heads));
  fallback_attention_kernel<kMaxD><<<grid, kThreads, 0, stream>>>(fp);
  SF_CUDA_LAUNCH_RETURN("fallback attention kernel launch");
  return Status::ok();
}

}  // namespace

Status fallback_attention(const AttentionProblem& p, cudaStream_t stream) {
  if (p.head_dim < 1 || p.head_dim > 256) {
    return invalid_argument("fallback attention: head_dim " + std::to_string(p.head_dim) + " not in [1, 256]");
  }
  if (p.batch * p.heads > 65535) return invalid_argument("fallback attention: batch·heads above 65535");
  // Long lists: query chunks are independent, so they are cut into groups; K/V chunks are chained through
  // the accumulator (the first group keeps the caller's mode, the others resume; only the last finalizes).
  for (int32_t q0 = 0; q0 < p.num_q; q0 += kMaxChunks) {
    const int32_t nq = std::min(kMaxChunks, p.num_q - q0);
    const int32_t kv_groups = p.num_kv == 0 ? 1 : (p.num_kv + kMaxChunks - 1) / kMaxChunks;
    for (int32_t g = 0; g < kv_groups; ++g) {
      FallbackParams fp{};
      fp.dtype = p.dtype;
      fp.heads = static_cast<int32_t>(p.heads);
      fp.head_dim = static_cast<int32_t>(p.head_dim);
      fp.num_q = nq;
      fp.num_kv = std::min(kMaxChunks, p.num_kv - g * kMaxChunks);
      if (fp.num_kv < 0) fp.num_kv = 0;
      fp.resume = g > 0 || p.mode == AccumulatorMode::kResume;
      fp.finalize = p.finalize && g == kv_groups - 1;
      fp.scale = p.scale;
      int tiles = 0;
      for (int32_t i = 0; i < nq; ++i) {
        const QChunk& qc = p.q[q0 + i];
        if (qc.q.len < 0 || (p.finalize && qc.out.len != qc.q.len)) {
          return invalid_argument("fallback attention: query chunk " + std::to_string(q0 + i) +
                                  " has len " + std::to_string(qc.q.len) + " but its output len " +
                                  std::to_string(qc.out.len));
        }
        if ((!fp.finalize || fp.resume) && (!qc.acc_o || !qc.acc_m || !qc.acc_l)) {
          return invalid_argument("fallback attention: query chunk " + std::to_string(q0 + i) +
                                  " needs an accumulator (resume, no finalize, or more than " +
                                  std::to_string(kMaxChunks) + " K/V chunks) but has none");
        }
        fp.q[i] = qc;
        fp.tile_prefix[i] = tiles;
        tiles += static_cast<int>((qc.q.len + kRowsPerBlock - 1) / kRowsPerBlock);
      }
      fp.tile_prefix[nq] = tiles;
      for (int32_t j = 0; j < fp.num_kv; ++j) fp.kv[j] = p.kv[g * kMaxChunks + j];
      const int64_t bh = p.batch * p.heads;
      Status st = p.head_dim <= 64    ? launch<64>(fp, tiles, bh, stream)
                  : p.head_dim <= 128 ? launch<128>(fp, tiles, bh, stream)
                                      : launch<256>(fp, tiles, bh, stream);
      SF_RETURN_IF_ERROR(st);
    }
  }
  return Status::ok();
}

}  // namespace sf::gpu
