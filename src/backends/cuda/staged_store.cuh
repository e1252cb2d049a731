// The finalized output of one consumer warpgroup's 64 rows, written through shared memory (the warp-specialized
// kernel, attention_hopper_ws.cu).
//
// Straight from the accumulator registers (store_rows) every store instruction writes 4 bytes per thread into
// 8 different rows: 32 instructions per thread at D=128, each touching 8 cache lines. Per-block timestamps
// (bench/kernel/block_trace.sh, H200 2026-11-27) put the issue of those stores at ~6700 SM cycles per block of
// work, 1.7 K/V tiles' time, during which the warpgroup's tensor work stops: 8 % of a launch at S=4096. Here
// the warpgroup first writes its rows into a shared staging tile (conflict-free: the 128-byte swizzle of the Q
// and K/V tiles puts a store's 8 rows in 8 different bank groups), then reads them back 16 bytes per thread
// and writes whole rows: 8 store instructions per thread at D=128, each two contiguous rows.
// Needs the output 16-byte aligned (pointer and strides): the host says so in AttentionArgs::staged_output
// (attention_hopper_ws.cu).
#pragma once

#include <cstdint>

#include "attention_common.cuh"
#include "tma_primitives.cuh"
#include "wgmma_tiles.cuh"

namespace sf::cuda::detail {

// The staging tile of one warpgroup: 64 rows × D bf16/fp16, in D/64 column blocks of [64 rows][128 bytes].
template <int D>
constexpr int kStageBytesPerWarpgroup = 64 * D * 2;

// Called by the 128 threads of consumer warpgroup wg (tid: index among all consumer threads, rows as in
// store_rows), after its last tile; s_stage: the warpgroup's staging tile; bar_id: a named barrier of the
// warpgroup alone. The staging tile may be written again after the warpgroup's next barrier.
template <typename T, int D>
__device__ __forceinline__ void store_rows_staged(const QChunkArgs& qc, const QTile& qt, int b, int h,
                                                  RowState<D / 8>& st, uint32_t s_stage, int tid, int wg,
                                                  int bar_id) {
  const int lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg_row = ((tid >> 5) & 3) * 16 + g;  // this thread's first row within the warpgroup's 64
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    st.l[i] += __shfl_xor_sync(0xffffffffu, st.l[i], 1);
    st.l[i] += __shfl_xor_sync(0xffffffffu, st.l[i], 2);
    const float inv = st.l[i] > 0.f ? 1.f / st.l[i] : 0.f;
    if (st.ok[i]) store_lse(qc, st, i, t);
    const int row = wg_row + 8 * i;
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
      st_shared_u32(s_stage + sw128_offset<64>(row, j) + 4 * t,
                    MmaType<T>::pack(st.o[j][2 * i] * inv, st.o[j][2 * i + 1] * inv));
  }
  named_barrier_sync(bar_id, 128);
  // Back in 16-byte pieces: kChunks threads per row, whole rows per instruction.
  constexpr int kChunks = D / 8, kRowsPerPass = 128 / kChunks;
  const int c = (tid & 127) % kChunks;
  const int valid = qt.valid < 64 ? qt.valid : 64;
  // The slice's first row: qt.row0 is the tile's first row less 64 · warpgroup (slice_q_tile).
  const int64_t first = qt.row0 + 64 * wg;
  uint16_t* out = qc.out + b * qc.out_sb + h * qc.out_sh + 8 * c;
#pragma unroll
  for (int r = (tid & 127) / kChunks; r < 64; r += kRowsPerPass) {
    if (r < valid) st_global_v4(out + (first + r) * qc.out_ss, ld_shared_v4(s_stage + sw128_offset<64>(r, c)));
  }
}

}  // namespace sf::cuda::detail
