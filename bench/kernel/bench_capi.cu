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

namespace {

// Rows [r0, r1) of a dense [B, seq, H, D] bf16/fp16 tensor, as one chunk with its own pointer.
sf::RowChunk rows_of(void* base, int64_t seq, int64_t heads, int64_t dim, int64_t r0, int64_t r1) {
  return sf::RowChunk{static_cast<char*>(base) + r0 * heads * dim * 2, r1 - r0, seq * heads * dim, heads * dim, dim};
}

// K/V in n chunks of consecutive rows, chunk c holding rows [c·seq/n, (c+1)·seq/n) (as a ring's landed blocks).
std::vector<sf::KVChunk> kv_chunks_of(void* k, void* v, int64_t seq, int64_t heads, int64_t dim, int n) {
  std::vector<sf::KVChunk> kc(n);
  for (int c = 0; c < n; ++c) {
    const int64_t r0 = c * seq / n, r1 = (c + 1) * seq / n;
    kc[c].k = rows_of(k, seq, heads, dim, r0, r1);
    kc[c].v = rows_of(v, seq, heads, dim, r0, r1);
  }
  return kc;
}

// A fresh accumulator finalized into O, softmax scale 1/sqrt(D); the caller sets the chunks.
sf::AttentionProblem base_problem(long long batch, long long heads, long long dim, int fp16) {
  sf::AttentionProblem p;
  p.dtype = fp16 ? sf::DType::kF16 : sf::DType::kBF16;
  p.batch = batch, p.heads = heads, p.head_dim = dim;
  p.scale = 1.f / std::sqrt(static_cast<float>(dim));
  p.mode = sf::AccumulatorMode::kInit, p.finalize = true;
  return p;
}

int launch(const sf::AttentionProblem& p, void* stream, char* err, int err_len) {
  const sf::Status st = sf::cuda::attention(p, stream);
  if (!st.is_ok()) {
    std::snprintf(err, err_len, "%s", st.message().c_str());
    return 2;
  }
  return 0;
}

}  // namespace

extern "C" int sf_bench_attention(void* q, void* k, void* v, void* o, long long batch, long long seq,
                                  long long heads, long long dim, int fp16, int q_chunks, int kv_chunks,
                                  void* stream, char* err, int err_len) {
  if (q_chunks < 1 || kv_chunks < 1 || q_chunks > seq || kv_chunks > seq) {
    std::snprintf(err, err_len, "chunk counts must be in [1, S=%lld], got q_chunks=%d kv_chunks=%d", seq,
                  q_chunks, kv_chunks);
    return 1;
  }
  std::vector<sf::QChunk> qc(q_chunks);
  for (int c = 0; c < q_chunks; ++c) {
    const int64_t r0 = c * seq / q_chunks, r1 = (c + 1) * seq / q_chunks;
    qc[c].q = rows_of(q, seq, heads, dim, r0, r1);
    qc[c].out = rows_of(o, seq, heads, dim, r0, r1);
  }
  std::vector<sf::KVChunk> kc = kv_chunks_of(k, v, seq, heads, dim, kv_chunks);
  sf::AttentionProblem p = base_problem(batch, heads, dim, fp16);
  p.q = qc.data(), p.num_q = q_chunks, p.kv = kc.data(), p.num_kv = kv_chunks;
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
  return launch(p, stream, err, err_len);
}

extern "C" int sf_bench_attention_rect(void* q, void* k, void* v, void* o, long long batch, long long seq_q,
                                       long long seq_kv, long long heads, long long dim, int fp16, int kv_chunks,
                                       void* stream, char* err, int err_len) {
  if (seq_q < 1 || seq_kv < 1 || kv_chunks < 1 || kv_chunks > seq_kv) {
    std::snprintf(err, err_len, "expected seq_q >= 1 and 1 <= kv_chunks <= seq_kv, got seq_q=%lld seq_kv=%lld "
                  "kv_chunks=%d", seq_q, seq_kv, kv_chunks);
    return 1;
  }
  sf::QChunk qc;
  qc.q = rows_of(q, seq_q, heads, dim, 0, seq_q);
  qc.out = rows_of(o, seq_q, heads, dim, 0, seq_q);
  std::vector<sf::KVChunk> kc = kv_chunks_of(k, v, seq_kv, heads, dim, kv_chunks);
  sf::AttentionProblem p = base_problem(batch, heads, dim, fp16);
  p.q = &qc, p.num_q = 1, p.kv = kc.data(), p.num_kv = kv_chunks;
  return launch(p, stream, err, err_len);
}
