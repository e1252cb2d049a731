// Kernel body and launch of the fused multi-chunk attention (see attention_kernel.cuh for the design).
#include "attention_kernel.cuh"

namespace sf::cuda::detail {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Byte offset of the 16-byte chunk `chunk` of row `row` in a [rows][D] tile of 16-bit elements. Chunks are
// XOR-swizzled with the row's low 3 bits so that the 8 row addresses of an ldmatrix hit 8 distinct bank groups.
template <int D>
__device__ __forceinline__ uint32_t tile_offset(int row, int chunk) {
  return static_cast<uint32_t>(row * D * 2 + ((chunk ^ (row & 7)) << 4));
}

// Issues cp.async for `rows` rows (row r at base + r*stride_s) into a swizzled [kRows][D] tile; rows at or
// past `valid` are zero-filled.
template <int D, int kRows>
__device__ __forceinline__ void load_tile(uint32_t dst, const uint16_t* base, int64_t stride_s, int valid,
                                          int tid) {
  constexpr int kChunks = D / 8;
  static_assert(kRows * kChunks % kThreads == 0, "tile must split evenly over the block");
#pragma unroll
  for (int it = 0; it < kRows * kChunks / kThreads; ++it) {
    const int i = tid + it * kThreads;
    const int row = i / kChunks;
    const int chunk = i % kChunks;
    const bool ok = row < valid;
    const uint16_t* src = ok ? base + row * stride_s + chunk * 8 : base;
    cp_async_16(dst + tile_offset<D>(row, chunk), src, ok);
  }
}

// Walks the concatenated K/V chunks tile by tile.
struct KVCursor {
  int chunk = 0;
  int64_t offset = 0;
  __device__ __forceinline__ void advance(const AttentionArgs& args) {
    offset += kBlockN;
    if (offset >= args.kv[chunk].len) {
      ++chunk;
      offset = 0;
    }
  }
};

template <int D>
__device__ __forceinline__ void load_kv_tile(const AttentionArgs& args, const KVCursor& cur, int b, int h,
                                             uint32_t dst_k, uint32_t dst_v, int tid) {
  const KVChunkArgs& c = args.kv[cur.chunk];
  const int64_t left = c.len - cur.offset;
  const int valid = left < kBlockN ? static_cast<int>(left) : kBlockN;
  const uint16_t* k = c.k + b * c.k_sb + h * c.k_sh + cur.offset * c.k_ss;
  const uint16_t* v = c.v + b * c.v_sb + h * c.v_sh + cur.offset * c.v_ss;
  load_tile<D, kBlockN>(dst_k, k, c.k_ss, valid, tid);
  load_tile<D, kBlockN>(dst_v, v, c.v_ss, valid, tid);
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1) attention_kernel(const __grid_constant__ AttentionArgs args) {
  using Mma = MmaType<T>;
  constexpr int kTileBytes = kBlockN * D * 2;
  constexpr int kNT = kBlockN / 8;  // n-tiles of S per warp
  constexpr int kDT = D / 8;        // n-tiles of O per warp
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t s_q = smem_addr(smem);
  const uint32_t s_kv = s_q + kBlockM * D * 2;  // stage s: K at s_kv + 2s·kTileBytes, V right after

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;  // row within the mma fragment
  const int t = lane & 3;   // column pair within the mma fragment
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int H = args.heads;

  // Which Q chunk: the last i with tile_start[i] <= blockIdx.x (empty chunks were dropped on the host).
  const int bx = blockIdx.x;
  int lo = 0, hi = args.num_q - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (args.tile_start[mid] <= bx) lo = mid; else hi = mid - 1;
  }
  const QChunkArgs& qc = args.q[lo];
  const int64_t q_len = qc.len;
  const int64_t row0 = static_cast<int64_t>(bx - args.tile_start[lo]) * kBlockM;
  const int q_valid = q_len - row0 < kBlockM ? static_cast<int>(q_len - row0) : kBlockM;

  // Prologue: Q tile and the first K/V tile in one cp.async group.
  load_tile<D, kBlockM>(s_q, qc.q + b * qc.q_sb + h * qc.q_sh + row0 * qc.q_ss, qc.q_ss, q_valid, tid);
  KVCursor load_cur;
  if (args.num_kv > 0) {
    load_kv_tile<D>(args, load_cur, b, h, s_kv, s_kv + kTileBytes, tid);
    load_cur.advance(args);
  }
  cp_async_commit();

  // Accumulator rows of this thread: r[0] = warp*16 + g and r[1] = r[0] + 8 within the tile.
  float o[kDT][4];
  float m[2], l[2];
  int64_t acc_row[2];
  bool row_ok[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t s = row0 + warp * 16 + g + i * 8;
    row_ok[i] = s < q_len;
    acc_row[i] = (b * q_len + s) * H + h;
    m[i] = -INFINITY;
    l[i] = 0.f;
  }
#pragma unroll
  for (int j = 0; j < kDT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  if (args.resume) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      if (!row_ok[i]) continue;
      m[i] = qc.acc_m[acc_row[i]] * kLog2e;
      // l is a per-thread partial summed over the 4 threads of a row at the end: only one of them loads it.
      l[i] = t == 0 ? qc.acc_l[acc_row[i]] : 0.f;
      const float* src = qc.acc_o + acc_row[i] * D + 2 * t;
#pragma unroll
      for (int j = 0; j < kDT; ++j) {
        const float2 v = *reinterpret_cast<const float2*>(src + 8 * j);
        o[j][2 * i] = v.x;
        o[j][2 * i + 1] = v.y;
      }
    }
  }

  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int row = warp * 16 + (lane & 15);
    ldmatrix_x4(s_q + tile_offset<D>(row, kk * 2 + (lane >> 4)), qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
  }

  const float scale_log2 = args.scale_log2;
  KVCursor cur;
  int stage = 0;
  while (cur.chunk < args.num_kv) {
    if (load_cur.chunk < args.num_kv) {
      const uint32_t dst = s_kv + (stage ^ 1) * 2 * kTileBytes;
      load_kv_tile<D>(args, load_cur, b, h, dst, dst + kTileBytes, tid);
      load_cur.advance(args);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const uint32_t s_k = s_kv + stage * 2 * kTileBytes;
    const uint32_t s_v = s_k + kTileBytes;

    // S = Q Kᵀ for this warp's 16 rows × kBlockN keys.
    float s[kNT][4];
#pragma unroll
    for (int j = 0; j < kNT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        const int row = np * 16 + ((lane >> 4) << 3) + (lane & 7);
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(s_k + tile_offset<D>(row, kk * 2 + ((lane >> 3) & 1)), b0, b1, b2, b3);
        Mma::mma(s[2 * np], qf[kk], b0, b1);
        Mma::mma(s[2 * np + 1], qf[kk], b2, b3);
      }
    }

    // Online softmax in base 2.
    const int64_t left = args.kv[cur.chunk].len - cur.offset;
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] *= scale_log2;
    if (left < kBlockN) {
      const int valid = static_cast<int>(left);
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (8 * j + 2 * t + (e & 1) >= valid) s[j][e] = -INFINITY;
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < kNT; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * i], s[j][2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[i], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // all masked so far: keep exp2 away from NaN
      const float alpha = fast_exp2(m[i] - m_use);
      m[i] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        s[j][2 * i] = fast_exp2(s[j][2 * i] - m_use);
        s[j][2 * i + 1] = fast_exp2(s[j][2 * i + 1] - m_use);
        sum += s[j][2 * i] + s[j][2 * i + 1];
      }
      l[i] = l[i] * alpha + sum;
#pragma unroll
      for (int j = 0; j < kDT; ++j) {
        o[j][2 * i] *= alpha;
        o[j][2 * i + 1] *= alpha;
      }
    }

    // O += P V, P re-packed from the S accumulators into A fragments.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = Mma::pack(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = Mma::pack(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = Mma::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = Mma::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int row = kk * 16 + (((lane >> 3) & 1) << 3) + (lane & 7);
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(s_v + tile_offset<D>(row, dp * 2 + (lane >> 4)), b0, b1, b2, b3);
        Mma::mma(o[2 * dp], pa, b0, b1);
        Mma::mma(o[2 * dp + 1], pa, b2, b3);
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
    stage ^= 1;
    cur.advance(args);
  }

  // Epilogue.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  const int64_t s_base = row0 + warp * 16 + g;
  if (args.finalize) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      if (!row_ok[i]) continue;
      const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
      uint16_t* dst = qc.out + b * qc.out_sb + (s_base + 8 * i) * qc.out_ss + h * qc.out_sh + 2 * t;
#pragma unroll
      for (int j = 0; j < kDT; ++j)
        *reinterpret_cast<uint32_t*>(dst + 8 * j) = Mma::pack(o[j][2 * i] * inv, o[j][2 * i + 1] * inv);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      if (!row_ok[i]) continue;
      float* dst = qc.acc_o + acc_row[i] * D + 2 * t;
#pragma unroll
      for (int j = 0; j < kDT; ++j)
        *reinterpret_cast<float2*>(dst + 8 * j) = make_float2(o[j][2 * i], o[j][2 * i + 1]);
      if (t == 0) {
        qc.acc_m[acc_row[i]] = m[i] * kLn2;
        qc.acc_l[acc_row[i]] = l[i];
      }
    }
  }
}

}  // namespace

template <typename T, int D>
cudaError_t launch_attention(const AttentionArgs& args, int total_tiles, int batch, cudaStream_t stream) {
  constexpr int kSmem = attention_smem_bytes<D>();
  cudaError_t err =
      cudaFuncSetAttribute(attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(total_tiles), static_cast<unsigned>(args.heads),
                  static_cast<unsigned>(batch));
  attention_kernel<T, D><<<grid, kThreads, kSmem, stream>>>(args);
  return cudaGetLastError();
}

template cudaError_t launch_attention<__nv_bfloat16, 64>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention<__nv_bfloat16, 128>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention<__half, 64>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention<__half, 128>(const AttentionArgs&, int, int, cudaStream_t);

}  // namespace sf::cuda::detail
