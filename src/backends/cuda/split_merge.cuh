// Split pieces of one item (Q tile, head, batch) of the warp-specialized kernel (tail_split.h says when and why;
// which item and K/V range a thread block has: work_items.h): how the pieces' partial accumulators meet.
//
// Every piece computes its K/V range from an empty accumulator. At the end each writes its partial (Õ, m, l) to
// its workspace slot, then counts itself in on the item's arrival counter; the piece that arrives last reads the
// other slots, folds them into its registers (and the accumulator it resumes from, if any) and stores the tile
// as a whole block would (store_rows: finalized O or the accumulator). The last arriver is whichever finishes
// last, so no piece ever waits for another: nothing depends on which blocks are resident at the same time.
// Writes before the count are ordered by __threadfence (release), reads after it by another (acquire), and the
// reads bypass L1 (ld.global.cg), the pattern of CUDA's threadFenceReduction sample.
#pragma once

#include <cstdint>

#include "attention_common.cuh"
#include "work_items.h"
#include "tma_primitives.cuh"

namespace sf::cuda::detail {

// blockIdx.x through an opaque move: each call reads it anew instead of keeping an earlier result live.
__device__ __forceinline__ int block_index() {
  int v;
  asm volatile("mov.u32 %0, %%ctaid.x;\n" : "=r"(v));
  return v;
}

// Folds one partial (m2 in base-2 units, l2 the row's full sum, o2 this thread's columns) into row i of st.
// st.l is this thread's share of the row sum (store_rows adds the 4 shares), so thread t == 0 adds l2.
template <int kDT, class Col>
__device__ __forceinline__ void fold_row(RowState<kDT>& st, int i, float m2, float l2, bool t0, Col col) {
  const float m_new = fmaxf(st.m[i], m2);
  const float m_use = m_new == -INFINITY ? 0.f : m_new;
  const float a = exp2f(st.m[i] - m_use), c = exp2f(m2 - m_use);
  st.m[i] = m_new;
  st.l[i] = st.l[i] * a + (t0 ? l2 * c : 0.f);
#pragma unroll
  for (int j = 0; j < kDT; ++j) {
    const float2 v = col(j);
    st.o[j][2 * i] = st.o[j][2 * i] * a + v.x * c;
    st.o[j][2 * i + 1] = st.o[j][2 * i + 1] * a + v.y * c;
  }
}

// Called by all `threads` consumer threads (tid among them; rows as in init_rows) after the piece's last tile.
// False: another piece will store the item, this block is done. True: st holds the whole item, store it.
template <int D, int kRowsM>
__device__ __forceinline__ bool merge_pieces(const AttentionArgs& args, const QChunkArgs& qc, const WorkItem& w,
                                             RowState<D / 8>& st, uint32_t s_word, int tid, int threads) {
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int64_t slot_rows = static_cast<int64_t>(kRowsM);
  // This piece's partial, l summed over the row's 4 threads.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float l = st.l[i];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (!st.ok[i]) continue;
    const int64_t row = (w.slot0 + w.piece) * slot_rows + warp * 16 + g + 8 * i;
    float* o = args.split_o + row * D + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) *reinterpret_cast<float2*>(o + 8 * j) = make_float2(st.o[j][2 * i], st.o[j][2 * i + 1]);
    if (t == 0) *reinterpret_cast<float2*>(args.split_ml + 2 * row) = make_float2(st.m[i], l);
  }
  // A shared call's pieces may run on several GPUs (shared_work.h): system scope. (args.share_role read at each
  // use, from the parameter space, rather than kept in a register through the merge.)
  if (args.share_role != 0) __threadfence_system();
  else __threadfence();
  named_barrier_sync(1, threads);
  if (tid == 0) {
    unsigned* count = args.split_count + w.slot0 / w.pieces;
    const unsigned before = args.share_role != 0 ? atomicAdd_system(count, 1u) : atomicAdd(count, 1u);
    const bool last = before == static_cast<unsigned>(w.pieces - 1);
    if (last) *count = 0;  // every piece has counted itself in: ready for the next launch
    st_shared_u32(s_word, last ? 1u : 0u);
  }
  named_barrier_sync(1, threads);
  if (ld_shared_u32(s_word) == 0) return false;
  if (args.share_role != 0) __threadfence_system();
  else __threadfence();
  // Rows past the Q chunk's end (!st.ok) fold an empty partial instead of skipping the loop: the same trip count
  // in every thread keeps this code uniform, which ptxas needs to keep the main loop's wgmma descriptors in
  // uniform registers (a divergent loop here sent them through R2UR at every wgmma).
  const float2 none = make_float2(-INFINITY, 0.f);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const bool ok = st.ok[i];
    for (int q = 0; q < w.pieces; ++q) {
      if (q == w.piece) continue;
      const int64_t row = (w.slot0 + q) * slot_rows + warp * 16 + g + 8 * i;
      const float2 ml = ok ? __ldcg(reinterpret_cast<const float2*>(args.split_ml + 2 * row)) : none;
      const float* o = args.split_o + row * D + 2 * t;
      fold_row(st, i, ml.x, ml.y, t == 0,
               [&](int j) { return ok ? __ldcg(reinterpret_cast<const float2*>(o + 8 * j)) : make_float2(0.f, 0.f); });
    }
    if (args.resume) {  // the accumulator this call resumes from: m in natural-log units there
      const int64_t r = ok ? st.acc_row[i] : 0;
      const float* o = qc.acc_o + r * D + 2 * t;
      fold_row(st, i, ok ? qc.acc_m[r] * kLog2e : -INFINITY, ok ? qc.acc_l[r] : 0.f, t == 0,
               [&](int j) { return ok ? *reinterpret_cast<const float2*>(o + 8 * j) : make_float2(0.f, 0.f); });
    }
  }
  return true;
}

}  // namespace sf::cuda::detail
