// The Hopper attention kernel (sm_90a): wgmma with fp32 accumulators in registers.
//
// Block: two warpgroups, each owning 64 of the tile's 128 query rows; K/V tiles of 128 keys in a 3-stage
// cp.async ring. Per K/V tile j the loop issues S_{j+1} = Q·K_{j+1}ᵀ and O += P_j·V_j back to back, runs the
// online softmax of S_{j+1} while P_j·V_j is still on the tensor cores, then refills the freed stage.
//
// Shared-memory layout of every tile (Q, K, V): 128-byte swizzle. A [rows][D] tile is stored as D/64 column
// blocks of [rows][64 elements]; in each, row r's 16-byte chunk c sits at chunk c ^ (r & 7) of its 128-byte row,
// groups of 8 rows are 1024 bytes apart. Q and K are read K-major (the reduction dimension d is contiguous):
// SBO = 1024, and a 16-element step along d moves the start address by 32 bytes. V is read MN-major
// (its N dimension d is contiguous; wgmma's transpose-B): LBO = the distance between 64-column blocks,
// SBO = 1024 between groups of 8 keys, and a 16-key step moves the start by 16 rows = 2048 bytes.
#include "attention_common.cuh"
#include "wgmma_ops.cuh"

namespace sf::cuda::detail {
namespace {

constexpr int kBlockN = 128;
constexpr int kStages = 3;

template <int kRows>
__device__ __forceinline__ uint32_t sw128_offset(int row, int chunk) {
  return static_cast<uint32_t>((chunk >> 3) * (kRows * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

template <int D, int kRows>
__device__ __forceinline__ void load_tile_sw128(uint32_t dst, const uint16_t* base, int64_t stride_s, int valid,
                                                int tid) {
  constexpr int kChunks = D / 8;
  static_assert(kRows * kChunks % kThreads == 0, "tile must split evenly over the block");
#pragma unroll
  for (int it = 0; it < kRows * kChunks / kThreads; ++it) {
    const int i = tid + it * kThreads;
    const int row = i / kChunks;
    const int chunk = i % kChunks;
    const bool ok = row < valid;
    const uint16_t* src = ok ? base + row * stride_s + chunk * 8 : base;
    cp_async_16(dst + sw128_offset<kRows>(row, chunk), src, ok);
  }
}

template <int D>
__device__ __forceinline__ void load_kv_tile(const AttentionArgs& args, const KVCursor<kBlockN>& cur, int b, int h,
                                             uint32_t dst_k, int tid) {
  const KVChunkArgs& c = args.kv[cur.chunk];
  const int valid = cur.valid(args);
  load_tile_sw128<D, kBlockN>(dst_k, c.k + b * c.k_sb + h * c.k_sh + cur.offset * c.k_ss, c.k_ss, valid, tid);
  load_tile_sw128<D, kBlockN>(dst_k + kBlockN * D * 2, c.v + b * c.v_sb + h * c.v_sh + cur.offset * c.v_ss, c.v_ss,
                              valid, tid);
}

// S = Q·Kᵀ for this warpgroup's 64 rows and the 128 keys of the tile at s_k (issued, not waited for).
template <typename T, int D>
__device__ __forceinline__ void issue_qk(float (&s)[kBlockN / 8][4], uint32_t s_q_wg, uint32_t s_k) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t col = (kk & 3) * 32;  // 16 elements = 32 bytes along the 128-byte row
    const uint64_t da = sw128_desc(s_q_wg + (kk >> 2) * (kBlockM * 128) + col, 16, 1024);
    const uint64_t db = sw128_desc(s_k + (kk >> 2) * (kBlockN * 128) + col, 16, 1024);
    wgmma_ss<T, kBlockN>(s, da, db, kk > 0 ? 1 : 0);
  }
}

// O += P·V for the tile whose V is at s_v (issued, not waited for).
template <typename T, int D>
__device__ __forceinline__ void issue_pv(float (&o)[D / 8][4], const uint32_t (&p)[kBlockN / 16][4], uint32_t s_v) {
#pragma unroll
  for (int kk = 0; kk < kBlockN / 16; ++kk)
    wgmma_rs_tb<T, D>(o, p[kk], sw128_desc(s_v + kk * 16 * 128, kBlockN * 128, 1024));
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1) attention_hopper_kernel(const __grid_constant__ AttentionArgs args) {
  constexpr int kQBytes = kBlockM * D * 2;
  constexpr int kTileBytes = kBlockN * D * 2;
  constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  constexpr int kNT = kBlockN / 8;
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
  RowState<D / 8> st;
  init_rows<D>(args, qc, qt, b, h, st);

  float s[kNT][4];
  uint32_t p[kBlockN / 16][4];
  KVCursor<kBlockN> cur;  // the tile whose scores go through the softmax next
  const float scale_log2 = args.scale_log2;
  if (num_tiles > 0) {
    cp_async_wait<kStages - 1>();
    fence_proxy_async();
    __syncthreads();
    wgmma_fence();
    issue_qk<T, D>(s, s_q_wg, s_kv);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(s);
    float alpha[2];
    online_softmax(s, cur.valid(args), scale_log2, st, alpha);
    cur.advance(args);
    rescale(st, alpha);
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) pack_p<T>(s, kk, p[kk]);
  }
  // Steady state: straight-line body (no branch between a wgmma's issue and its wait, so that ptxas can keep
  // the two groups in flight together).
  for (int j = 0; j + 1 < num_tiles; ++j) {
    cp_async_wait<kStages - 2>();  // tile j+1 has landed (its group is the second newest)
    fence_proxy_async();
    __syncthreads();
    fence_regs(st.o);
    fence_regs(p);
    wgmma_fence();
    issue_qk<T, D>(s, s_q_wg, s_kv + ((j + 1) % kStages) * kStageBytes);
    wgmma_commit();
    issue_pv<T, D>(st.o, p, s_kv + (j % kStages) * kStageBytes + kTileBytes);
    wgmma_commit();
    wgmma_wait<1>();  // S_{j+1} done; P_j·V_j may still run
    fence_regs(s);
    float alpha[2];
    online_softmax(s, cur.valid(args), scale_log2, st, alpha);
    cur.advance(args);
    wgmma_wait<0>();
    fence_regs(st.o);
    fence_regs(p);
    __syncthreads();  // both warpgroups are done with stage j % kStages
    if (j + kStages < num_tiles) {
      load_kv_tile<D>(args, load_cur, b, h, s_kv + (j % kStages) * kStageBytes, tid);
      load_cur.advance(args);
    }
    cp_async_commit();
    rescale(st, alpha);
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) pack_p<T>(s, kk, p[kk]);
  }
  if (num_tiles > 0) {  // the last tile's P·V
    fence_regs(st.o);
    fence_regs(p);
    wgmma_fence();
    issue_pv<T, D>(st.o, p, s_kv + ((num_tiles - 1) % kStages) * kStageBytes + kTileBytes);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(st.o);
  }
  cp_async_wait<0>();  // no copy may be outstanding at exit (only empty groups remain, or Q when num_tiles == 0)
  store_rows<T, D>(args, qc, qt, b, h, st);
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
