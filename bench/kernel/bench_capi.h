// sf::cuda::attention behind a C function (bench_capi.cu): self-attention on dense [B, S, H, D] tensors with Q in
// q_chunks and K/V in kv_chunks chunks of consecutive rows. Returns 0, or non-zero with a message in err.
// Called from Python through ctypes (interleaved_bench.py) and by sf_kernel_bench.
#pragma once

extern "C" int sf_bench_attention(void* q, void* k, void* v, void* o, long long batch, long long seq,
                                  long long heads, long long dim, int fp16, int q_chunks, int kv_chunks,
                                  void* stream, char* err, int err_len);

// The same for one call of seq_q query rows (Q and O [B, seq_q, H, D]) against seq_kv keys (K, V [B, seq_kv, H, D]):
// a rank's share of a distributed layer (its rows against every key), timed beside the whole layer (share_rate.py).
// K/V in kv_chunks chunks of consecutive rows, as a ring's landed blocks.
extern "C" int sf_bench_attention_rect(void* q, void* k, void* v, void* o, long long batch, long long seq_q,
                                       long long seq_kv, long long heads, long long dim, int fp16, int kv_chunks,
                                       void* stream, char* err, int err_len);
