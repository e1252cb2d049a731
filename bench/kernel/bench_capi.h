// sf::cuda::attention behind a C function (bench_capi.cu): self-attention on dense [B, S, H, D] tensors with Q in
// q_chunks and K/V in kv_chunks chunks of consecutive rows. Returns 0, or non-zero with a message in err.
// Called from Python through ctypes (interleaved_bench.py) and by sf_kernel_bench.
#pragma once

extern "C" int sf_bench_attention(void* q, void* k, void* v, void* o, long long batch, long long seq,
                                  long long heads, long long dim, int fp16, int q_chunks, int kv_chunks,
                                  void* stream, char* err, int err_len);
