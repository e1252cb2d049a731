// Shared-memory tiles and wgmma issue for the Hopper attention kernels (attention_hopper.cu: cp.async by all
// threads; attention_hopper_tma.cu: TMA by thread 0; attention_hopper_ws.cu: a TMA producer warpgroup).
//
// Every tile (Q, K, V) uses the 128-byte swizzle: a [rows][D] tile is stored as D/64 column blocks of
// [rows][64 elements]; in each, row r's 16-byte chunk c sits at chunk c ^ (r & 7) of its 128-byte row, groups
// of 8 rows are 1024 bytes apart (this is also what TMA's SWIZZLE_128B writes for a 64-element-wide box). Q and
// K are read K-major (the reduction dimension d is contiguous): SBO = 1024, and a 16-element step along d moves
// the start address by 32 bytes. V is read MN-major (its N dimension d is contiguous; wgmma's transpose-B):
// LBO = the distance between 64-column blocks, SBO = 1024 between groups of 8 keys, and a 16-key step moves the
// start by 16 rows = 2048 bytes. Tiles must start 1024-byte aligned.
#pragma once

#include <cstdint>

#include "attention_common.cuh"
#include "tma_primitives.cuh"
#include "wgmma_ops.cuh"

namespace sf::cuda::detail {

constexpr int kWgBlockN = 128;  // keys per K/V tile

template <int kRows>
__device__ __forceinline__ uint32_t sw128_offset(int row, int chunk) {
  return static_cast<uint32_t>((chunk >> 3) * (kRows * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

template <int D, int kRows, int kThr = kThreads>
__device__ __forceinline__ void load_tile_sw128(uint32_t dst, const uint16_t* base, int64_t stride_s, int valid,
                                                int tid) {
  load_rows_async<D, kRows, kThr>(dst, base, stride_s, valid, tid,
                            [](int row, int chunk) { return sw128_offset<kRows>(row, chunk); });
}

// Hides a value from the optimizer, so that descriptors derived from it are rebuilt next to each wgmma instead
// of being hoisted out of the main loop and kept live (16 registers per operand the consumers cannot spare).
__device__ __forceinline__ uint32_t opaque(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

// S = Q·Kᵀ for this warpgroup's 64 rows and the 128 keys of the tile at s_k (issued, not waited for); the
// Q tile has kRowsM rows per 64-column block. Descriptors advance by adding (byte offset >> 4) to the
// start-address field, which cannot carry over.
template <typename T, int D, int kRowsM = kBlockM>
__device__ __forceinline__ void issue_qk(float (&s)[kWgBlockN / 8][4], uint32_t s_q_wg, uint32_t s_k) {
  const uint64_t da0 = sw128_desc(opaque(s_q_wg), 16, 1024);
  const uint64_t db0 = sw128_desc(opaque(s_k), 16, 1024);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t col = (kk & 3) * 32;  // 16 elements = 32 bytes along the 128-byte row
    const uint64_t da = da0 + (((kk >> 2) * (kRowsM * 128) + col) >> 4);
    const uint64_t db = db0 + (((kk >> 2) * (kWgBlockN * 128) + col) >> 4);
    wgmma_ss<T, kWgBlockN>(s, da, db, kk > 0 ? 1 : 0);
  }
}

// O += P·V for the tile whose V is at s_v (issued, not waited for).
template <typename T, int D>
__device__ __forceinline__ void issue_pv(float (&o)[D / 8][4], const uint32_t (&p)[kWgBlockN / 16][4], uint32_t s_v) {
  const uint64_t d0 = sw128_desc(opaque(s_v), kWgBlockN * 128, 1024);
#pragma unroll
  for (int kk = 0; kk < kWgBlockN / 16; ++kk) wgmma_rs_tb<T, D>(o, p[kk], d0 + ((kk * 16 * 128) >> 4));
}

// Ping-pong turn taking: warpgroup w (0 or 1) waits on named barrier base + w before issuing a batch and
// then hands the turn to the other one. Both issue the same number of batches (batches_left at the start);
// warpgroup 1 opens warpgroup 0's first turn and skips its own last hand-over, so every barrier phase gets
// exactly 128 + 128 arrivals.
struct TurnTaking {
  int wg, batches_left, base;
  __device__ __forceinline__ void begin() const { named_barrier_sync(base + wg, 2 * 128); }
  __device__ __forceinline__ void end() {
    --batches_left;
    if (wg == 0 || batches_left > 0) named_barrier_arrive(base + (wg ^ 1), 2 * 128);
  }
};

// Three warpgroups in rotation: warpgroup w waits on named barrier 7 + w before issuing a batch, then hands the
// turn to the next one (2 after 1 after 0, then 0 again). Left alone, three warpgroups that wait for the same K/V
// stage can fall into step: their softmax at once, the tensor pipes idle meanwhile (traced at D=128: in blocks
// whose tiles ran ~17 % slower the warpgroups were half as far apart as in the others, bench/kernel/NOTES.md).
// At D=128 only the Q·Kᵀ batches take turns, each handed on once complete (sequential<true>): that keeps the
// warpgroups at least a Q·Kᵀ apart. Handed on at issue, every batch of the three sat in the tensor pipe at once,
// in step by construction (7–12 % slower); that is what the overlapped D=64 loop does under hopper_ws3_rot.
// The rotation runs on across a thread block's blocks of work: open() before the first hands warpgroup 0 its
// first turn, close() after the last takes the hand-over no turn follows, so that every barrier phase gets
// 128 + 128 arrivals.
struct TurnRotation {
  static constexpr int kBarrier = 7;  // 7, 8, 9: after ping-pong's 2, 3 and the warpgroups' own 4, 5, 6
  int wg = 0;
  __device__ __forceinline__ void begin() const { named_barrier_sync(kBarrier + wg, 2 * 128); }
  __device__ __forceinline__ void end() { named_barrier_arrive(kBarrier + (wg == 2 ? 0 : wg + 1), 2 * 128); }
  __device__ __forceinline__ void open() const {
    if (wg == 2) named_barrier_arrive(kBarrier, 2 * 128);
  }
  __device__ __forceinline__ void close() const {
    if (wg == 0) named_barrier_sync(kBarrier, 2 * 128);
  }
};

// No turn taking between warpgroups.
struct NoTurns {
  __device__ __forceinline__ void begin() const {}
  __device__ __forceinline__ void end() {}
};

// One warpgroup's main loop over K/V tiles, shared by the Hopper kernels; the kernels add the synchronization
// of their loads between the steps. Per tile j (all issue steps bracketed by turns.begin()/end()):
//   first(K_0)             S_0 = Q·K_0ᵀ, softmax, P_0
//   overlapped(K_{j+1}, V_j) issue S_{j+1} = Q·K_{j+1}ᵀ and O += P_j·V_j, softmax of S_{j+1} while P_j·V_j runs;
//                          on return no wgmma reads stage j any more
//   finish()               O *= alpha, P_{j+1} from S_{j+1}
//   last(V_{n-1})          O += P_{n-1}·V_{n-1}
// There is no branch between a wgmma's issue and its wait, so that ptxas keeps both groups in flight.
// kRowsM: rows of the block's Q tile (64 per consumer warpgroup; its 2·kRowsM consumer threads load it).
template <typename T, int D, int kRowsM = kBlockM>
struct WgmmaRowLoop {
  static constexpr int kNT = kWgBlockN / 8;
  float s[kNT][4];
  uint32_t p[kWgBlockN / 16][4];
  float alpha[2];
  RowState<D / 8> st;
  KVCursor<kWgBlockN> cur;  // the tile whose scores go through the softmax next
  uint32_t s_q_wg;          // this warpgroup's 64 query rows within each column block of the Q tile
  float scale_log2;

  // Issues the cp.async of the block's Q tile into s_q (all kThreads compute threads, tid = index among them;
  // the caller waits, fences and synchronizes) and loads or initializes this thread's accumulator rows.
  __device__ __forceinline__ void begin(const AttentionArgs& args, const QChunkArgs& qc, const QTile& qt, int b,
                                        int h, uint32_t s_q, int tid, int resume = -1) {
    load_q(qc, qt, b, h, s_q, tid);
    start(args, qc, qt, b, h, s_q, tid, resume);
  }
  // begin in two steps, for a caller that loads the next Q tile while it still stores the last output.
  __device__ __forceinline__ static void load_q(const QChunkArgs& qc, const QTile& qt, int b, int h, uint32_t s_q,
                                                int tid) {
    load_tile_sw128<D, kRowsM, 2 * kRowsM>(s_q, qc.q + b * qc.q_sb + h * qc.q_sh + qt.row0 * qc.q_ss, qc.q_ss, qt.valid, tid);
    cp_async_commit();
  }
  __device__ __forceinline__ void start(const AttentionArgs& args, const QChunkArgs& qc, const QTile& qt, int b, int h,
                                        uint32_t s_q, int tid, int resume = -1) {
    init_rows<D>(args, qc, qt, b, h, st, tid, resume);
    s_q_wg = s_q + (tid >> 7) * 64 * 128;  // this warpgroup's 64 rows within each column block
    scale_log2 = args.scale_log2;
  }

  template <class Turns>
  __device__ __forceinline__ void first(const AttentionArgs& args, uint32_t s_k, Turns& turns) {
    scores(args, s_k, turns);
    finish();
  }

  // S = Q·K_jᵀ, waited for, through the softmax. kEndAfterWait: the turn is handed on once the batch is
  // complete rather than once it is issued.
  template <bool kEndAfterWait = false, class Turns>
  __device__ __forceinline__ void scores(const AttentionArgs& args, uint32_t s_k, Turns& turns) {
    turns.begin();
    wgmma_fence();
    issue_qk<T, D, kRowsM>(s, s_q_wg, s_k);
    wgmma_commit();
    if constexpr (!kEndAfterWait) turns.end();
    wgmma_wait<0>();
    if constexpr (kEndAfterWait) turns.end();
    fence_regs(s);
    online_softmax(s, cur.valid(args), scale_log2, st, alpha);
    cur.advance(args);
  }

  template <class Turns>
  __device__ __forceinline__ void overlapped(const AttentionArgs& args, uint32_t s_k_next, uint32_t s_v,
                                             Turns& turns) {
    fence_regs(st.o);
    fence_regs(p);
    turns.begin();
    wgmma_fence();
    issue_qk<T, D, kRowsM>(s, s_q_wg, s_k_next);
    wgmma_commit();
    issue_pv<T, D>(st.o, p, s_v);
    wgmma_commit();
    turns.end();
    wgmma_wait<1>();  // S_{j+1} done; P_j·V_j may still run
    fence_regs(s);
    online_softmax(s, cur.valid(args), scale_log2, st, alpha);
    cur.advance(args);
    wgmma_wait<0>();
    fence_regs(st.o);
    fence_regs(p);
  }

  __device__ __forceinline__ void finish() {
    rescale(st, alpha);
#pragma unroll
    for (int kk = 0; kk < kWgBlockN / 16; ++kk) pack_p<T>(s, kk, p[kk]);
  }

  // Tile j without overlap, for register budgets that cannot hold S, P and Õ at once (the warp-specialized
  // kernel at D=128): S_j = Q·K_jᵀ, softmax, Õ *= alpha, P_j, Õ += P_j·V_j, two turns. On return no wgmma reads
  // the stage. Another warpgroup's matrix products fill the tensor cores while this one runs its softmax.
  // kQkTurns: only the Q·Kᵀ batches take turns, each handed on once complete, and P·V runs when ready (with
  // TurnRotation: three warpgroups kept at least a Q·Kᵀ's latency apart, never in step).
  template <bool kQkTurns = false, class Turns>
  __device__ __forceinline__ void sequential(const AttentionArgs& args, uint32_t s_k, uint32_t s_v, Turns& turns) {
    scores<kQkTurns>(args, s_k, turns);
    finish();
    if constexpr (kQkTurns) {
      NoTurns free;
      last(s_v, free);
    } else {
      last(s_v, turns);
    }
  }

  template <class Turns>
  __device__ __forceinline__ void last(uint32_t s_v, Turns& turns) {
    fence_regs(st.o);
    fence_regs(p);
    turns.begin();
    wgmma_fence();
    issue_pv<T, D>(st.o, p, s_v);
    wgmma_commit();
    turns.end();
    wgmma_wait<0>();
    fence_regs(st.o);
  }
};

}  // namespace sf::cuda::detail
