// The warp-specialized Hopper attention kernel (sm_90a): a producer warpgroup and two or three consumer
// warpgroups.
//
// 384 or 512 threads. Warpgroup 0 is the producer: after `setmaxnreg.dec` to 24 registers (32 with three
// consumer warpgroups), one of its threads streams every K/V tile of the block by TMA into a kStages-deep
// mbarrier ring ("full": the tile's bytes landed; "empty": every consumer thread is done reading the stage), as
// far ahead as the ring allows. The other warpgroups are the consumers (64 query rows each): after
// `setmaxnreg.inc` (to 240 registers with two, 160 with three) they load their Q rows (cp.async), then run the
// same wgmma row loop as the other Hopper kernels without ever issuing a load: with kOverlap the next tile's
// Q·Kᵀ is overlapped with this tile's P·V and softmax (S, P and Õ live at once: ~225 registers at D=128, ~157 at
// D=64), without it each tile is Q·Kᵀ, softmax, P·V in turn (three warpgroups at D=128). With kPingPong two
// consumer warpgroups take turns issuing their wgmma batches (named barriers 2 and 3), so that one's softmax runs
// while the other's matrix products occupy the tensor cores. Each consumer warpgroup meets only itself at block
// boundaries and writes its finalized rows through a shared staging tile of its own (staged_store.cuh).
//
// setmaxnreg only takes effect when the kernel has a register cap at entry (__launch_bounds__(threads, 1): 168
// with 384 threads, 128 with 512) and each role is one branch of a single if/else with no code after it (ptxas
// warns C7508 otherwise): the kernel ends inside both branches, and everything they call is inlined. One more
// condition, found here: no __trap() in the consumer's main loop (mbar_wait's hang guard): with it ptxas 13.0
// kept the consumer code to ~184 registers whatever setmaxnreg said, spilled and serialized the wgmma (C7512);
// the consumers wait with mbar_wait_spin.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "block_queue.cuh"
#include "block_trace.cuh"
#include "landed_wait.cuh"
#include "persistent_launch.h"
#include "split_merge.cuh"
#include "split_workspace.cuh"
#include "staged_store.cuh"
#include "tail_split.h"
#include "tma_maps.cuh"
#include "tma_primitives.cuh"
#include "wgmma_tiles.cuh"

namespace sf::cuda::detail {
namespace {

// kWG consumer warpgroups of 64 query rows each, plus the producer warpgroup. Two (240 registers each, enough
// for S, P and Õ at once at D=128) or three (160 each: a third warpgroup's matrix products hide more of the
// others' softmax; 1.10–1.21× at D=64 and 1.04–1.10× at D=128 on an H100, bench/kernel/NOTES.md).
template <int kWG>
constexpr int ws_threads() {
  return 128 * (kWG + 1);
}
// The register split. A block starts with the cap __launch_bounds__ gives every thread (the register file over
// the threads, in multiples of 8: 168 with 384 threads, 128 with 512); setmaxnreg.inc then waits until the
// producer's setmaxnreg.dec has freed enough, so the consumers may take no more than the producer gives up,
// or they wait forever (a hang, not an error). With three warpgroups the producer gets 32: at 24 its walk over
// several blocks of work (a persistent launch) spilled 4 bytes; with two, 24 (the consumers keep 240).
template <int kWG>
constexpr int ws_entry_regs() {
  return 65536 / ws_threads<kWG>() / 8 * 8;
}
template <int kWG>
constexpr int ws_producer_regs() {
  return kWG == 2 ? 24 : 32;
}
template <int kWG>
constexpr int ws_consumer_regs() {
  return kWG == 2 ? 240 : 160;
}
template <int kWG>
constexpr bool ws_register_split_fits() {
  return 128 * (ws_entry_regs<kWG>() - ws_producer_regs<kWG>()) >=
         128 * kWG * (ws_consumer_regs<kWG>() - ws_entry_regs<kWG>());
}
static_assert(ws_register_split_fits<2>() && ws_register_split_fits<3>(),
              "the consumers' setmaxnreg.inc would wait for registers the producer never frees");

template <int D, int kWG>
constexpr int ws_stages() {
  // D=128: 32 KB Q + 3 × 64 KB, or with three warpgroups 48 KB Q + 2 × 64 KB; D=64: 16 or 24 KB Q + 5 × 32 KB.
  return D == 128 ? (kWG == 2 ? 3 : 2) : 5;
}

// The finalized output goes through a shared staging tile (staged_store.cuh) where it fits beside the Q tile
// and the K/V ring: everywhere but two warpgroups at D=128 (224 of 227 KB taken).
constexpr int kMaxDynamicSmem = 227 * 1024;
template <int D, int kWG>
constexpr int ws_stage_offset() {  // from the ring's end, 128-byte aligned
  return (KvRing<D, ws_stages<D, kWG>(), 64 * kWG>::kSmemBytes + 127) / 128 * 128;
}
template <int D, int kWG>
constexpr bool ws_stage_output() {
  return ws_stage_offset<D, kWG>() + kWG * kStageBytesPerWarpgroup<D> <= kMaxDynamicSmem;
}
template <int D, int kWG>
constexpr int ws_smem() {
  return ws_stage_output<D, kWG>() ? ws_stage_offset<D, kWG>() + kWG * kStageBytesPerWarpgroup<D>
                                   : KvRing<D, ws_stages<D, kWG>(), 64 * kWG>::kSmemBytes;
}

// This warpgroup's query rows. The kernel counts Q rows in slices of 64, one per consumer warpgroup
// (args.tile_start holds each chunk's first slice: launch_attention_hopper_ws recounts it), and a tile is kWG
// consecutive slices, which may come from different chunks: a chunk pads only its last slice, where 192-row
// tiles padded every chunk to a multiple of 192 (4.1–4.3 % slower with Q in two chunks of 4096 at D=128,
// bench/kernel/NOTES.md). Slices past the last chunk have no valid row. The QTile is the one the shared code
// (init_rows, store_rows) expects for the whole tile, whose rows are row0 + 16·warp + ... with warp counted over
// all consumer warps: row0 is the slice's first row less 64·wg; valid counts the slice's rows.
template <int kWG>
__device__ __forceinline__ QTile slice_q_tile(const AttentionArgs& args, int tile, int wg) {
  QTile qt = find_q_tile<64>(args, tile * kWG + wg);
  qt.row0 -= 64 * wg;
  qt.valid = qt.valid < 0 ? 0 : qt.valid;
  return qt;
}

// cp.async of this warpgroup's slice (its 128 threads) into its 64 rows of the kRowsM-row Q tile at s_q.
template <int D, int kRowsM>
__device__ __forceinline__ void load_q_slice(const QChunkArgs& qc, const QTile& qt, int b, int h, uint32_t s_q,
                                             int tid) {
  const int wg = tid >> 7;
  const uint16_t* base = qc.q + b * qc.q_sb + h * qc.q_sh + (qt.row0 + 64 * wg) * qc.q_ss;
  load_rows_async<D, 64, 128>(s_q, base, qc.q_ss, qt.valid, tid & 127,
                              [wg](int row, int chunk) { return sw128_offset<kRowsM>(64 * wg + row, chunk); });
  cp_async_commit();
}

// kTrace: the diagnostic instance that stamps every block of work into args.trace (block_trace.cuh).
template <typename T, int D, bool kPingPong, bool kOverlap, int kWG, bool kTrace = false>
__global__ void __launch_bounds__(ws_threads<kWG>(), 1)
    attention_hopper_ws_kernel(const __grid_constant__ TmaParams p) {
  // Three warpgroups get 160 registers: room for S, P and Õ at once at D=64 only; at D=128 each tile runs in turn.
  // With three, kPingPong means the rotation of TurnRotation.
  static_assert(kWG == 2 || (kWG == 3 && kOverlap == (D == 64)), "unsupported three-warpgroup variant");
  constexpr int kStages = ws_stages<D, kWG>();
  constexpr int kRowsM = 64 * kWG;
  constexpr int kConsumers = 128 * kWG;
  constexpr bool kStageOutput = ws_stage_output<D, kWG>();
  extern __shared__ __align__(1024) unsigned char smem[];
  const KvRing<D, kStages, kRowsM> ring(smem);
  const BlockMailbox mailbox(ring.s_mailbox);
  const AttentionArgs& args = p.args;
  // The work is linear over (Q tile, head, batch) items, some of them in pieces along K/V (split_merge.cuh):
  // args.blocks blocks of work. A thread block takes one when the grid has them all, several when the launch is
  // persistent (one thread block per SM; persistent_launch.h says when): in a static order or from a work queue
  // (block_queue.cuh). Then the producer streams the next block's K/V while the consumers still store the last
  // output, and the consumers load the next Q tile before they store: a block's set-up (Q, filling the ring, the
  // output) no longer runs alone, which matters where blocks are short (S = 4096: +3–4 % at D=128,
  // bench/kernel/NOTES.md).
  // Q tiles per (head, batch) and K/V tiles per item: computed in each role after its setmaxnreg (kept live
  // across it, they were spilled in the two-warpgroup kernels).
  const auto q_tiles_of = [&] { return (args.tile_start[args.num_q] + kWG - 1) / kWG; };
  const auto kv_tiles_of = [&] {
    int tiles = 0;
    for (int c = 0; c < args.num_kv; ++c) tiles += static_cast<int>((args.kv[c].len + kWgBlockN - 1) / kWgBlockN);
    return tiles;
  };
  if (threadIdx.x == 0) {
    mailbox.init(kConsumers);
    ring.init(kConsumers);  // its fence covers the mailbox's barriers too
  }
  __syncthreads();  // the barriers are initialized (the only block-wide barrier)

  // The role as a warp-uniform value (a shuffle from lane 0), so that the branch below is uniform for ptxas.
  const int role = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);
  if (role == 0) {  // producer warpgroup
    setmaxnreg_dec<ws_producer_regs<kWG>()>();
    if (threadIdx.x == 0) {
      const int q_tiles = q_tiles_of(), all_tiles = kv_tiles_of();
      int i = 0;  // ring index: runs on across the blocks of work, as the consumers' does
      int n = 0;  // blocks posted
      int bx = first_block(args);
      mailbox.post(n, bx);
      while (bx < args.blocks) {
        const WorkItem w = work_item(args, q_tiles, bx);
        int num_tiles;
        KVCursor<kWgBlockN> cur;
        cur.seek(args, piece_tiles(w, all_tiles, num_tiles));
        uint64_t waited = 0;  // kTrace: the producer's waits for empty stages while it loads this block's tiles
        // A chunk that may still be landing (KVChunkArgs::ready) is waited for where the walk enters it: the
        // call was issued without its stream waiting for the transfer.
        if (num_tiles > 0) wait_landed(args.kv[cur.chunk], w.h);
        for (const int end = i + num_tiles; i < end; ++i) {
          produce_tile<D, kStages>(p, cur, i, ring.s_kv, ring.s_full, ring.s_empty, w.h, w.b,
                                   kTrace ? &waited : nullptr);
          if (cur.offset == 0 && i + 1 < end) wait_landed(args.kv[cur.chunk], w.h);  // the next tile opens a chunk
        }
        if constexpr (kTrace) (static_cast<BlockTraceRecord*>(args.trace) + bx)->empty_wait = waited;
        bx = next_block(args, bx);
        mailbox.post(++n, bx);
      }
    }
  } else {  // consumer warpgroups
    setmaxnreg_inc<ws_consumer_regs<kWG>()>();
    const int tid = threadIdx.x - 128;  // index among the consumer threads: rows 16·(tid/32).. of the tile
    const int wg = tid >> 7;
    using Rows = WgmmaRowLoop<T, D, kRowsM>;
    const int q_tiles = q_tiles_of(), all_tiles = kv_tiles_of();
    constexpr bool kRotation = kPingPong && kWG == 3;
    if constexpr (kRotation) TurnRotation{wg}.open();
    {
      const int bx = mailbox.wait(0);
      if (bx < args.blocks) {
        const WorkItem w = work_item(args, q_tiles, bx);
        const QTile qt = slice_q_tile<kWG>(args, w.tile, wg);
        load_q_slice<D, kRowsM>(args.q[qt.chunk], qt, w.b, w.h, ring.s_q, tid);
      }
    }
    // n: this thread block's n-th block of work, read from the mailbox whenever it is needed rather than kept
    // live through the main loop (the three-warpgroup kernel at D=64 has no register to spare there).
    // base: the ring index of the block's first K/V tile.
    for (int n = 0, base = 0; mailbox.read(n) < args.blocks; ++n) {
      Rows rows;
      int num_tiles;  // this block's K/V tiles
      // The traced instance: the first consumer thread stamps this block's steps, each warpgroup's first thread
      // its own waits (nothing in the others).
      BlockTraceRecord* trace = nullptr;
      BlockTraceRecord* wg_trace = nullptr;
      if constexpr (kTrace) {
        if ((tid & 127) == 0) wg_trace = static_cast<BlockTraceRecord*>(args.trace) + mailbox.read(n);
        if (tid == 0) {
          trace = wg_trace;
          trace->start_ns = trace_global_ns();
        }
      }
      const auto stamp = [&](uint64_t BlockTraceRecord::*step) {
        if constexpr (kTrace) {
          if (trace != nullptr) trace->*step = trace_clock();
        }
      };
      stamp(&BlockTraceRecord::start);
      {
        const WorkItem w = work_item(args, q_tiles, mailbox.read(n));
        const QTile qt = slice_q_tile<kWG>(args, w.tile, wg);
        rows.start(args, args.q[qt.chunk], qt, w.b, w.h, ring.s_q, tid, w.pieces > 1 ? 0 : args.resume);  // pieces start empty
        rows.cur.seek(args, piece_tiles(w, all_tiles, num_tiles));
      }
      // Each warpgroup loads and reads only its own Q slice, so it meets only itself at block boundaries (named
      // barrier 4 + wg): the warpgroups do not fall into step there, and one's output phase runs under the
      // others' matrix products (SM cycles per launch at S=4096: -0.8 % at D=128, -4 % at D=64 against meeting
      // all consumers; H200, 2026-11-27, bench/kernel/NOTES.md).
      cp_async_wait<0>();
      fence_proxy_async();
      named_barrier_sync(4 + wg, 128);  // Q landed
      stamp(&BlockTraceRecord::q_landed);
      if constexpr (kTrace) {
        if (trace != nullptr) {
          trace->block = static_cast<uint64_t>(mailbox.read(n));
          trace->sm_tiles = (static_cast<uint64_t>(num_tiles) << 32) | trace_sm();
        }
      }

      using Turns = std::conditional_t<kRotation, TurnRotation, std::conditional_t<kPingPong, TurnTaking, NoTurns>>;
      Turns turns{};
      if constexpr (kRotation) {
        turns.wg = wg;
      } else if constexpr (kPingPong) {
        turns = TurnTaking{wg, kOverlap ? num_tiles + 1 : 2 * num_tiles, 2};
        if (wg == 1 && num_tiles > 0) named_barrier_arrive(2, 2 * 128);  // warpgroup 0 goes first
      }
      if constexpr (kOverlap) {
        overlapped_tiles(
            rows, args, ring, num_tiles, turns, [](uint32_t bar, uint32_t parity) { mbar_wait_spin(bar, parity); },
            [](int) {}, base, true);
      } else {
        uint64_t waited = 0;  // kTrace: this warpgroup's cycles in the "full" waits
        for (int j = base; j < base + num_tiles; ++j) {
          uint64_t t0 = 0;
          if constexpr (kTrace) t0 = trace_clock();
          mbar_wait_spin(ring.full(j), ring.parity(j));
          if constexpr (kTrace) waited += trace_clock() - t0;
          rows.template sequential<kRotation>(args, ring.k(j), ring.v(j), turns);
          mbar_arrive(ring.empty(j));
          if (kTrace && j == base) stamp(&BlockTraceRecord::first_tile);
          if (kTrace && j == base + 8 && wg_trace != nullptr) wg_trace->tile8[wg] = trace_clock();
        }
        if (kTrace && wg_trace != nullptr) wg_trace->full_wait[wg] = waited;
      }
      stamp(&BlockTraceRecord::tiles_done);
      base += num_tiles;
      // The Q slice was read for the last time (the last Q·Kᵀ was waited for): the next one may load while this
      // block's output is stored.
      named_barrier_sync(4 + wg, 128);
      stamp(&BlockTraceRecord::met);
      const int next = mailbox.wait(n + 1);
      if (next < args.blocks) {
        const WorkItem wn = work_item(args, q_tiles, next);
        const QTile qn = slice_q_tile<kWG>(args, wn.tile, wg);
        load_q_slice<D, kRowsM>(args.q[qn.chunk], qn, wn.b, wn.h, ring.s_q, tid);
      }
      stamp(&BlockTraceRecord::q_issued);
      const WorkItem we = work_item(args, q_tiles, mailbox.read(n));
      mailbox.release(n);
      const QTile qt = slice_q_tile<kWG>(args, we.tile, wg);
      const QChunkArgs& qc = args.q[qt.chunk];
      if (we.pieces == 1 || merge_pieces<D, kRowsM>(args, qc, we, rows.st, ring.s_word, tid, kConsumers)) {
        if (kStageOutput && args.staged_output) {
          // The staging tiles follow the ring (ws_smem: its 1024 bytes of alignment slack are before s_q).
          const uint32_t s_stage = ring.s_q + (ws_stage_offset<D, kWG>() - 1024) + wg * kStageBytesPerWarpgroup<D>;
          store_rows_staged<T, D>(qc, qt, we.b, we.h, rows.st, s_stage, tid, wg, 4 + wg);
        } else {
          store_rows<T, D>(args, qc, qt, we.b, we.h, rows.st, tid);
        }
      }
      stamp(&BlockTraceRecord::stored);
      if constexpr (kTrace) {
        if (trace != nullptr) trace->end_ns = trace_global_ns();
      }
    }
    if constexpr (kRotation) TurnRotation{wg}.close();
    // A helper's stores went to another GPU's memory: complete them before the launch ends (shared_work.h).
    if (args.share_role == 2) __threadfence_system();
  }
}

// The kernel for the options: three warpgroups overlap at D=64 and run tiles in turn at D=128.
template <typename T, int D>
auto hopper_ws_kernel(const WsOptions& o) -> void (*)(TmaParams) {
  if (o.consumer_warpgroups == 3)
    return o.ping_pong ? attention_hopper_ws_kernel<T, D, true, D == 64, 3>  // in rotation (TurnRotation)
                       : attention_hopper_ws_kernel<T, D, false, D == 64, 3>;
  if (o.ping_pong)
    return o.overlap ? attention_hopper_ws_kernel<T, D, true, true, 2> : attention_hopper_ws_kernel<T, D, true, false, 2>;
  return o.overlap ? attention_hopper_ws_kernel<T, D, false, true, 2> : attention_hopper_ws_kernel<T, D, false, false, 2>;
}

cudaError_t write_block_trace(const void* device_records, int64_t blocks, const char* path) {
  std::vector<BlockTraceRecord> recs(static_cast<size_t>(blocks));
  cudaError_t err = cudaMemcpy(recs.data(), device_records, recs.size() * sizeof(BlockTraceRecord),
                               cudaMemcpyDeviceToHost);
  if (err != cudaSuccess) return err;
  FILE* f = std::fopen(path, "w");
  if (f == nullptr) {
    std::fprintf(stderr, "SF_CUDA_BLOCK_TRACE: cannot write '%s'\n", path);
    return cudaSuccess;  // a diagnostic's file: the attention result itself is fine
  }
  std::fprintf(f, "block,sm,kv_tiles,start_ns,end_ns,start,q_landed,first_tile,tiles_done,met,q_issued,stored,"
                 "full_wait0,full_wait1,full_wait2,tile8_0,tile8_1,tile8_2,empty_wait\n");
  using ull = unsigned long long;
  for (const BlockTraceRecord& r : recs)
    std::fprintf(f, "%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
                 ull{r.block}, ull{r.sm_tiles & 0xffffffffu}, ull{r.sm_tiles >> 32}, ull{r.start_ns}, ull{r.end_ns},
                 ull{r.start}, ull{r.q_landed}, ull{r.first_tile}, ull{r.tiles_done}, ull{r.met}, ull{r.q_issued},
                 ull{r.stored}, ull{r.full_wait[0]}, ull{r.full_wait[1]}, ull{r.full_wait[2]}, ull{r.tile8[0]},
                 ull{r.tile8[1]}, ull{r.tile8[2]}, ull{r.empty_wait});
  std::fclose(f);
  return cudaSuccess;
}

// SF_CUDA_BLOCK_TRACE=file: the launch runs the traced kernel where there is one (three warpgroups, bf16, D=128),
// waits for it and writes its records (block_trace.cuh) to the file, one CSV line per block of work; the last
// launch's records stay. A diagnostic (bench/kernel/block_trace.sh), far slower than an untraced launch.
// Runs the traced kernel instance `traced` as the launch would run its kernel, waits for it and writes the
// records to `path`.
cudaError_t launch_traced(void (*traced)(TmaParams), TmaParams& prm, int64_t grid, int threads, int smem,
                          const char* path, cudaStream_t stream) {
  AttentionArgs& a = prm.args;
  cudaError_t err = cudaFuncSetAttribute(traced, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  const size_t bytes = static_cast<size_t>(a.blocks) * sizeof(BlockTraceRecord);
  if (err == cudaSuccess) err = cudaMalloc(&a.trace, bytes);
  if (err != cudaSuccess) return err;
  err = cudaMemsetAsync(a.trace, 0, bytes, stream);
  if (err == cudaSuccess) {
    traced<<<static_cast<unsigned>(grid), threads, smem, stream>>>(prm);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  if (err == cudaSuccess) err = write_block_trace(a.trace, a.blocks, path);
  cudaFree(a.trace);
  a.trace = nullptr;
  return err;
}

template <int D>
int ws_smem_bytes(int consumer_warpgroups) {
  return consumer_warpgroups == 3 ? ws_smem<D, 3>() : ws_smem<D, 2>();
}

// SF_CUDA_SPLIT_TAIL (kernel_settings.h): auto = plan_tail_split; off = never split; every item in n pieces
// (tests); the last wave's items in n pieces (comparisons).
TailSplit choose_split(const SplitSetting& setting, int64_t items, int64_t kv_tiles, int64_t slots) {
  switch (setting.mode) {
    case SplitSetting::Mode::kAuto:
      return plan_tail_split(items, kv_tiles, slots, 4 * slots);
    case SplitSetting::Mode::kLastWave:
      return forced_last_wave_split(items, kv_tiles, slots, setting.pieces);
    case SplitSetting::Mode::kEvery:
      return forced_tail_split(kv_tiles, setting.pieces);
    case SplitSetting::Mode::kOff:
      break;
  }
  return TailSplit{};
}

// SF_CUDA_PERSISTENT (kernel_settings.h) as launch_grid's limit: < 0 automatic, 0 never, n at most n thread blocks.
int64_t choose_grid(int64_t persistent, int64_t blocks, int64_t slots, int64_t kv_tiles, bool queued) {
  const int64_t limit = persistent == KernelSettings::kEverySlot ? std::max<int64_t>(slots, 1) : persistent;
  return launch_grid(blocks, slots, kv_tiles, limit, queued);
}
// Whether every Q chunk's output rows may be written 16 bytes at a time (staged_store.cuh).
bool output_aligned16(const AttentionArgs& a) {
  for (int i = 0; i < a.num_q; ++i) {
    const QChunkArgs& q = a.q[i];
    if (reinterpret_cast<uintptr_t>(q.out) % 16 != 0 || q.out_sb % 8 != 0 || q.out_ss % 8 != 0 || q.out_sh % 8 != 0)
      return false;
  }
  return true;
}

// Recounts the Q chunks of `a` in 64-row slices (slice_q_tile); the number of slices, or -1 past 2^31.
int64_t count_slices(AttentionArgs& a) {
  int64_t slices = 0;
  for (int i = 0; i < a.num_q; ++i) {
    a.tile_start[i] = static_cast<int32_t>(slices);
    slices += (a.q[i].len + 63) / 64;
    if (slices > 0x7fffffff) return -1;
  }
  a.tile_start[a.num_q] = static_cast<int32_t>(slices);
  return slices;
}

// The owner's stream arms its shared queue (shared_work.h): the split items' arrival counts and the queue zeroed,
// the plan written, then `go` released at system scope, after which helpers start taking blocks.
__global__ void arm_shared_kernel(SharedHeader* h, unsigned* counts, unsigned n_counts, unsigned long long epoch,
                                  unsigned blocks, unsigned split_from, unsigned splits, unsigned signature,
                                  unsigned reserve) {
  for (unsigned i = threadIdx.x; i < n_counts; i += blockDim.x) counts[i] = 0;
  __syncthreads();
  if (threadIdx.x != 0) return;
  h->queue = 0;
  h->helped = 0;
  h->plan[0] = blocks, h->plan[1] = split_from, h->plan[2] = splits, h->plan[3] = signature;
  h->reserve = reserve;
  __threadfence_system();
  asm volatile("st.release.sys.global.u64 [%0], %1;\n" ::"l"(&h->go), "l"(epoch) : "memory");
}

// A helper's stream, before its launch: waits until the owner has armed the call's queue (its `go` reaches the
// epoch, acquired at system scope, so that the owner's accumulator and Q rows are there for the kernel after it).
// A kernel of its own, not the producer's first steps: the spin cost the two-warpgroup kernels' producers (24
// registers) 28 more bytes of spills. No hang guard, as for the landed flags: an owner that never arms is
// bounded by the host's watchdog at the barrier that follows the helper call.
__global__ void wait_for_owner_kernel(const SharedHeader* h, unsigned long long epoch) {
  for (;;) {
    unsigned long long go;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];\n" : "=l"(go) : "l"(&h->go) : "memory");
    if (go >= epoch) return;
    __nanosleep(512);
  }
}

// A launch that takes a whole shared call (WsOptions::shared): the work queue in the owner's workspace, the tail
// cut by plan_shared_tail into the workspace's slots, every thread block taking its blocks from the queue.
cudaError_t launch_shared(void (*kernel)(TmaParams), TmaParams& prm, int64_t items, int64_t kv_tiles, int64_t slots,
                          int rows_m, int head_dim, int batch, int threads, int smem, const WsOptions& o,
                          cudaStream_t stream) {
  AttentionArgs& a = prm.args;
  const SharedWork& w = *o.shared;
  const KernelSettings& set = o.launch;
  const SharedLayout lay = shared_layout(w.bytes, rows_m, head_dim);
  const TailSplit tail = plan_shared_tail(items, kv_tiles, slots, lay.max_pieces, set.share_waves, set.share_pieces);
  char* base = static_cast<char*>(w.workspace);
  a.queue = nullptr;
  a.split_from = 0x7fffffff, a.splits = 1;
  if (tail.splits > 1) {
    a.split_from = static_cast<int32_t>(tail.split_from), a.splits = tail.splits;
    a.split_count = reinterpret_cast<unsigned*>(base + lay.counts);
    a.split_ml = reinterpret_cast<float*>(base + lay.ml);
    a.split_o = reinterpret_cast<float*>(base + lay.o);
  }
  a.blocks = static_cast<int32_t>(tail.splits > 1 ? tail.split_from + tail.pieces(items) : items);
  a.staged_output = a.finalize && output_aligned16(a) && set.stage_output ? 1 : 0;
  a.share_role = w.helper ? 2 : 1;
  a.share = reinterpret_cast<SharedHeader*>(base);
  a.share_epoch = w.epoch;
  GeometrySignature sig;
  for (const int64_t v : {items, kv_tiles, int64_t{rows_m}, int64_t{a.heads}, int64_t{batch}, int64_t{a.resume},
                          int64_t{a.finalize}, int64_t{a.num_q}, int64_t{a.num_kv}})
    sig.add(v);
  for (int i = 0; i < a.num_q; ++i) sig.add(a.q[i].len);
  for (int i = 0; i < a.num_kv; ++i) sig.add(a.kv[i].len);
  const unsigned plan[4] = {static_cast<unsigned>(a.blocks), static_cast<unsigned>(a.split_from),
                            static_cast<unsigned>(a.splits), sig.h};
  for (int i = 0; i < 4; ++i) a.share_plan[i] = plan[i];
  const int64_t grid = choose_grid(set.persistent, a.blocks, slots, kv_tiles, true);
  if (w.helper) {
    wait_for_owner_kernel<<<1, 1, 0, stream>>>(a.share, w.epoch);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  } else {
    const auto counts = static_cast<unsigned>(tail.splits > 1 ? (items - tail.split_from) : 0);
    const auto reserve = static_cast<unsigned>((grid * set.share_reserve_pct + 99) / 100);
    arm_shared_kernel<<<1, 256, 0, stream>>>(a.share, a.split_count, counts, w.epoch, plan[0], plan[1], plan[2],
                                             plan[3], reserve);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  kernel<<<static_cast<unsigned>(grid), threads, smem, stream>>>(prm);
  return cudaGetLastError();
}

}  // namespace

cudaError_t arm_shared_unplanned(const SharedWork& w, cudaStream_t stream) {
  arm_shared_kernel<<<1, 32, 0, stream>>>(static_cast<SharedHeader*>(w.workspace), nullptr, 0, w.epoch, 0, 0, 0, 0,
                                          0);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_attention_hopper_ws(const AttentionArgs& args, int batch, const WsOptions& o, cudaStream_t stream) {
  if (o.consumer_warpgroups != 2 && (o.consumer_warpgroups != 3 || o.overlap != (D == 64)))
    return cudaErrorInvalidValue;
  thread_local TmaParams prm;  // ~14 KB, kept off the stack; the launch copies it into the kernel's parameters
  const cudaError_t built = fill_tma_params(args, batch, D, std::is_same_v<T, __half>, prm);
  if (built != cudaSuccess) return built;
  AttentionArgs& a = prm.args;
  const int64_t slices = count_slices(a);
  if (slices < 0) return cudaErrorInvalidConfiguration;
  const int64_t tiles = (slices + o.consumer_warpgroups - 1) / o.consumer_warpgroups;
  const int64_t items = tiles * args.heads * batch;
  if (items > (int64_t{1} << 30)) return cudaErrorInvalidConfiguration;  // the grid is linear (split_merge.cuh)
  const int threads = 128 * (o.consumer_warpgroups + 1);  // the producer warpgroup and the consumers
  const int rows_m = 64 * o.consumer_warpgroups;
  const int smem = ws_smem_bytes<D>(o.consumer_warpgroups);
  auto kernel = hopper_ws_kernel<T, D>(o);
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;

  // How many blocks run at once, for the tail split and the persistent grid.
  int device = 0, sms = 0, per_sm = 0;
  if ((err = cudaGetDevice(&device)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem)) != cudaSuccess) return err;
  int64_t kv_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) kv_tiles += (args.kv[c].len + kWgBlockN - 1) / kWgBlockN;
  const KernelSettings& set = o.launch;
  const bool forced = set.split.mode == SplitSetting::Mode::kEvery;
  const int64_t slots = resident_slots(sms, per_sm, set.comm_sms);
  if (o.shared != nullptr)
    return launch_shared(kernel, prm, items, kv_tiles, slots, rows_m, D, batch, threads, smem, o, stream);
  TailSplit split = choose_split(set.split, items, kv_tiles, slots);
  const auto blocks_of = [items](const TailSplit& t) { return t.splits > 1 ? t.split_from + t.pieces(items) : items; };
  int64_t grid = choose_grid(set.persistent, blocks_of(split), slots, kv_tiles, set.queue);
  const bool queue = set.queue && grid < blocks_of(split);
  a.split_from = 0x7fffffff, a.splits = 1, a.queue = nullptr;
  // SF_CUDA_STAGE_OUTPUT=0: the finalized output from registers even where it could be staged (tests, comparisons).
  a.staged_output = a.finalize && output_aligned16(a) && set.stage_output ? 1 : 0;
  if (split.splits > 1 || queue) {
    const int64_t pieces = split.pieces(items);
    const int64_t counters = split.splits > 1 ? pieces / split.splits : 0;
    SplitWorkspace ws;
    err = split_workspace(stream, static_cast<size_t>(pieces * rows_m * D), static_cast<size_t>(pieces * rows_m * 2),
                          static_cast<size_t>(counters), ws);
    if (err == cudaSuccess) {
      if (split.splits > 1) {
        a.split_from = static_cast<int32_t>(split.split_from), a.splits = split.splits;
        a.split_o = ws.o, a.split_ml = ws.ml, a.split_count = ws.count;
      }
      if (queue) a.queue = ws.queue;
    } else if (forced && split.splits > 1) {
      return err;
    } else {
      cudaGetLastError();  // no workspace (out of memory, graph capture): run unsplit, in the static order
      split = TailSplit{};
      grid = choose_grid(set.persistent, items, slots, kv_tiles, false);
    }
  }
  a.blocks = static_cast<int32_t>(blocks_of(split));
  if constexpr (std::is_same_v<T, __nv_bfloat16> && D == 128) {
    if (set.block_trace != nullptr && o.consumer_warpgroups == 3)
      return launch_traced(o.ping_pong ? attention_hopper_ws_kernel<T, D, true, false, 3, true>
                                       : attention_hopper_ws_kernel<T, D, false, false, 3, true>,
                           prm, grid, threads, smem, set.block_trace, stream);
  }
  kernel<<<static_cast<unsigned>(grid), threads, smem, stream>>>(prm);
  return cudaGetLastError();
}

template cudaError_t launch_attention_hopper_ws<__nv_bfloat16, 64>(const AttentionArgs&, int, const WsOptions&,
                                                            cudaStream_t);
template cudaError_t launch_attention_hopper_ws<__nv_bfloat16, 128>(const AttentionArgs&, int, const WsOptions&,
                                                            cudaStream_t);
template cudaError_t launch_attention_hopper_ws<__half, 64>(const AttentionArgs&, int, const WsOptions&,
                                                            cudaStream_t);
template cudaError_t launch_attention_hopper_ws<__half, 128>(const AttentionArgs&, int, const WsOptions&,
                                                            cudaStream_t);

}  // namespace sf::cuda::detail
