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
// while the other's matrix products occupy the tensor cores.
//
// setmaxnreg only takes effect when the kernel has a register cap at entry (__launch_bounds__(threads, 1): 168
// with 384 threads, 128 with 512) and each role is one branch of a single if/else with no code after it (ptxas
// warns C7508 otherwise): the kernel ends inside both branches, and everything they call is inlined. One more
// condition, found here: no __trap() in the consumer's main loop (mbar_wait's hang guard): with it ptxas 13.0
// kept the consumer code to ~184 registers whatever setmaxnreg said, spilled and serialized the wgmma (C7512);
// the consumers wait with mbar_wait_spin.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "persistent_launch.h"
#include "split_merge.cuh"
#include "split_workspace.cuh"
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

template <typename T, int D, bool kPingPong, bool kOverlap, int kWG>
__global__ void __launch_bounds__(ws_threads<kWG>(), 1)
    attention_hopper_ws_kernel(const __grid_constant__ TmaParams p) {
  // Three warpgroups get 160 registers: room for S, P and Õ at once at D=64 only; at D=128 each tile runs in turn.
  static_assert(kWG == 2 || (kWG == 3 && !kPingPong && kOverlap == (D == 64)), "unsupported three-warpgroup variant");
  constexpr int kStages = ws_stages<D, kWG>();
  constexpr int kRowsM = 64 * kWG;
  constexpr int kConsumers = 128 * kWG;
  extern __shared__ __align__(1024) unsigned char smem[];
  const KvRing<D, kStages, kRowsM> ring(smem);
  const AttentionArgs& args = p.args;
  // The work is linear over (Q tile, head, batch) items, some of them in pieces along K/V (split_merge.cuh):
  // args.blocks blocks of work. A thread block takes blocks blockIdx.x, + gridDim.x, ... in turn: one each when
  // the grid has them all, several when the launch is persistent (one thread block per SM; choose_grid says
  // when). Then the producer streams the next block's K/V while the consumers still store the last output, and
  // the consumers load the next Q tile before they store: a block's set-up (Q, filling the ring, the output) no
  // longer runs alone, which matters where blocks are short (S = 4096: +3–4 % at D=128, bench/kernel/NOTES.md).
  const int q_tiles = args.tile_start[args.num_q];
  int all_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) all_tiles += static_cast<int>((args.kv[c].len + kWgBlockN - 1) / kWgBlockN);
  if (threadIdx.x == 0) ring.init(kConsumers);
  __syncthreads();  // the barriers are initialized (the only block-wide barrier)

  // The role as a warp-uniform value (a shuffle from lane 0), so that the branch below is uniform for ptxas.
  const int role = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);
  if (role == 0) {  // producer warpgroup
    setmaxnreg_dec<ws_producer_regs<kWG>()>();
    if (threadIdx.x == 0) {
      int i = 0;  // ring index: runs on across the blocks of work, as the consumers' does
      for (int bx = static_cast<int>(blockIdx.x); bx < args.blocks; bx += gridDim.x) {
        const WorkItem w = work_item(args, q_tiles, bx);
        int num_tiles;
        KVCursor<kWgBlockN> cur;
        cur.seek(args, piece_tiles(w, all_tiles, num_tiles));
        for (const int end = i + num_tiles; i < end; ++i)
          produce_tile<D, kStages>(p, cur, i, ring.s_kv, ring.s_full, ring.s_empty, w.h, w.b);
      }
    }
  } else {  // consumer warpgroups
    setmaxnreg_inc<ws_consumer_regs<kWG>()>();
    const int tid = threadIdx.x - 128;  // index among the consumer threads: rows 16·(tid/32).. of the tile
    const int wg = tid >> 7;
    using Rows = WgmmaRowLoop<T, D, kRowsM>;
    int bx = static_cast<int>(blockIdx.x);
    {
      const WorkItem w = work_item(args, q_tiles, bx);
      const QTile qt = find_q_tile<kRowsM>(args, w.tile);
      Rows::load_q(args.q[qt.chunk], qt, w.b, w.h, ring.s_q, tid);
    }
    for (int base = 0; bx < args.blocks; bx += gridDim.x) {  // base: the ring index of this block's first tile
      Rows rows;
      int num_tiles;  // this block's K/V tiles
      {
        const WorkItem w = work_item(args, q_tiles, bx);
        const QTile qt = find_q_tile<kRowsM>(args, w.tile);
        rows.start(args, args.q[qt.chunk], qt, w.b, w.h, ring.s_q, tid, w.pieces > 1 ? 0 : args.resume);  // pieces start empty
        rows.cur.seek(args, piece_tiles(w, all_tiles, num_tiles));
      }
      cp_async_wait<0>();
      fence_proxy_async();
      named_barrier_sync(1, kConsumers);  // Q landed for every consumer warpgroup

      using Turns = std::conditional_t<kPingPong, TurnTaking, NoTurns>;
      Turns turns{};
      if constexpr (kPingPong) {
        turns = TurnTaking{wg, kOverlap ? num_tiles + 1 : 2 * num_tiles, 2};
        if (wg == 1 && num_tiles > 0) named_barrier_arrive(2, 2 * 128);  // warpgroup 0 goes first
      }
      if constexpr (kOverlap) {
        overlapped_tiles(
            rows, args, ring, num_tiles, turns, [](uint32_t bar, uint32_t parity) { mbar_wait_spin(bar, parity); },
            [](int) {}, base, true);
      } else {
        for (int j = base; j < base + num_tiles; ++j) {
          mbar_wait_spin(ring.full(j), ring.parity(j));
          rows.sequential(args, ring.k(j), ring.v(j), turns);
          mbar_arrive(ring.empty(j));
        }
      }
      base += num_tiles;
      // Every consumer warpgroup is done with the Q tile (its last Q·Kᵀ was waited for): the next one may load
      // while this block's output is stored.
      named_barrier_sync(1, kConsumers);
      const int next = bx + static_cast<int>(gridDim.x);
      if (next < args.blocks) {
        const WorkItem wn = work_item(args, q_tiles, next);
        const QTile qn = find_q_tile<kRowsM>(args, wn.tile);
        Rows::load_q(args.q[qn.chunk], qn, wn.b, wn.h, ring.s_q, tid);
      }
      // The item again, from bx, so that none of it stays live across the main loop (the three-warpgroup kernel
      // at D=64 has no register to spare there).
      const WorkItem we = work_item(args, q_tiles, bx);
      const QTile qt = find_q_tile<kRowsM>(args, we.tile);
      const QChunkArgs& qc = args.q[qt.chunk];
      if (we.pieces == 1 || merge_pieces<D, kRowsM>(args, qc, we, rows.st, ring.s_word, tid, kConsumers))
        store_rows<T, D>(args, qc, qt, we.b, we.h, rows.st, tid);
    }
  }
}

// The kernel for the options: three warpgroups overlap at D=64 and run tiles in turn at D=128.
template <typename T, int D>
auto hopper_ws_kernel(const WsOptions& o) -> void (*)(TmaParams) {
  if (o.consumer_warpgroups == 3) return attention_hopper_ws_kernel<T, D, false, D == 64, 3>;
  if (o.ping_pong)
    return o.overlap ? attention_hopper_ws_kernel<T, D, true, true, 2> : attention_hopper_ws_kernel<T, D, true, false, 2>;
  return o.overlap ? attention_hopper_ws_kernel<T, D, false, true, 2> : attention_hopper_ws_kernel<T, D, false, false, 2>;
}

template <int D>
int ws_smem_bytes(int consumer_warpgroups) {
  return consumer_warpgroups == 3 ? KvRing<D, ws_stages<D, 3>(), 192>::kSmemBytes
                                  : KvRing<D, ws_stages<D, 2>(), 128>::kSmemBytes;
}

// SF_CUDA_SPLIT_TAIL: unset or "auto" = plan_tail_split, "0" or "off" = never split, n >= 2 = every item in n
// pieces (tests). Read at every launch, like SF_CUDA_ATTENTION_PATH.
TailSplit choose_split(int64_t items, int64_t kv_tiles, int64_t slots, bool& forced) {
  const char* env = std::getenv("SF_CUDA_SPLIT_TAIL");
  forced = false;
  if (env == nullptr || std::strcmp(env, "auto") == 0) return plan_tail_split(items, kv_tiles, slots, 4 * slots);
  const long n = std::strtol(env, nullptr, 10);
  if (n < 2) return TailSplit{};
  forced = true;
  return forced_tail_split(kv_tiles, static_cast<int>(std::min(n, 64L)));
}

// SF_CUDA_PERSISTENT: unset or "auto" = launch_grid decides (persistent_launch.h), "0" or "off" = one thread
// block per block of work, n >= 1 = at most n thread blocks (tests). Read at every launch.
int64_t choose_grid(int64_t blocks, int64_t slots, int64_t kv_tiles) {
  const char* env = std::getenv("SF_CUDA_PERSISTENT");
  int64_t limit = -1;
  if (env != nullptr && std::strcmp(env, "auto") != 0)
    limit = std::strcmp(env, "off") == 0 ? 0 : std::max<int64_t>(std::strtol(env, nullptr, 10), 0);
  return launch_grid(blocks, slots, kv_tiles, limit);
}

}  // namespace

template <typename T, int D>
cudaError_t launch_attention_hopper_ws(const AttentionArgs& args, int total_tiles, int batch, const WsOptions& o,
                                       cudaStream_t stream) {
  if (o.consumer_warpgroups != 2 && (o.consumer_warpgroups != 3 || o.ping_pong || o.overlap != (D == 64)))
    return cudaErrorInvalidValue;
  const int64_t items = static_cast<int64_t>(total_tiles) * args.heads * batch;
  if (items > (int64_t{1} << 30)) return cudaErrorInvalidConfiguration;  // the grid is linear (split_merge.cuh)
  thread_local TmaParams prm;  // ~14 KB, kept off the stack; the launch copies it into the kernel's parameters
  const cudaError_t built = fill_tma_params(args, batch, D, std::is_same_v<T, __half>, prm);
  if (built != cudaSuccess) return built;
  const int threads = 128 * (o.consumer_warpgroups + 1);  // the producer warpgroup and the consumers
  const int rows_m = 64 * o.consumer_warpgroups;
  const int smem = ws_smem_bytes<D>(o.consumer_warpgroups);
  auto kernel = hopper_ws_kernel<T, D>(o);
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;

  // How many blocks run at once, for the tail split.
  int device = 0, sms = 0, per_sm = 0;
  if ((err = cudaGetDevice(&device)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem)) != cudaSuccess) return err;
  int64_t kv_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) kv_tiles += (args.kv[c].len + kWgBlockN - 1) / kWgBlockN;
  bool forced = false;
  const int64_t slots = static_cast<int64_t>(sms) * std::max(per_sm, 1);
  TailSplit split = choose_split(items, kv_tiles, slots, forced);
  AttentionArgs& a = prm.args;
  a.split_from = 0x7fffffff, a.splits = 1;
  if (split.splits > 1) {
    const int64_t pieces = split.pieces(items);
    SplitWorkspace ws;
    err = split_workspace(stream, static_cast<size_t>(pieces * rows_m * D), static_cast<size_t>(pieces * rows_m * 2),
                          static_cast<size_t>(pieces / split.splits), ws);
    if (err == cudaSuccess) {
      a.split_from = static_cast<int32_t>(split.split_from), a.splits = split.splits;
      a.split_o = ws.o, a.split_ml = ws.ml, a.split_count = ws.count;
    } else if (forced) {
      return err;
    } else {
      cudaGetLastError();  // no workspace (out of memory, graph capture): run unsplit
      split = TailSplit{};
    }
  }
  const int64_t blocks = split.splits > 1 ? split.split_from + split.pieces(items) : items;
  a.blocks = static_cast<int32_t>(blocks);
  kernel<<<static_cast<unsigned>(choose_grid(blocks, slots, kv_tiles)), threads, smem, stream>>>(prm);
  return cudaGetLastError();
}

template cudaError_t launch_attention_hopper_ws<__nv_bfloat16, 64>(const AttentionArgs&, int, int, const WsOptions&,
                                                                   cudaStream_t);
template cudaError_t launch_attention_hopper_ws<__nv_bfloat16, 128>(const AttentionArgs&, int, int, const WsOptions&,
                                                                    cudaStream_t);
template cudaError_t launch_attention_hopper_ws<__half, 64>(const AttentionArgs&, int, int, const WsOptions&,
                                                            cudaStream_t);
template cudaError_t launch_attention_hopper_ws<__half, 128>(const AttentionArgs&, int, int, const WsOptions&,
                                                             cudaStream_t);

}  // namespace sf::cuda::detail
