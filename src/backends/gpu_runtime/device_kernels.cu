#include <algorithm>
#include <cmath>
#include <cstring>

#include <cuda_fp16.h>

#include "device_kernels.cuh"
#include "gpu_check.h"

namespace sf::gpu {
namespace {

// One thread per `Vec` of a row; rows are (b, s, h) triples of head_dim elements.
template <typename Vec>
__global__ void copy_rows_vec(char* dst, const char* src, int64_t rows, int64_t len, int64_t heads,
                              int64_t vecs_per_row, int64_t d_sb, int64_t d_ss, int64_t d_sh, int64_t s_sb,
                              int64_t s_ss, int64_t s_sh) {
  const int64_t total = rows * vecs_per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / vecs_per_row, v = i % vecs_per_row;
    const int64_t h = r % heads, s = (r / heads) % len, b = r / (heads * len);
    const Vec* from = reinterpret_cast<const Vec*>(src + b * s_sb + s * s_ss + h * s_sh) + v;
    Vec* to = reinterpret_cast<Vec*>(dst + b * d_sb + s * d_ss + h * d_sh) + v;
    *to = *from;
  }
}

// A batch of row copies whose (b, s) rows are runs of `run_vecs` contiguous 16-byte vectors on both sides:
// copy blockIdx.y, one thread per vector, 32-bit index arithmetic (the caller checks the sizes).
struct RowRunCopy {
  char* dst;
  const char* src;
  int64_t d_sb, d_ss, s_sb, s_ss;  // bytes
};
struct RowRunBatch {
  RowRunCopy c[kMaxBatchedCopies];
};

__global__ void copy_row_runs(const __grid_constant__ RowRunBatch batch, uint32_t len, uint32_t run_vecs,
                              uint32_t total) {
  const RowRunCopy& c = batch.c[blockIdx.y];
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const uint32_t r = i / run_vecs, v = i - r * run_vecs;
    const uint32_t b = r / len, s = r - b * len;
    const uint4* from = reinterpret_cast<const uint4*>(c.src + b * c.s_sb + s * c.s_ss) + v;
    uint4* to = reinterpret_cast<uint4*>(c.dst + b * c.d_sb + s * c.d_ss) + v;
    *to = __ldg(from);
  }
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__global__ void fill_normal_kernel(void* data, int64_t n, DType dtype, uint64_t seed, int64_t first) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = splitmix64(seed * 0x632be59bd9b4e019ull + static_cast<uint64_t>(first + i));
    const float u1 = (static_cast<float>(r >> 40) + 1.f) * (1.f / 16777217.f);  // (0, 1]
    const float u2 = static_cast<float>((r >> 16) & 0xffffffu) * (1.f / 16777216.f);
    const float z = sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
    if (dtype == DType::kF32) {
      static_cast<float*>(data)[i] = z;
    } else if (dtype == DType::kBF16) {
      uint32_t u = __float_as_uint(z);
      static_cast<uint16_t*>(data)[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    } else {
      reinterpret_cast<__half*>(data)[i] = __float2half_rn(z);
    }
  }
}

__device__ __forceinline__ float as_float(const void* p, int64_t i, DType t) {
  if (t == DType::kF32) return static_cast<const float*>(p)[i];
  if (t == DType::kBF16) return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16);
  return __half2float(reinterpret_cast<const __half*>(p)[i]);
}

struct CompareAccum {
  unsigned int max_abs_bits;
  unsigned long long non_finite;
  double sum_sq_diff, sum_sq_ref;
};

__global__ void compare_kernel(const void* test, const void* ref, int64_t n, DType dtype, CompareAccum* acc) {
  float mx = 0.f;
  double sd = 0.0, sr = 0.0;
  unsigned long long bad = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float a = as_float(test, i, dtype), b = as_float(ref, i, dtype);
    if (!isfinite(a)) {
      ++bad;
      continue;
    }
    const float d = fabsf(a - b);
    mx = fmaxf(mx, d);
    sd += static_cast<double>(d) * d;
    sr += static_cast<double>(b) * b;
  }
  for (int off = 16; off > 0; off >>= 1) {
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    sd += __shfl_xor_sync(0xffffffffu, sd, off);
    sr += __shfl_xor_sync(0xffffffffu, sr, off);
    bad += __shfl_xor_sync(0xffffffffu, bad, off);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicMax(&acc->max_abs_bits, __float_as_uint(mx));  // non-negative floats order like their bits
    atomicAdd(&acc->sum_sq_diff, sd);
    atomicAdd(&acc->sum_sq_ref, sr);
    atomicAdd(&acc->non_finite, bad);
  }
}

unsigned grid_for(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  if (blocks > 4096) blocks = 4096;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

}  // namespace

double CompareResult::rel_l2() const { return sum_sq_ref > 0 ? std::sqrt(sum_sq_diff / sum_sq_ref) : std::sqrt(sum_sq_diff); }

Status copy_rows_kernel(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads, int64_t head_dim,
                        DType dtype, cudaStream_t stream) {
  if (dst.len != src.len) {
    return invalid_argument("copy_rows: destination has " + std::to_string(dst.len) + " rows, source " +
                            std::to_string(src.len));
  }
  const int64_t rows = batch * src.len * heads;
  if (rows == 0 || head_dim == 0) return Status::ok();
  const int64_t es = dtype_size(dtype);
  const int64_t row_bytes = head_dim * es;
  // Strides in bytes.
  const int64_t d[3] = {dst.stride_b * es, dst.stride_s * es, dst.stride_h * es};
  const int64_t s[3] = {src.stride_b * es, src.stride_s * es, src.stride_h * es};
  auto aligned = [&](int64_t a) {
    bool ok = row_bytes % a == 0 && reinterpret_cast<uintptr_t>(dst.data) % a == 0 &&
              reinterpret_cast<uintptr_t>(src.data) % a == 0;
    for (int i = 0; i < 3; ++i) ok = ok && d[i] % a == 0 && s[i] % a == 0;
    return ok;
  };
  auto go = [&](auto vec_tag, int64_t vec_bytes) -> Status {
    using Vec = decltype(vec_tag);
    const int64_t vpr = row_bytes / vec_bytes;
    copy_rows_vec<Vec><<<grid_for(rows * vpr, 256), 256, 0, stream>>>(
        static_cast<char*>(dst.data), static_cast<const char*>(src.data), rows, src.len, heads, vpr, d[0], d[1],
        d[2], s[0], s[1], s[2]);
    SF_CUDA_LAUNCH_RETURN("copy_rows kernel launch");
    return Status::ok();
  };
  if (aligned(16)) return go(uint4{}, 16);
  if (aligned(8)) return go(uint2{}, 8);
  if (aligned(4)) return go(uint32_t{}, 4);
  return go(uint16_t{}, 2);
}

Status copy_rows_batch_kernel(const RowChunk* dst, const RowChunk* src, int n, int64_t batch, int64_t heads,
                              int64_t head_dim, DType dtype, cudaStream_t stream) {
  const int64_t es = dtype_size(dtype), run_bytes = heads * head_dim * es;
  const int64_t len = n > 0 ? src[0].len : 0;
  bool batched = n > 1 && n <= kMaxBatchedCopies && run_bytes % 16 == 0 && batch * len * (run_bytes / 16) < (1ll << 31);
  for (int i = 0; i < n && batched; ++i) {
    const RowChunk& d = dst[i];
    const RowChunk& s = src[i];
    batched = d.len == len && s.len == len && d.stride_h == head_dim && s.stride_h == head_dim &&
              reinterpret_cast<uintptr_t>(d.data) % 16 == 0 && reinterpret_cast<uintptr_t>(s.data) % 16 == 0 &&
              (d.stride_b * es) % 16 == 0 && (d.stride_s * es) % 16 == 0 && (s.stride_b * es) % 16 == 0 &&
              (s.stride_s * es) % 16 == 0;
  }
  if (!batched) {
    for (int i = 0; i < n; ++i) SF_RETURN_IF_ERROR(copy_rows_kernel(dst[i], src[i], batch, heads, head_dim, dtype, stream));
    return Status::ok();
  }
  if (len == 0 || batch == 0 || run_bytes == 0) return Status::ok();
  RowRunBatch b{};
  for (int i = 0; i < n; ++i)
    b.c[i] = {static_cast<char*>(dst[i].data), static_cast<const char*>(src[i].data), dst[i].stride_b * es,
              dst[i].stride_s * es, src[i].stride_b * es, src[i].stride_s * es};
  const auto run_vecs = static_cast<uint32_t>(run_bytes / 16);
  const auto total = static_cast<uint32_t>(batch * len * run_vecs);
  // About 8 blocks of 256 threads per SM over all copies: enough bytes in flight to saturate memory.
  const unsigned blocks_x = std::max(1u, std::min(grid_for(total, 256), 1056u / static_cast<unsigned>(n) + 1));
  copy_row_runs<<<dim3(blocks_x, static_cast<unsigned>(n)), 256, 0, stream>>>(b, static_cast<uint32_t>(len),
                                                                              run_vecs, total);
  SF_CUDA_LAUNCH_RETURN("copy_rows batch kernel launch");
  return Status::ok();
}

Status fill_normal(void* data, int64_t n, DType dtype, uint64_t seed, int64_t first_index, cudaStream_t stream) {
  if (n <= 0) return Status::ok();
  fill_normal_kernel<<<grid_for(n, 256), 256, 0, stream>>>(data, n, dtype, seed, first_index);
  SF_CUDA_LAUNCH_RETURN("fill_normal kernel launch");
  return Status::ok();
}

Result<CompareResult> compare(const void* test, const void* ref, int64_t n, DType dtype, cudaStream_t stream) {
  CompareAccum* acc = nullptr;
  SF_CUDA_RETURN(cudaMallocAsync(reinterpret_cast<void**>(&acc), sizeof(CompareAccum), stream));
  SF_CUDA_RETURN(cudaMemsetAsync(acc, 0, sizeof(CompareAccum), stream));
  if (n > 0) {
    compare_kernel<<<grid_for(n, 256), 256, 0, stream>>>(test, ref, n, dtype, acc);
    SF_CUDA_LAUNCH_RETURN("compare kernel launch");
  }
  CompareAccum host{};
  SF_CUDA_RETURN(cudaMemcpyAsync(&host, acc, sizeof host, cudaMemcpyDeviceToHost, stream));
  SF_CUDA_RETURN(cudaFreeAsync(acc, stream));
  SF_CUDA_RETURN(cudaStreamSynchronize(stream));
  CompareResult r;
  float mx;
  std::memcpy(&mx, &host.max_abs_bits, sizeof mx);
  r.max_abs = mx;
  r.sum_sq_diff = host.sum_sq_diff;
  r.sum_sq_ref = host.sum_sq_ref;
  r.non_finite = static_cast<int64_t>(host.non_finite);
  return r;
}

}  // namespace sf::gpu
