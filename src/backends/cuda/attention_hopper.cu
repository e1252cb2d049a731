// The Hopper attention kernel (sm_90a): wgmma with fp32 accumulators in registers.
//
// Block: two warpgroups, each owning 64 of the tile's 128 query rows; K/V tiles of 128 keys in a 3-stage
// cp.async ring. Per K/V tile j the loop issues S_{j+1} = Q·K_{j+1}ᵀ and O += P_j·V_j back to back, runs the
// online softmax of S_{j+1} while P_j·V_j is still on the tensor cores, then refills the freed stage.
// Tile layouts: wgmma_tiles.cuh.
#include "wgmma_tiles.cuh"

namespace sf::cuda::detail {
namespace {

constexpr int kBlockN = kWgBlockN;
constexpr int kStages = 3;

template <int D>
__device__ __forceinline__ void load_kv_tile(const AttentionArgs& args, const KVCursor<kBlockN>& cur, int b, int h,
                                             uint32_t dst_k, int tid) {
  const KVChunkArgs& c = args.kv[cur.chunk];
  const int valid = cur.valid(args);
  load_tile_sw128<D, kBlockN>(dst_k, c.k + b * c.k_sb + h * c.k_sh + cur.offset * c.k_ss, c.k_ss, valid, tid);
  load_tile_sw128<D, kBlockN>(dst_k + kBlockN * D * 2, c.v + b * c.v_sb + h * c.v_sh + cur.offset * c.v_ss, c.v_ss,
                              valid, tid);
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1) attention_hopper_kernel(const __grid_constant__ AttentionArgs args) {
  constexpr int kQBytes = kBlockM * D * 2;
  constexpr int kTileBytes = kBlockN * D * 2;
  constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t s_q = (smem_addr(smem) + 1023u) & ~1023u;  // swizzle atoms need 1024-byte alignment
  const uint32_t s_kv = s_q + kQBytes;

  const int tid = threadIdx.x;
  const int wg = tid >> 7;
  const int h = blockIdx.y, b = blockIdx.z;
  const QTile qt = find_q_tile(args);
  const QChunkArgs& qc = args.q[qt.chunk];
  const uint32_t s_q_wg = s_q + wg * 64 * 128;  // this warpgroup's 64 rows within each column block

  int num_tiles = 0;
  for (int c = 0; c < args.num_kv; ++c) num_tiles += static_cast<int>((args.kv[c].len + kBlockN - 1) / kBlockN);

  // Prologue: group 0 = Q + tile 0, then tiles 1 and 2 (empty groups keep the counting uniform).
  load_tile_sw128<D, kBlockM>(s_q, qc.q + b * qc.q_sb + h * qc.q_sh + qt.row0 * qc.q_ss, qc.q_ss, qt.valid, tid);
  KVCursor<kBlockN> load_cur;
#pragma unroll
  for (int stage = 0; stage < kStages; ++stage) {
    if (stage < num_tiles) {
      load_kv_tile<D>(args, load_cur, b, h, s_kv + stage * kStageBytes, tid);
      load_cur.advance(args);
    }
    cp_async_commit();
  }
  WgmmaRowLoop<T, D> rows;
  init_rows<D>(args, qc, qt, b, h, rows.st);
  rows.s_q_wg = s_q_wg;
  rows.scale_log2 = args.scale_log2;
  NoTurns turns;
  if (num_tiles > 0) {
    cp_async_wait<kStages - 1>();
    fence_proxy_async();
    __syncthreads();
    rows.first(args, s_kv, turns);
  }
  for (int j = 0; j + 1 < num_tiles; ++j) {
    cp_async_wait<kStages - 2>();  // tile j+1 has landed (its group is the second newest)
    fence_proxy_async();
    __syncthreads();
    rows.overlapped(args, s_kv + ((j + 1) % kStages) * kStageBytes, s_kv + (j % kStages) * kStageBytes + kTileBytes,
                    turns);
    __syncthreads();  // both warpgroups are done with stage j % kStages
    if (j + kStages < num_tiles) {
      load_kv_tile<D>(args, load_cur, b, h, s_kv + (j % kStages) * kStageBytes, tid);
      load_cur.advance(args);
    }
    cp_async_commit();
    rows.finish();
  }
  if (num_tiles > 0) rows.last(s_kv + ((num_tiles - 1) % kStages) * kStageBytes + kTileBytes, turns);
  cp_async_wait<0>();  // no copy may be outstanding at exit (only empty groups remain, or Q when num_tiles == 0)
  store_rows<T, D>(args, qc, qt, b, h, rows.st);
}

}  // namespace

template <typename T, int D>
cudaError_t launch_attention_hopper(const AttentionArgs& args, int total_tiles, int batch, cudaStream_t stream) {
  constexpr int kSmem = kBlockM * D * 2 + kStages * 2 * kBlockN * D * 2 + 1024;  // + alignment slack
  cudaError_t err =
      cudaFuncSetAttribute(attention_hopper_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(total_tiles), static_cast<unsigned>(args.heads), static_cast<unsigned>(batch));
  attention_hopper_kernel<T, D><<<grid, kThreads, kSmem, stream>>>(args);
  return cudaGetLastError();
}

template cudaError_t launch_attention_hopper<__nv_bfloat16, 64>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention_hopper<__nv_bfloat16, 128>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention_hopper<__half, 64>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention_hopper<__half, 128>(const AttentionArgs&, int, int, cudaStream_t);

}  // namespace sf::cuda::detail
