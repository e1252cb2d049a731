// The Ampere-style attention kernel: mma.sync m16n8k16 with fp32 accumulation, ldmatrix from XOR-swizzled
// shared memory, cp.async double buffering of 64-key K/V tiles. Eight warps of 16 query rows each; Q fragments
// stay in registers. Portable fallback for the Hopper kernel (attention_hopper.cu); see attention_kernel.cuh.
#include "attention_common.cuh"

namespace sf::cuda::detail {
namespace {

constexpr int kBlockN = 64;

// Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][D] tile of 16-bit elements. Chunks are
// XOR-swizzled with the row's low 3 bits so that the 8 row addresses of an ldmatrix hit 8 distinct bank groups.
template <int D>
__device__ __forceinline__ uint32_t tile_offset(int row, int chunk) {
  return static_cast<uint32_t>(row * D * 2 + ((chunk ^ (row & 7)) << 4));
}

template <int D, int kRows>
__device__ __forceinline__ void load_tile(uint32_t dst, const uint16_t* base, int64_t stride_s, int valid,
                                          int tid) {
  load_rows_async<D, kRows>(dst, base, stride_s, valid, tid, [](int row, int chunk) { return tile_offset<D>(row, chunk); });
}

template <int D>
__device__ __forceinline__ void load_kv_tile(const AttentionArgs& args, const KVCursor<kBlockN>& cur, int b, int h,
                                             uint32_t dst_k, uint32_t dst_v, int tid) {
  const KVChunkArgs& c = args.kv[cur.chunk];
  const int valid = cur.valid(args);
  load_tile<D, kBlockN>(dst_k, c.k + b * c.k_sb + h * c.k_sh + cur.offset * c.k_ss, c.k_ss, valid, tid);
  load_tile<D, kBlockN>(dst_v, c.v + b * c.v_sb + h * c.v_sh + cur.offset * c.v_ss, c.v_ss, valid, tid);
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1) attention_ampere_kernel(const __grid_constant__ AttentionArgs args) {
  using Mma = MmaType<T>;
  constexpr int kTileBytes = kBlockN * D * 2;
  constexpr int kNT = kBlockN / 8;  // 8-column blocks of S per warp
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t s_q = smem_addr(smem);
  const uint32_t s_kv = s_q + kBlockM * D * 2;  // stage s: K at s_kv + 2s·kTileBytes, V right after

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.y, b = blockIdx.z;
  const QTile qt = find_q_tile(args);
  const QChunkArgs& qc = args.q[qt.chunk];

  // Prologue: Q tile and the first K/V tile in one cp.async group.
  load_tile<D, kBlockM>(s_q, qc.q + b * qc.q_sb + h * qc.q_sh + qt.row0 * qc.q_ss, qc.q_ss, qt.valid, tid);
  KVCursor<kBlockN> load_cur;
  if (args.num_kv > 0) {
    load_kv_tile<D>(args, load_cur, b, h, s_kv, s_kv + kTileBytes, tid);
    load_cur.advance(args);
  }
  cp_async_commit();
  RowState<D / 8> st;
  init_rows<D>(args, qc, qt, b, h, st);

  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int row = warp * 16 + (lane & 15);
    ldmatrix_x4(s_q + tile_offset<D>(row, kk * 2 + (lane >> 4)), qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
  }

  KVCursor<kBlockN> cur;
  int stage = 0;
  while (cur.chunk < args.num_kv) {
    if (load_cur.chunk < args.num_kv) {
      const uint32_t dst = s_kv + (stage ^ 1) * 2 * kTileBytes;
      load_kv_tile<D>(args, load_cur, b, h, dst, dst + kTileBytes, tid);
      load_cur.advance(args);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const uint32_t s_k = s_kv + stage * 2 * kTileBytes;
    const uint32_t s_v = s_k + kTileBytes;

    // S = Q Kᵀ for this warp's 16 rows × kBlockN keys.
    float s[kNT][4];
#pragma unroll
    for (int j = 0; j < kNT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        const int row = np * 16 + ((lane >> 4) << 3) + (lane & 7);
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(s_k + tile_offset<D>(row, kk * 2 + ((lane >> 3) & 1)), b0, b1, b2, b3);
        Mma::mma(s[2 * np], qf[kk], b0, b1);
        Mma::mma(s[2 * np + 1], qf[kk], b2, b3);
      }
    }
    float alpha[2];
    online_softmax(s, cur.valid(args), args.scale_log2, st, alpha);
    rescale(st, alpha);

    // O += P V, P re-packed from the S accumulators into A fragments.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t pa[4];
      pack_p<T>(s, kk, pa);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int row = kk * 16 + (((lane >> 3) & 1) << 3) + (lane & 7);
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(s_v + tile_offset<D>(row, dp * 2 + (lane >> 4)), b0, b1, b2, b3);
        Mma::mma(st.o[2 * dp], pa, b0, b1);
        Mma::mma(st.o[2 * dp + 1], pa, b2, b3);
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
    stage ^= 1;
    cur.advance(args);
  }
  store_rows<T, D>(args, qc, qt, b, h, st);
}

}  // namespace

template <typename T, int D>
cudaError_t launch_attention_ampere(const AttentionArgs& args, int total_tiles, int batch, cudaStream_t stream) {
  constexpr int kSmem = (kBlockM + 4 * kBlockN) * D * 2;  // Q tile + two stages of (K, V) tiles
  cudaError_t err =
      cudaFuncSetAttribute(attention_ampere_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(total_tiles), static_cast<unsigned>(args.heads), static_cast<unsigned>(batch));
  attention_ampere_kernel<T, D><<<grid, kThreads, kSmem, stream>>>(args);
  return cudaGetLastError();
}

template cudaError_t launch_attention_ampere<__nv_bfloat16, 64>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention_ampere<__nv_bfloat16, 128>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention_ampere<__half, 64>(const AttentionArgs&, int, int, cudaStream_t);
template cudaError_t launch_attention_ampere<__half, 128>(const AttentionArgs&, int, int, cudaStream_t);

}  // namespace sf::cuda::detail
