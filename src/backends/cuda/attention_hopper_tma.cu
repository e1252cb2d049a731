// The TMA-fed Hopper attention kernel (sm_90a), the default path.
//
// Same block and math as attention_hopper.cu (two warpgroups of 64 query rows, wgmma, 128-key tiles, the next
// tile's Q·Kᵀ overlapped with this tile's P·V), but K/V tiles arrive by TMA: thread 0 issues the bulk tensor
// copies into a 3-stage ring guarded by mbarriers ("full": the tile's bytes landed; "empty": all 256 threads
// are done reading the stage), two tiles ahead, so no thread spends issue slots or barriers on loads. TMA
// zero-fills rows past a chunk's end, so tails need no special loads. Each K/V chunk gets its own tensor maps
// (built on the host per call), so chunks may live anywhere with any strides.
// With kPingPong the two warpgroups take turns issuing their wgmma batches (named barriers 1 and 2, FA3's
// "ping-pong"), so one warpgroup's softmax runs while the other's matrix products occupy the tensor cores.
// (A warp-specialized variant with a producer warpgroup needs setmaxnreg to give the consumers more than 168
// registers; ptxas 13.0 did not honour it here and spilled, so the loads stay in the consumer warps.)
// Tile layouts: wgmma_tiles.cuh.
#include <algorithm>
#include <type_traits>

#include <cudaTypedefs.h>

#include "tma_primitives.cuh"
#include "wgmma_tiles.cuh"

namespace sf::cuda::detail {
namespace {

constexpr int kBlockN = kWgBlockN;
constexpr int kStages = 3;  // tile j in use (V), tile j+1 in use (K), tile j+2 landing

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

__device__ __forceinline__ void tma_rows(uint32_t dst, const CUtensorMap* map, const uint8_t (&pos)[4], int d0,
                                         int h, int row, int b, uint32_t bar) {
  const int c1 = pos[0] == 1 ? h : pos[1] == 1 ? row : b;
  const int c2 = pos[0] == 2 ? h : pos[1] == 2 ? row : b;
  const int c3 = pos[0] == 3 ? h : pos[1] == 3 ? row : b;
  tma_load_4d(dst, map, d0, c1, c2, c3, bar);
}

// Thread 0: TMA of K/V tile i (at cursor `cur`) into stage i % kStages, after every thread released the stage.
template <int D>
__device__ __forceinline__ void produce_tile(const TmaParams& p, KVCursor<kBlockN>& cur, int i, uint32_t s_kv,
                                             uint32_t s_full, uint32_t s_empty, int h, int b) {
  constexpr int kTileBytes = kBlockN * D * 2;
  const int s = i % kStages;
  if (i >= kStages) mbar_wait(s_empty + 8 * s, ((i / kStages) - 1) & 1);
  const uint32_t full = s_full + 8 * s;
  mbar_arrive_expect_tx(full, 2 * kTileBytes);
  const uint32_t dst = s_kv + s * 2 * kTileBytes;
  const int c = cur.chunk, row = static_cast<int>(cur.offset);
#pragma unroll
  for (int db = 0; db < D / 64; ++db) {
    tma_rows(dst + db * kBlockN * 128, &p.maps.k[c], p.maps.k_pos[c], db * 64, h, row, b, full);
    tma_rows(dst + kTileBytes + db * kBlockN * 128, &p.maps.v[c], p.maps.v_pos[c], db * 64, h, row, b, full);
  }
  cur.advance(p.args);
}

// Ping-pong turn taking: warpgroup w waits on barrier 1 + w before issuing a batch and then hands the turn to
// the other one. Both issue the same number of batches (num_tiles + 1); warpgroup 1 opens warpgroup 0's first
// turn and skips its own last hand-over, so every barrier phase gets exactly 128 + 128 arrivals.
struct TurnTaking {
  int wg, batches_left;
  __device__ __forceinline__ void begin() const { named_barrier_sync(1 + wg, 2 * 128); }
  __device__ __forceinline__ void end() {
    --batches_left;
    if (wg == 0 || batches_left > 0) named_barrier_arrive(1 + (wg ^ 1), 2 * 128);
  }
};

template <typename T, int D, bool kPingPong>
__global__ void __launch_bounds__(kThreads, 1) attention_hopper_tma_kernel(const __grid_constant__ TmaParams p) {
  constexpr int kQBytes = kBlockM * D * 2;
  constexpr int kTileBytes = kBlockN * D * 2;
  constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t s_q = (smem_addr(smem) + 1023u) & ~1023u;  // swizzle atoms need 1024-byte alignment
  const uint32_t s_kv = s_q + kQBytes;
  const uint32_t s_full = s_kv + kStages * kStageBytes;  // kStages mbarriers, then kStages "empty" ones
  const uint32_t s_empty = s_full + kStages * 8;
  const AttentionArgs& args = p.args;
  const int tid = threadIdx.x;
  const int wg = tid >> 7;
  const int h = blockIdx.y, b = blockIdx.z;

  int num_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) num_tiles += static_cast<int>((args.kv[c].len + kBlockN - 1) / kBlockN);
  KVCursor<kBlockN> load_cur;  // used by thread 0 only
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(s_full + 8 * s, 1);
      mbar_init(s_empty + 8 * s, kThreads);
    }
    mbar_init_fence();
    for (int i = 0; i < 2 && i < num_tiles; ++i) produce_tile<D>(p, load_cur, i, s_kv, s_full, s_empty, h, b);
  }
  const QTile qt = find_q_tile(args);
  const QChunkArgs& qc = args.q[qt.chunk];
  const uint32_t s_q_wg = s_q + wg * 64 * 128;  // this warpgroup's 64 rows within each column block
  load_tile_sw128<D, kBlockM>(s_q, qc.q + b * qc.q_sb + h * qc.q_sh + qt.row0 * qc.q_ss, qc.q_ss, qt.valid, tid);
  cp_async_commit();
  WgmmaRowLoop<T, D> rows;
  init_rows<D>(args, qc, qt, b, h, rows.st);
  rows.s_q_wg = s_q_wg;
  rows.scale_log2 = args.scale_log2;
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();  // Q landed everywhere; the barriers are initialized

  using Turns = std::conditional_t<kPingPong, TurnTaking, NoTurns>;
  Turns turns{};
  if constexpr (kPingPong) {
    turns = TurnTaking{wg, num_tiles + 1};
    if (wg == 1 && num_tiles > 0) named_barrier_arrive(1, 2 * 128);  // warpgroup 0 goes first
  }
  if (num_tiles > 0) {
    mbar_wait(s_full, 0);
    rows.first(args, s_kv, turns);
  }
  for (int j = 0; j + 1 < num_tiles; ++j) {
    if (tid == 0 && j + 2 < num_tiles) produce_tile<D>(p, load_cur, j + 2, s_kv, s_full, s_empty, h, b);
    __syncwarp();
    const int s1 = (j + 1) % kStages;
    mbar_wait(s_full + 8 * s1, ((j + 1) / kStages) & 1);
    rows.overlapped(args, s_kv + s1 * kStageBytes, s_kv + (j % kStages) * kStageBytes + kTileBytes, turns);
    mbar_arrive(s_empty + 8 * (j % kStages));  // K_j and V_j are no longer read by this thread
    rows.finish();
  }
  if (num_tiles > 0) rows.last(s_kv + ((num_tiles - 1) % kStages) * kStageBytes + kTileBytes, turns);
  store_rows<T, D>(args, qc, qt, b, h, rows.st);
}

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

// Returns cudaErrorNotSupported, launching nothing, when a chunk cannot be described by a tensor map (the
// caller then uses the cp.async kernel).
template <typename T, int D>
cudaError_t launch_attention_hopper_tma(const AttentionArgs& args, int total_tiles, int batch, bool ping_pong,
                                        cudaStream_t stream) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  thread_local TmaParams prm;  // ~14 KB, kept off the stack; the launch copies it into the kernel's parameters
  prm.args = args;
  constexpr bool kFp16 = std::is_same_v<T, __half>;
  for (int c = 0; c < args.num_kv; ++c) {
    const KVChunkArgs& kv = args.kv[c];
    if (kv.len > 0x7fffffff) return cudaErrorNotSupported;  // TMA coordinates are 32-bit
    if (!encode_rows_map(encode, &prm.maps.k[c], prm.maps.k_pos[c], kv.k, kv.len, kv.k_sb, kv.k_ss, kv.k_sh, batch,
                         args.heads, D, kFp16) ||
        !encode_rows_map(encode, &prm.maps.v[c], prm.maps.v_pos[c], kv.v, kv.len, kv.v_sb, kv.v_ss, kv.v_sh, batch,
                         args.heads, D, kFp16))
      return cudaErrorNotSupported;
  }
  constexpr int kSmem = 1024 + kBlockM * D * 2 + kStages * 2 * kBlockN * D * 2 + 2 * kStages * 8;
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
