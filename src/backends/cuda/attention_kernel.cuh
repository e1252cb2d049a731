// The fused multi-chunk attention kernels (paper Appendix C; DESIGN.md section 4): their arguments and launches.
//
// One thread block = one tile of kBlockM = 128 query rows of one Q chunk, for one (batch, head); eight warps,
// each owning 16 query rows. The block walks the concatenation of all K/V chunks in tiles of keys (a tile never
// straddles two chunks; a chunk's last tile is masked), merging each into its running (Õ, m, l) with online
// softmax. blockIdx.x is mapped to (Q chunk, tile) through the exclusive prefix sum of per-chunk tile counts
// and a binary search (the warp-specialized kernel's work is linear over (tile, head, batch) and splits a partly
// empty last wave along K/V: tail_split.h, work_items.h, split_merge.cuh; it
// packs 64-row slices of any chunk into its tiles and runs persistent, taking blocks from a work queue:
// block_queue.cuh). Implementations (SF_CUDA_ATTENTION_PATH picks one; default hopper_ws):
//   attention_hopper_ws.cu  warp-specialized wgmma (sm_90a): a TMA producer warpgroup and three (192-row tiles)
//                           or two consumer warpgroups of 64 rows (hopper_ws3, hopper_ws2; hopper_ws_pp with
//                           consumer ping-pong; hopper_ws_seq_pp without the intra-warpgroup overlap).
//   attention_hopper_tma.cu  wgmma (sm_90a): two warpgroups of 64 rows, 128-key K/V tiles streamed by TMA
//                           into an mbarrier ring, the next tile's Q·Kᵀ overlapped with this tile's P·V;
//                           optionally (hopper_tma_pp) the warpgroups take turns issuing wgmma.
//   attention_hopper.cu     the same math with cp.async loads by all threads (fallback where a chunk cannot be
//                           described by a TMA tensor map).
//   attention_ampere.cu     mma.sync m16n8k16 + ldmatrix, 64-key tiles, two stages (for comparison).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "kernel_settings.h"
#include "ptx_primitives.cuh"
#include "shared_work.h"
#include "streamfusion/attention_problem.h"

namespace sf::cuda::detail {

constexpr int kMaxQChunks = 32;   // per launch; the host splits longer lists into several launches
constexpr int kMaxKVChunks = 32;  // per launch; the host chains launches through the accumulator
constexpr int kBlockM = 128;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// Element pointers are to 16-bit elements (bf16 or fp16); strides in elements.
struct QChunkArgs {
  const uint16_t* q;
  int64_t len;
  int64_t q_sb, q_ss, q_sh;
  float* acc_o;
  float* acc_m;
  float* acc_l;
  uint16_t* out;
  int64_t out_sb, out_ss, out_sh;
  float* lse;  // finalize only, may be null: m + ln(l) per row, indexed like acc_m
};

struct KVChunkArgs {
  const uint16_t* k;
  const uint16_t* v;
  int64_t len;  // > 0: the host drops empty chunks
  int64_t k_sb, k_ss, k_sh;
  int64_t v_sb, v_ss, v_sh;
  // KVChunk::ready: null, or a word that reaches ready_value once the chunk has landed (landed_wait.cuh), or, in
  // steps of ready_heads_per_step heads, ready_value + g once step g has (LandedFlag::heads_per_step). The
  // warp-specialized kernel's producer polls it before the chunk's first tile; before the other kernels the
  // launch puts a one-thread kernel that polls every flag.
  const uint32_t* ready;
  uint32_t ready_value;
  int32_t ready_heads_per_step;  // LandedFlag::heads_per_step: head h has landed at ready_value + h / it (> 0)
};

// Passed by value as a __grid_constant__ parameter (about 8 KB; needs CUDA >= 12.1's large parameters).
struct AttentionArgs {
  int32_t num_q = 0;
  int32_t num_kv = 0;
  int32_t heads = 0;
  float scale_log2 = 0.f;  // softmax scale · log2(e): the kernel works in base 2
  int32_t resume = 0;
  int32_t finalize = 0;
  // Exclusive prefix sum of ceil(len / kBlockM), the chunks' Q tiles (the warp-specialized kernel: of their
  // 64-row slices, which it packs into tiles across chunks).
  int32_t tile_start[kMaxQChunks + 1] = {};
  // Warp-specialized kernel only (tail_split.h): its grid is linear over items = (Q tile, head, batch), the Q
  // tile fastest; items from split_from on run in `splits` pieces along K/V whose partials meet in the workspace:
  // per piece kRowsM rows of Õ (split_o) and of (m, l) (split_ml), per split item an arrival count (split_count,
  // zero between launches: the last piece to arrive resets it).
  int32_t split_from = 0x7fffffff;
  int32_t splits = 1;
  // The linear grid's length in blocks of work (items, split pieces counted one each). A persistent launch runs
  // fewer thread blocks, which walk blocks blockIdx.x, + gridDim.x, ... (attention_hopper_ws.cu).
  int32_t blocks = 0;
  float* split_o = nullptr;
  float* split_ml = nullptr;
  unsigned* split_count = nullptr;
  // Persistent launches only: the work queue's counter (block_queue.cuh; zero between launches), or null for
  // the static order.
  unsigned* queue = nullptr;
  // Warp-specialized kernel only: 1 when the finalized output goes through shared memory, 16 bytes per store
  // (staged_store.cuh; needs every Q chunk's output 16-byte aligned).
  int32_t staged_output = 0;
  // Warp-specialized kernel only, a call shared with other GPUs of the machine (shared_work.h): 0 none, 1 the
  // owner's launch, 2 a helper's. Every block of work, the first too, comes from share->queue (the owner's
  // workspace header, mapped in a helper); atomics and fences at system scope. A helper waits for share->go to
  // reach share_epoch and takes work only if share->plan equals share_plan.
  int32_t share_role = 0;
  SharedHeader* share = nullptr;
  unsigned long long share_epoch = 0;
  unsigned share_plan[4] = {};
  QChunkArgs q[kMaxQChunks] = {};
  KVChunkArgs kv[kMaxKVChunks] = {};
  // The traced warp-specialized kernel only (block_trace.cuh): one BlockTraceRecord per block of work. Last, so
  // that the other fields keep their offsets in the kernels' parameter space.
  void* trace = nullptr;
};

// Where some chunk of `args` has a landed flag: a one-thread kernel on `stream` that returns once every flagged
// chunk has landed, for the kernels that do not poll the flags themselves. Nothing otherwise.
cudaError_t wait_landed_on_stream(const AttentionArgs& args, cudaStream_t stream);

template <typename T, int D>
cudaError_t launch_attention_ampere(const AttentionArgs& args, int total_tiles, int batch, cudaStream_t stream);
template <typename T, int D>
cudaError_t launch_attention_hopper(const AttentionArgs& args, int total_tiles, int batch, cudaStream_t stream);
// ping_pong: the two warpgroups alternate their wgmma batches (named barriers).
template <typename T, int D>
cudaError_t launch_attention_hopper_tma(const AttentionArgs& args, int total_tiles, int batch, bool ping_pong,
                                        cudaStream_t stream);
// Warp-specialized: a TMA producer warpgroup and consumer warpgroups (setmaxnreg).
struct WsOptions {
  bool ping_pong = false;  // as above with two consumer warpgroups; with three, they issue in rotation
  bool overlap = true;     // the next tile's Q·Kᵀ is issued with this tile's P·V (else each tile runs in turn)
  int consumer_warpgroups = 2;  // 2, or 3 (overlap at D=64 only): Q tiles of 192 rows
  KernelSettings launch;   // the split, the persistent grid, the work queue, staging, traces (kernel_settings.h)
  // AttentionProblem::shared, where this launch takes the whole call (shared_work.h), or null.
  const SharedWork* shared = nullptr;
};
// It counts its own tiles: it packs 64-row slices of all Q chunks into tiles of 64 · consumer_warpgroups rows.
template <typename T, int D>
cudaError_t launch_attention_hopper_ws(const AttentionArgs& args, int batch, const WsOptions& options,
                                       cudaStream_t stream);
// The owner of a shared call that another kernel computed: arms its queue with no plan, so that helpers take
// nothing (shared_work.h).
cudaError_t arm_shared_unplanned(const SharedWork& w, cudaStream_t stream);

}  // namespace sf::cuda::detail
