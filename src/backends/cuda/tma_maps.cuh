// TMA tensor maps of the K/V chunks, passed to the TMA-fed Hopper kernels (attention_hopper_tma.cu,
// attention_hopper_ws.cu) as one __grid_constant__ parameter, and the producer's tile load.
#pragma once

#include <cstdint>

#include <cudaTypedefs.h>

#include "block_queue.cuh"
#include "block_trace.cuh"
#include "tma_primitives.cuh"
#include "wgmma_tiles.cuh"

namespace sf::cuda::detail {

struct TmaMaps {  // CUtensorMap itself is 64-byte aligned
  CUtensorMap k[kMaxKVChunks];
  CUtensorMap v[kMaxKVChunks];
  // Dimension (1..3) of the head, row and batch coordinates in each map (dimensions are sorted by stride).
  uint8_t k_pos[kMaxKVChunks][4];
  uint8_t v_pos[kMaxKVChunks][4];
};

struct TmaParams {
  TmaMaps maps;
  AttentionArgs args;
};

// Fills prm (args and one K and one V map per chunk: boxes of 64 elements × kWgBlockN rows, 128-byte swizzle,
// zero fill past a chunk's end). cudaErrorNotSupported when some chunk cannot be described by a tensor map
// (or the driver has no encoder); the caller then falls back to the cp.async kernel. attention_hopper_tma.cu.
cudaError_t fill_tma_params(const AttentionArgs& args, int batch, int D, bool fp16, TmaParams& prm);

__device__ __forceinline__ void tma_rows(uint32_t dst, const CUtensorMap* map, const uint8_t (&pos)[4], int d0, int h,
                                         int row, int b, uint32_t bar) {
  const int c1 = pos[0] == 1 ? h : pos[1] == 1 ? row : b;
  const int c2 = pos[0] == 2 ? h : pos[1] == 2 ? row : b;
  const int c3 = pos[0] == 3 ? h : pos[1] == 3 ? row : b;
  tma_load_4d(dst, map, d0, c1, c2, c3, bar);
}

// One thread: TMA of K/V tile i (at cursor `cur`) into stage i % kStages of the ring at s_kv (K then V per
// stage), after every consumer thread released the stage (its "empty" barrier completed). The cycles of that
// wait are added to *waited where given (the traced kernel, block_trace.cuh).
template <int D, int kStages>
__device__ __forceinline__ void produce_tile(const TmaParams& p, KVCursor<kWgBlockN>& cur, int i, uint32_t s_kv,
                                             uint32_t s_full, uint32_t s_empty, int h, int b,
                                             uint64_t* waited = nullptr) {
  constexpr int kTileBytes = kWgBlockN * D * 2;
  const int s = i % kStages;
  if (i >= kStages) {
    const uint64_t t0 = waited != nullptr ? trace_clock() : 0;
    mbar_wait(s_empty + 8 * s, ((i / kStages) - 1) & 1);
    if (waited != nullptr) *waited += trace_clock() - t0;
  }
  const uint32_t full = s_full + 8 * s;
  mbar_arrive_expect_tx(full, 2 * kTileBytes);
  const uint32_t dst = s_kv + s * 2 * kTileBytes;
  const int c = cur.chunk, row = static_cast<int>(cur.offset);
#pragma unroll
  for (int db = 0; db < D / 64; ++db) {
    tma_rows(dst + db * kWgBlockN * 128, &p.maps.k[c], p.maps.k_pos[c], db * 64, h, row, b, full);
    tma_rows(dst + kTileBytes + db * kWgBlockN * 128, &p.maps.v[c], p.maps.v_pos[c], db * 64, h, row, b, full);
  }
  cur.advance(p.args);
}

// Shared memory of the TMA kernels: the Q tile, kStages K/V stages (K tile, then V tile), kStages "full" and
// kStages "empty" mbarriers, a word for split pieces (split_merge.cuh) and the block mailbox (block_queue.cuh),
// from a 1024-byte aligned start (the swizzle atoms need it). Tile i of the block's walk over the K/V chunks
// lives in stage i % kStages; its barrier phase parity is (i / kStages) & 1. The Q tile has kRowsM rows.
template <int D, int kStages, int kRowsM = kBlockM>
struct KvRing {
  static constexpr int kQBytes = kRowsM * D * 2;
  static constexpr int kTileBytes = kWgBlockN * D * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;
  static constexpr int kSmemBytes =
      1024 + kQBytes + kStages * kStageBytes + 2 * kStages * 8 + 16 + BlockMailbox::kSmemBytes;
  uint32_t s_q, s_kv, s_full, s_empty, s_word, s_mailbox;

  __device__ __forceinline__ explicit KvRing(const unsigned char* smem) {
    s_q = (smem_addr(smem) + 1023u) & ~1023u;
    s_kv = s_q + kQBytes;
    s_full = s_kv + kStages * kStageBytes;
    s_empty = s_full + kStages * 8;
    s_word = s_empty + kStages * 8;
    s_mailbox = s_word + 16;
  }
  // One thread, before a block barrier: "full" completes on the producer's arrival plus the TMA bytes, "empty"
  // on one arrival of each of `consumers` threads.
  __device__ __forceinline__ void init(int consumers) const {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(s_full + 8 * s, 1);
      mbar_init(s_empty + 8 * s, consumers);
    }
    mbar_init_fence();
  }
  __device__ __forceinline__ uint32_t k(int i) const { return s_kv + (i % kStages) * kStageBytes; }
  __device__ __forceinline__ uint32_t v(int i) const { return k(i) + kTileBytes; }
  __device__ __forceinline__ uint32_t full(int i) const { return s_full + 8 * (i % kStages); }
  __device__ __forceinline__ uint32_t empty(int i) const { return s_empty + 8 * (i % kStages); }
  __device__ __forceinline__ static uint32_t parity(int i) { return (i / kStages) & 1; }
};

// One consumer warpgroup's walk over the block's num_tiles K/V tiles with the next tile's Q·Kᵀ overlapped
// (WgmmaRowLoop first / overlapped / finish / last): waits for tile j+1 with wait(bar, parity) and releases
// tile j on its "empty" barrier once no wgmma reads it; before(j) runs at the top of step j. Tile j lives at
// ring index base + j (a persistent block's ring runs on across its items); the last tile is released only
// with release_last, which a block with no further item on the same ring need not do.
template <class Rows, class Ring, class Turns, class Wait, class Before>
__device__ __forceinline__ void overlapped_tiles(Rows& rows, const AttentionArgs& args, const Ring& ring, int num_tiles,
                                                 Turns& turns, Wait wait, Before before, int base = 0,
                                                 bool release_last = false) {
  if (num_tiles > 0) {
    wait(ring.full(base), Ring::parity(base));
    rows.first(args, ring.k(base), turns);
  }
  for (int j = 0; j + 1 < num_tiles; ++j) {
    before(j);
    const int i = base + j;
    wait(ring.full(i + 1), Ring::parity(i + 1));
    rows.overlapped(args, ring.k(i + 1), ring.v(i), turns);
    mbar_arrive(ring.empty(i));  // K_j and V_j are no longer read by this thread
    rows.finish();
  }
  if (num_tiles > 0) {
    rows.last(ring.v(base + num_tiles - 1), turns);
    if (release_last) mbar_arrive(ring.empty(base + num_tiles - 1));
  }
}

}  // namespace sf::cuda::detail
