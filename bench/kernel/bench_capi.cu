// libsf_bench_capi: sf::cuda::attention behind a C function, so that bench/kernel/interleaved_bench.py can time
// our kernel and PyTorch SDPA in one process, alternating between them (same clocks, same temperature), on the
// same torch tensors. Tensors are dense [B, S, H, D]; Q is split into q_chunks and K/V into kv_chunks chunks of
// consecutive rows (chunk c covers rows [c·S/n, (c+1)·S/n)), each passed with its own pointer. Self-attention,
// fresh accumulator, finalized into O, or with SF_BENCH_FINALIZE=0 written to an fp32 accumulator (Õ, m, l) that
// the library keeps for the process, as a step of a ring does (with SF_BENCH_RESUME=1 also resumed from it). The
// kernel path is chosen as always (SF_CUDA_ATTENTION_PATH, SF_CUDA_EXP_EMULATION), read at every call.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench_capi.h"
#include "streamfusion/cuda_kernels.h"

extern "C" int sf_bench_attention(void* q, void* k, void* v, void* o, long long batch, long long seq,
                                  long long heads, long long dim, int fp16, int q_chunks, int kv_chunks,
                                  void* stream, char* err, int err_len) {
  if (q_chunks < 1 || kv_chunks < 1 || q_chunks > seq || kv_chunks > seq) {
    std::snprintf(err, err_len, "chunk counts must be in [1, S=%lld], got q_chunks=%d kv_chunks=%d", seq,
                  q_chunks, kv_chunks);
    return 1;
  }
  const int64_t sb = seq * heads * dim, ss = heads * dim, sh = dim;
  auto at = [&](void* base, int64_t row) { return static_cast<char*>(base) + row * ss * 2; };
  std::vector<sf::QChunk> qc(q_chunks);
  for (int c = 0; c < q_chunks; ++c) {
    const int64_t r0 = c * seq / q_chunks, r1 = (c + 1) * seq / q_chunks;
    qc[c].q = sf::RowChunk{at(q, r0), r1 - r0, sb, ss, sh};
    qc[c].out = sf::RowChunk{at(o, r0), r1 - r0, sb, ss, sh};
  }
  std::vector<sf::KVChunk> kc(kv_chunks);
  for (int c = 0; c < kv_chunks; ++c) {
    const int64_t r0 = c * seq / kv_chunks, r1 = (c + 1) * seq / kv_chunks;
    kc[c].k = sf::RowChunk{at(k, r0), r1 - r0, sb, ss, sh};
    kc[c].v = sf::RowChunk{at(v, r0), r1 - r0, sb, ss, sh};
  }
  sf::AttentionProblem p;
  p.dtype = fp16 ? sf::DType::kF16 : sf::DType::kBF16;
  p.batch = batch, p.heads = heads, p.head_dim = dim;
  p.scale = 1.f / std::sqrt(static_cast<float>(dim));
  p.q = qc.data(), p.num_q = q_chunks, p.kv = kc.data(), p.num_kv = kv_chunks;
  p.mode = sf::AccumulatorMode::kInit, p.finalize = true;
  const char* fin = std::getenv("SF_BENCH_FINALIZE");
  if (fin != nullptr && std::strcmp(fin, "0") == 0) {
    // One accumulator for the process, grown as needed (rows of D floats, then m and l per row).
    static float* acc = nullptr;
    static size_t acc_floats = 0;
    const size_t rows = static_cast<size_t>(batch * seq * heads), need = rows * (dim + 2);
    if (need > acc_floats) {
      cudaFree(acc);
      if (cudaMalloc(&acc, need * sizeof(float)) != cudaSuccess) {
        acc = nullptr, acc_floats = 0;
        std::snprintf(err, err_len, "no memory for the accumulator (%zu floats)", need);
        return 3;
      }
      acc_floats = need;
    }
    p.finalize = false;
    // SF_BENCH_RESUME=1 as well: the call resumes from that accumulator (whatever the last call left there) and
    // writes it back, as a ring's middle steps do.
    const char* resume = std::getenv("SF_BENCH_RESUME");
    if (resume != nullptr && std::strcmp(resume, "1") == 0) p.mode = sf::AccumulatorMode::kResume;
    for (int c = 0; c < q_chunks; ++c) {  // chunk c's rows of the [B, S, H] accumulator layout, chunk by chunk
      const size_t r0 = static_cast<size_t>(batch * heads * (c * seq / q_chunks));
      qc[c].acc_o = acc + r0 * dim;
      qc[c].acc_m = acc + rows * dim + r0;
      qc[c].acc_l = acc + rows * (dim + 1) + r0;
    }
  }
  const sf::Status st = sf::cuda::attention(p, stream);
  if (!st.is_ok()) {
    std::snprintf(err, err_len, "%s", st.message().c_str());
    return 2;
  }
  return 0;
}

extern "C" int sf_bench_attention_rect(void* q, void* k, void* v, void* o, long long batch, long long seq_q,
                                       long long seq_kv, long long heads, long long dim, int fp16, int kv_chunks,
                                       void* stream, char* err, int err_len) {
  if (seq_q < 1 || seq_kv < 1 || kv_chunks < 1 || kv_chunks > seq_kv) {
    std::snprintf(err, err_len, "expected seq_q >= 1 and 1 <= kv_chunks <= seq_kv, got seq_q=%lld seq_kv=%lld "
                  "kv_chunks=%d", seq_q, seq_kv, kv_chunks);
    return 1;
  }
  const int64_t ss = heads * dim, sh = dim;
  sf::QChunk qc;
  qc.q = sf::RowChunk{q, seq_q, seq_q * ss, ss, sh};
  qc.out = sf::RowChunk{o, seq_q, seq_q * ss, ss, sh};
  // K/V chunk c: rows [c·S/n, (c+1)·S/n), each its own pointer, as a ring's landed blocks are.
  auto at = [&](void* base, int64_t row) { return static_cast<char*>(base) + row * ss * 2; };
  std::vector<sf::KVChunk> kc(kv_chunks);
  for (int c = 0; c < kv_chunks; ++c) {
    const int64_t r0 = c * seq_kv / kv_chunks, r1 = (c + 1) * seq_kv / kv_chunks;
    kc[c].k = sf::RowChunk{at(k, r0), r1 - r0, seq_kv * ss, ss, sh};
    kc[c].v = sf::RowChunk{at(v, r0), r1 - r0, seq_kv * ss, ss, sh};
  }
  sf::AttentionProblem p;
  p.dtype = fp16 ? sf::DType::kF16 : sf::DType::kBF16;
  p.batch = batch, p.heads = heads, p.head_dim = dim;
  p.scale = 1.f / std::sqrt(static_cast<float>(dim));
  p.q = &qc, p.num_q = 1, p.kv = kc.data(), p.num_kv = kv_chunks;
  p.mode = sf::AccumulatorMode::kInit, p.finalize = true;
  const sf::Status st = sf::cuda::attention(p, stream);
  if (!st.is_ok()) {
    std::snprintf(err, err_len, "%s", st.message().c_str());
    return 2;
  }
  return 0;
}
