// The warp-specialized Hopper attention kernel (sm_90a): a producer warpgroup and two or three consumer
// warpgroups.
//
// 384 or 512 threads. Warpgroup 0 is the producer: after `setmaxnreg.dec` to 24 registers, one of its threads
// streams every K/V tile of the block by TMA into a kStages-deep mbarrier ring ("full": the tile's bytes landed;
// "empty": every consumer thread is done reading the stage), as far ahead as the ring allows. The other
// warpgroups are the consumers (64 query rows each): after `setmaxnreg.inc` (to 240 registers with two, 160 with
// three) they load their Q rows (cp.async), then run the same wgmma row loop as the other Hopper kernels without
// ever issuing a load: with kOverlap the next tile's Q·Kᵀ is overlapped with this tile's P·V and softmax (S, P
// and Õ live at once: ~225 registers at D=128, ~157 at D=64), without it each tile is Q·Kᵀ, softmax, P·V in turn
// (three warpgroups at D=128). With kPingPong two consumer warpgroups take turns issuing their wgmma batches
// (named barriers 2 and 3), so that one's softmax runs while the other's matrix products occupy the tensor cores.
//
// setmaxnreg only takes effect when the kernel has a register cap at entry (__launch_bounds__(threads, 1): 168
// with 384 threads, 128 with 512) and each role is one branch of a single if/else with no code after it (ptxas
// warns C7508 otherwise): the kernel ends inside both branches, and everything they call is inlined. One more
// condition, found here: no __trap() in the consumer's main loop (mbar_wait's hang guard): with it ptxas 13.0
// kept the consumer code to ~184 registers whatever setmaxnreg said, spilled and serialized the wgmma (C7512);
// the consumers wait with mbar_wait_spin.
#include <type_traits>

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
constexpr int kProducerRegs = 24;
template <int kWG>
constexpr int ws_consumer_regs() {
  return kWG == 2 ? 240 : 160;
}
static_assert(128 * (kProducerRegs + 2 * ws_consumer_regs<2>()) <= 65536, "register split exceeds the register file");
static_assert(128 * (kProducerRegs + 3 * ws_consumer_regs<3>()) <= 65536, "register split exceeds the register file");

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
  const int h = blockIdx.y, b = blockIdx.z;

  int num_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) num_tiles += static_cast<int>((args.kv[c].len + kWgBlockN - 1) / kWgBlockN);
  if (threadIdx.x == 0) ring.init(kConsumers);
  __syncthreads();  // the barriers are initialized (the only block-wide barrier)

  // The role as a warp-uniform value (a shuffle from lane 0), so that the branch below is uniform for ptxas.
  const int role = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);
  if (role == 0) {  // producer warpgroup
    setmaxnreg_dec<kProducerRegs>();
    if (threadIdx.x == 0) {
      KVCursor<kWgBlockN> cur;
      for (int i = 0; i < num_tiles; ++i)
        produce_tile<D, kStages>(p, cur, i, ring.s_kv, ring.s_full, ring.s_empty, h, b);
    }
  } else {  // consumer warpgroups
    setmaxnreg_inc<ws_consumer_regs<kWG>()>();
    const int tid = threadIdx.x - 128;  // index among the consumer threads: rows 16·(tid/32).. of the tile
    const int wg = tid >> 7;
    const QTile qt = find_q_tile<kRowsM>(args);
    const QChunkArgs& qc = args.q[qt.chunk];
    WgmmaRowLoop<T, D, kRowsM> rows;
    rows.begin(args, qc, qt, b, h, ring.s_q, tid);
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
          [](int) {});
    } else {
      for (int j = 0; j < num_tiles; ++j) {
        mbar_wait_spin(ring.full(j), ring.parity(j));
        rows.sequential(args, ring.k(j), ring.v(j), turns);
        mbar_arrive(ring.empty(j));
      }
    }
    store_rows<T, D>(args, qc, qt, b, h, rows.st, tid);
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

}  // namespace

template <typename T, int D>
cudaError_t launch_attention_hopper_ws(const AttentionArgs& args, int total_tiles, int batch, const WsOptions& o,
                                       cudaStream_t stream) {
  if (o.consumer_warpgroups != 2 && (o.consumer_warpgroups != 3 || o.ping_pong || o.overlap != (D == 64)))
    return cudaErrorInvalidValue;
  thread_local TmaParams prm;  // ~14 KB, kept off the stack; the launch copies it into the kernel's parameters
  const cudaError_t built = fill_tma_params(args, batch, D, std::is_same_v<T, __half>, prm);
  if (built != cudaSuccess) return built;
  const int smem = ws_smem_bytes<D>(o.consumer_warpgroups);
  auto kernel = hopper_ws_kernel<T, D>(o);
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(total_tiles), static_cast<unsigned>(args.heads), static_cast<unsigned>(batch));
  kernel<<<grid, 128 * (o.consumer_warpgroups + 1), smem, stream>>>(prm);
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
