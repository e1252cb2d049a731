// Device pieces shared by the two attention kernels (Ampere-style mma.sync and Hopper wgmma): Q-tile lookup,
// K/V tile cursor, loading and storing the (Õ, m, l) accumulator, the online-softmax row update.
//
// Both kernels use the same per-thread fragment layout: warp w of the block owns query rows 16w..16w+15 of the
// tile; a thread (lane = 4g + t) holds rows 16w+g and 16w+g+8, and in each 8-column block j the columns 8j+2t,
// 8j+2t+1 (mma.sync m16n8 C layout, which is also wgmma's m64nN accumulator layout per warp).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "attention_kernel.cuh"
#include "ptx_primitives.cuh"

namespace sf::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The Q tile of this block: the last chunk i with tile_start[i] <= blockIdx.x (empty chunks were dropped on the
// host, so the prefix sum is strictly increasing), and the tile's first row within that chunk. kRows: rows per
// Q tile, as the host counted them for tile_start.
struct QTile {
  int chunk;
  int64_t row0;
  int valid;  // rows of the tile inside the chunk
};

template <int kRows = kBlockM>
__device__ __forceinline__ QTile find_q_tile(const AttentionArgs& args, int bx = blockIdx.x) {
  int lo = 0, hi = args.num_q - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (args.tile_start[mid] <= bx) lo = mid; else hi = mid - 1;
  }
  QTile q;
  q.chunk = lo;
  q.row0 = static_cast<int64_t>(bx - args.tile_start[lo]) * kRows;
  const int64_t left = args.q[lo].len - q.row0;
  q.valid = left < kRows ? static_cast<int>(left) : kRows;
  return q;
}

// Issues cp.async for kRows rows of D elements (row r at base + r*stride_s) into a shared tile whose 16-byte
// chunk (row, chunk) lives at dst + offset(row, chunk); rows at or past `valid` are zero-filled, never read.
// kThr threads take part (tid in [0, kThr)).
template <int D, int kRows, int kThr = kThreads, typename OffsetFn>
__device__ __forceinline__ void load_rows_async(uint32_t dst, const uint16_t* base, int64_t stride_s, int valid,
                                                int tid, OffsetFn offset) {
  constexpr int kChunks = D / 8;
  static_assert(kRows * kChunks % kThr == 0, "tile must split evenly over the threads");
#pragma unroll
  for (int it = 0; it < kRows * kChunks / kThr; ++it) {
    const int i = tid + it * kThr;
    const int row = i / kChunks;
    const int chunk = i % kChunks;
    const bool ok = row < valid;
    const uint16_t* src = ok ? base + row * stride_s + chunk * 8 : base;
    cp_async_16(dst + offset(row, chunk), src, ok);
  }
}

// Walks the concatenated K/V chunks in tiles of kN keys; a tile never straddles two chunks.
template <int kN>
struct KVCursor {
  int chunk = 0;
  int64_t offset = 0;
  __device__ __forceinline__ void advance(const AttentionArgs& args) {
    offset += kN;
    if (offset >= args.kv[chunk].len) {
      ++chunk;
      offset = 0;
    }
  }
  __device__ __forceinline__ int valid(const AttentionArgs& args) const {
    const int64_t left = args.kv[chunk].len - offset;
    return left < kN ? static_cast<int>(left) : kN;
  }
  // Moves to tile `tile` of the walk (counted from the first chunk's first tile).
  __device__ __forceinline__ void seek(const AttentionArgs& args, int tile) {
    chunk = 0;
    for (;;) {
      const int in_chunk = static_cast<int>((args.kv[chunk].len + kN - 1) / kN);
      if (tile < in_chunk || chunk + 1 >= args.num_kv) break;
      tile -= in_chunk;
      ++chunk;
    }
    offset = static_cast<int64_t>(tile) * kN;
  }
};

// Per-thread accumulator state for its two query rows.
template <int kDT>
struct RowState {
  float o[kDT][4];
  float m[2];  // running max in base-2 units (scale·log2e·qk)
  float l[2];  // this thread's partial row sum; the 4 threads of a row are summed at the end
  int64_t acc_row[2];
  bool ok[2];
};

// resume: load the accumulator (args.resume, unless a split piece starts from nothing: split_merge.cuh).
template <int D>
__device__ __forceinline__ void init_rows(const AttentionArgs& args, const QChunkArgs& qc, const QTile& qt,
                                          int b, int h, RowState<D / 8>& st, int tid = -1, int resume = -1) {
  if (resume < 0) resume = args.resume;
  if (tid < 0) tid = threadIdx.x;  // tid: the thread's index among the compute threads (kThreads of them)
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t s = qt.row0 + warp * 16 + g + i * 8;
    st.ok[i] = s < qc.len;
    st.acc_row[i] = (b * qc.len + s) * args.heads + h;
    st.m[i] = -INFINITY;
    st.l[i] = 0.f;
  }
#pragma unroll
  for (int j = 0; j < D / 8; ++j) st.o[j][0] = st.o[j][1] = st.o[j][2] = st.o[j][3] = 0.f;
  if (!resume) return;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (!st.ok[i]) continue;
    st.m[i] = qc.acc_m[st.acc_row[i]] * kLog2e;
    // Only one of the row's 4 threads loads l: the partial sums are added up at the end (paper Appendix C).
    st.l[i] = t == 0 ? qc.acc_l[st.acc_row[i]] : 0.f;
    const float* src = qc.acc_o + st.acc_row[i] * D + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const float2 v = *reinterpret_cast<const float2*>(src + 8 * j);
      st.o[j][2 * i] = v.x;
      st.o[j][2 * i + 1] = v.y;
    }
  }
}

// Takes the raw scores q·k of one K/V tile, masks columns >= valid, updates m and l, turns s into
// probabilities (unnormalized, relative to the new m) and returns the factor the old Õ must be multiplied by.
// For a positive scale (the usual case) the row max is taken on the raw scores and the scaling folds into
// the exponent's FFMA; otherwise the scores are scaled first.
template <int kNT, int kDT>
__device__ __forceinline__ void online_softmax(float (&s)[kNT][4], int valid, float scale_log2, RowState<kDT>& st,
                                               float (&alpha)[2]) {
  const int t = threadIdx.x & 3;
  const bool fold = scale_log2 > 0.f;
  if (!fold) {
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] *= scale_log2;
  }
  if (valid < kNT * 8) {
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (8 * j + 2 * t + (e & 1) >= valid) s[j][e] = -INFINITY;
  }
  const float mul = fold ? scale_log2 : 1.f;
  // Row max and row sum in kLanes independent partials: a single running value would be a chain of 2·kNT
  // dependent instructions per row (FADD cannot be reassociated by the compiler), and with only two or three
  // consumer warps per scheduler little hides that latency. Measured: fewer "wait" stalls, kernel time unchanged
  // within the noise (bench/kernel/NOTES.md).
  constexpr int kLanes = kNT % 4 == 0 ? 4 : 1;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float part[kLanes];
#pragma unroll
    for (int r = 0; r < kLanes; ++r) part[r] = -INFINITY;
#pragma unroll
    for (int j = 0; j < kNT; ++j) part[j % kLanes] = fmaxf(part[j % kLanes], fmaxf(s[j][2 * i], s[j][2 * i + 1]));
    float mx = part[0];
#pragma unroll
    for (int r = 1; r < kLanes; ++r) mx = fmaxf(mx, part[r]);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(st.m[i], mx * mul);  // −inf · mul stays −inf
    const float m_use = m_new == -INFINITY ? 0.f : m_new;  // nothing seen yet: keep exp2 away from −inf − (−inf)
    alpha[i] = fast_exp2(st.m[i] - m_use);
    st.m[i] = m_new;
#pragma unroll
    for (int r = 0; r < kLanes; ++r) part[r] = 0.f;
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
      s[j][2 * i] = fast_exp2(fmaf(s[j][2 * i], mul, -m_use));
      s[j][2 * i + 1] = fast_exp2(fmaf(s[j][2 * i + 1], mul, -m_use));
      part[j % kLanes] += s[j][2 * i] + s[j][2 * i + 1];
    }
    float sum = part[0];
#pragma unroll
    for (int r = 1; r < kLanes; ++r) sum += part[r];
    st.l[i] = st.l[i] * alpha[i] + sum;
  }
}

// Õ *= alpha. Skipped when no row of the warp changed its max (alpha == 1 exactly), the common case once a
// row has seen a few tiles.
template <int kDT>
__device__ __forceinline__ void rescale(RowState<kDT>& st, const float (&alpha)[2]) {
  if (!__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) return;
#pragma unroll
  for (int j = 0; j < kDT; ++j) {
    st.o[j][0] *= alpha[0];
    st.o[j][1] *= alpha[0];
    st.o[j][2] *= alpha[1];
    st.o[j][3] *= alpha[1];
  }
}

// Packs the probabilities of 16 keys (two 8-column blocks) into an A fragment of m16n8k16 / wgmma k16.
template <typename T, int kNT>
__device__ __forceinline__ void pack_p(const float (&s)[kNT][4], int kk, uint32_t (&a)[4]) {
  a[0] = MmaType<T>::pack(s[2 * kk][0], s[2 * kk][1]);
  a[1] = MmaType<T>::pack(s[2 * kk][2], s[2 * kk][3]);
  a[2] = MmaType<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = MmaType<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Finalize: row i's log-sum-exp (natural log; −inf without keys) where the chunk asks for it, by one of the
// row's 4 threads, after the row sum st.l[i] was added up.
template <int kDT>
__device__ __forceinline__ void store_lse(const QChunkArgs& qc, const RowState<kDT>& st, int i, int t) {
  if (qc.lse != nullptr && t == 0)
    qc.lse[st.acc_row[i]] = st.l[i] > 0.f ? st.m[i] * kLn2 + __logf(st.l[i]) : -INFINITY;
}

// Writes O = Õ/l into q.out (finalize; rows with l = 0 get 0) or the accumulator back.
template <typename T, int D>
__device__ __forceinline__ void store_rows(const AttentionArgs& args, const QChunkArgs& qc, const QTile& qt, int b,
                                           int h, RowState<D / 8>& st, int tid = -1) {
  if (tid < 0) tid = threadIdx.x;  // as in init_rows
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    st.l[i] += __shfl_xor_sync(0xffffffffu, st.l[i], 1);
    st.l[i] += __shfl_xor_sync(0xffffffffu, st.l[i], 2);
  }
  const int64_t s_base = qt.row0 + warp * 16 + g;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (!st.ok[i]) continue;
    if (args.finalize) {
      const float inv = st.l[i] > 0.f ? 1.f / st.l[i] : 0.f;
      uint16_t* dst = qc.out + b * qc.out_sb + (s_base + 8 * i) * qc.out_ss + h * qc.out_sh + 2 * t;
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<uint32_t*>(dst + 8 * j) =
            MmaType<T>::pack(st.o[j][2 * i] * inv, st.o[j][2 * i + 1] * inv);
      store_lse(qc, st, i, t);
    } else {
      float* dst = qc.acc_o + st.acc_row[i] * D + 2 * t;
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<float2*>(dst + 8 * j) = make_float2(st.o[j][2 * i], st.o[j][2 * i + 1]);
      if (t == 0) {
        qc.acc_m[st.acc_row[i]] = st.m[i] * kLn2;
        qc.acc_l[st.acc_row[i]] = st.l[i];
      }
    }
  }
}

}  // namespace sf::cuda::detail
