// The TMA-fed Hopper attention kernel (sm_90a) without a producer warpgroup (the default before hopper_ws).
//
// Same block and math as attention_hopper.cu (two warpgroups of 64 query rows, wgmma, 128-key tiles, the next
// tile's Q·Kᵀ overlapped with this tile's P·V), but K/V tiles arrive by TMA: thread 0 issues the bulk tensor
// copies into a 3-stage ring guarded by mbarriers ("full": the tile's bytes landed; "empty": all 256 threads
// are done reading the stage), two tiles ahead, so no thread spends issue slots or barriers on loads. TMA
// zero-fills rows past a chunk's end, so tails need no special loads. Each K/V chunk gets its own tensor maps
// (built on the host per call), so chunks may live anywhere with any strides.
// With kPingPong the two warpgroups take turns issuing their wgmma batches (named barriers 1 and 2, FA3's
// "ping-pong"), so one warpgroup's softmax runs while the other's matrix products occupy the tensor cores.
// The warp-specialized variant with a producer warpgroup (setmaxnreg 24/240) is attention_hopper_ws.cu.
// Tile layouts: wgmma_tiles.cuh.
#include <algorithm>
#include <type_traits>

#include <cudaTypedefs.h>

#include "tma_maps.cuh"
#include "tma_primitives.cuh"
#include "wgmma_tiles.cuh"

namespace sf::cuda::detail {
namespace {

constexpr int kBlockN = kWgBlockN;
constexpr int kStages = 3;  // tile j in use (V), tile j+1 in use (K), tile j+2 landing

template <typename T, int D, bool kPingPong>
__global__ void __launch_bounds__(kThreads, 1) attention_hopper_tma_kernel(const __grid_constant__ TmaParams p) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const KvRing<D, kStages> ring(smem);
  const AttentionArgs& args = p.args;
  const int tid = threadIdx.x;
  const int wg = tid >> 7;
  const int h = blockIdx.y, b = blockIdx.z;

  int num_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) num_tiles += static_cast<int>((args.kv[c].len + kBlockN - 1) / kBlockN);
  KVCursor<kBlockN> load_cur;  // used by thread 0 only
  const auto produce = [&](int i) {
    produce_tile<D, kStages>(p, load_cur, i, ring.s_kv, ring.s_full, ring.s_empty, h, b);
  };
  if (tid == 0) {
    ring.init(kThreads);
    for (int i = 0; i < 2 && i < num_tiles; ++i) produce(i);
  }
  const QTile qt = find_q_tile(args);
  const QChunkArgs& qc = args.q[qt.chunk];
  WgmmaRowLoop<T, D> rows;
  rows.begin(args, qc, qt, b, h, ring.s_q, tid);
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();  // Q landed everywhere; the barriers are initialized

  using Turns = std::conditional_t<kPingPong, TurnTaking, NoTurns>;
  Turns turns{};
  if constexpr (kPingPong) {
    turns = TurnTaking{wg, num_tiles + 1, 1};
    if (wg == 1 && num_tiles > 0) named_barrier_arrive(1, 2 * 128);  // warpgroup 0 goes first
  }
  overlapped_tiles(
      rows, args, ring, num_tiles, turns, [](uint32_t bar, uint32_t parity) { mbar_wait(bar, parity); },
      [&](int j) {
        if (tid == 0 && j + 2 < num_tiles) produce(j + 2);
        __syncwarp();
      });
  store_rows<T, D>(args, qc, qt, b, h, rows.st);
}

}  // namespace

namespace {
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult query{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &query) !=
            cudaSuccess ||
        query != cudaDriverEntryPointSuccess)
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}

// A 4-D map over the [B, len, H, D] rows of one chunk, boxes of 64 elements × 128 rows, 128-byte swizzle, zero
// fill past the end. Dimensions after d are sorted by stride (size-1 ones placed outermost).
bool encode_rows_map(PFN_cuTensorMapEncodeTiled_v12000 encode, CUtensorMap* map, uint8_t (&pos)[4], const void* data,
                     int64_t len, int64_t sb, int64_t ss, int64_t sh, int64_t batch, int64_t heads, int D,
                     bool fp16) {
  struct Dim {
    int which;  // 0 head, 1 row, 2 batch
    uint64_t size, stride;
  };
  Dim dims[3] = {{0, static_cast<uint64_t>(heads), static_cast<uint64_t>(sh) * 2},
                 {1, static_cast<uint64_t>(len), static_cast<uint64_t>(ss) * 2},
                 {2, static_cast<uint64_t>(batch), static_cast<uint64_t>(sb) * 2}};
  uint64_t outer = static_cast<uint64_t>(D) * 2;
  for (const Dim& d : dims) outer = std::max(outer, d.stride * d.size);
  for (Dim& d : dims)
    if (d.size == 1) d.stride = outer;  // never stepped: any valid stride will do
  std::stable_sort(dims, dims + 3, [](const Dim& a, const Dim& c) { return a.stride < c.stride; });
  cuuint64_t gdim[4] = {static_cast<cuuint64_t>(D), 0, 0, 0};
  cuuint64_t gstride[3];
  cuuint32_t box[4] = {64, 1, 1, 1};
  const cuuint32_t estride[4] = {1, 1, 1, 1};
  for (int i = 0; i < 3; ++i) {
    gdim[i + 1] = dims[i].size;
    gstride[i] = dims[i].stride;
    box[i + 1] = dims[i].which == 1 ? kBlockN : 1;
    pos[dims[i].which] = static_cast<uint8_t>(i + 1);
  }
  pos[3] = 0;
  const CUresult r = encode(map, fp16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4,
                            const_cast<void*>(data), gdim, gstride, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}

}  // namespace

cudaError_t fill_tma_params(const AttentionArgs& args, int batch, int D, bool fp16, TmaParams& prm) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  prm.args = args;
  for (int c = 0; c < args.num_kv; ++c) {
    const KVChunkArgs& kv = args.kv[c];
    if (kv.len > 0x7fffffff) return cudaErrorNotSupported;  // TMA coordinates are 32-bit
    if (!encode_rows_map(encode, &prm.maps.k[c], prm.maps.k_pos[c], kv.k, kv.len, kv.k_sb, kv.k_ss, kv.k_sh, batch,
                         args.heads, D, fp16) ||
        !encode_rows_map(encode, &prm.maps.v[c], prm.maps.v_pos[c], kv.v, kv.len, kv.v_sb, kv.v_ss, kv.v_sh, batch,
                         args.heads, D, fp16))
      return cudaErrorNotSupported;
  }
  return cudaSuccess;
}

// Returns cudaErrorNotSupported, launching nothing, when a chunk cannot be described by a tensor map (the
// caller then uses the cp.async kernel).
template <typename T, int D>
cudaError_t launch_attention_hopper_tma(const AttentionArgs& args, int total_tiles, int batch, bool ping_pong,
                                        cudaStream_t stream) {
  thread_local TmaParams prm;  // ~14 KB, kept off the stack; the launch copies it into the kernel's parameters
  const cudaError_t built = fill_tma_params(args, batch, D, std::is_same_v<T, __half>, prm);
  if (built != cudaSuccess) return built;
  constexpr int kSmem = KvRing<D, kStages>::kSmemBytes;
  auto kernel = ping_pong ? attention_hopper_tma_kernel<T, D, true> : attention_hopper_tma_kernel<T, D, false>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(total_tiles), static_cast<unsigned>(args.heads), static_cast<unsigned>(batch));
  kernel<<<grid, kThreads, kSmem, stream>>>(prm);
  return cudaGetLastError();
}

template cudaError_t launch_attention_hopper_tma<__nv_bfloat16, 64>(const AttentionArgs&, int, int, bool, cudaStream_t);
template cudaError_t launch_attention_hopper_tma<__nv_bfloat16, 128>(const AttentionArgs&, int, int, bool, cudaStream_t);
template cudaError_t launch_attention_hopper_tma<__half, 64>(const AttentionArgs&, int, int, bool, cudaStream_t);
template cudaError_t launch_attention_hopper_tma<__half, 128>(const AttentionArgs&, int, int, bool, cudaStream_t);

}  // namespace sf::cuda::detail
