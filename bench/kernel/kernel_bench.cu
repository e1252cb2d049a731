// sf_kernel_bench: times sf::cuda::attention (self-attention, Sq = Skv = S, finalize, kInit) with CUDA events
// and prints one JSON line per configuration. The K/V (and optionally Q) tensor is handed to the kernel as
// several chunks with their own pointers (bench_capi.cu), to measure the multi-chunk cost. Used by profile.sh;
// run.sh times through interleaved_bench.py instead.
//   sf_kernel_bench --dtype bf16 --heads 24 --dim 128 --seqs 4096,8192 --kv-chunks 1,2,4,8 --q-chunks 1,2 \
//                   [--impl label] [--budget-ms 400]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bench_capi.h"

namespace {

#define BENCH_CHECK(expr)                                                                  \
  do {                                                                                     \
    cudaError_t e_ = (expr);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s failed: %s\n", #expr, cudaGetErrorString(e_));              \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

// Deterministic pseudo-random bf16/fp16 values in about [-2, 2] (never zeros everywhere).
__global__ void fill_random(uint16_t* p, int64_t n, uint32_t seed, bool fp16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
    const float f = (static_cast<float>(x & 0xffff) / 32768.f - 1.f) * 2.f;
    if (fp16) {
      __half h = __float2half_rn(f);
      p[i] = *reinterpret_cast<uint16_t*>(&h);
    } else {
      __nv_bfloat16 b = __float2bfloat16_rn(f);
      p[i] = *reinterpret_cast<uint16_t*>(&b);
    }
  }
}

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  for (const char* p = s; *p;) {
    v.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dtype_name = "bf16";
  std::string impl = "streamfusion";  // label of the JSON lines (the kernel itself is picked by SF_CUDA_ATTENTION_PATH)
  int64_t heads = 24, dim = 128, batch = 1;
  std::vector<int64_t> seqs = {4096}, kv_chunks = {1}, q_chunks = {1};
  double budget_ms = 400;  // timing budget per configuration (after warm-up)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--dtype") dtype_name = argv[i + 1];
    else if (a == "--heads") heads = std::atoll(argv[i + 1]);
    else if (a == "--dim") dim = std::atoll(argv[i + 1]);
    else if (a == "--batch") batch = std::atoll(argv[i + 1]);
    else if (a == "--seqs") seqs = parse_list(argv[i + 1]);
    else if (a == "--kv-chunks") kv_chunks = parse_list(argv[i + 1]);
    else if (a == "--q-chunks") q_chunks = parse_list(argv[i + 1]);
    else if (a == "--budget-ms") budget_ms = std::atof(argv[i + 1]);
    else if (a == "--impl") impl = argv[i + 1];
    else { std::fprintf(stderr, "unknown flag %s\n", a.c_str()); return 2; }
  }
  const bool fp16 = dtype_name == "fp16";

  const int64_t max_s = *std::max_element(seqs.begin(), seqs.end());
  const int64_t elems = batch * max_s * heads * dim;
  uint16_t *q, *k, *v, *o;
  BENCH_CHECK(cudaMalloc(&q, elems * 2));
  BENCH_CHECK(cudaMalloc(&k, elems * 2));
  BENCH_CHECK(cudaMalloc(&v, elems * 2));
  BENCH_CHECK(cudaMalloc(&o, elems * 2));
  fill_random<<<1024, 256>>>(q, elems, 1u, fp16);
  fill_random<<<1024, 256>>>(k, elems, 2u, fp16);
  fill_random<<<1024, 256>>>(v, elems, 3u, fp16);
  BENCH_CHECK(cudaGetLastError());
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0));
  BENCH_CHECK(cudaEventCreate(&e1));

  for (int64_t s : seqs)
    for (int64_t nq : q_chunks)
      for (int64_t nkv : kv_chunks) {
        auto run_once = [&] {
          char err[512];
          if (sf_bench_attention(q, k, v, o, batch, s, heads, dim, fp16 ? 1 : 0, static_cast<int>(nq),
                                 static_cast<int>(nkv), nullptr, err, sizeof err) != 0) {
            std::fprintf(stderr, "attention failed: %s\n", err);
            std::exit(1);
          }
        };
        run_once();  // warm-up
        BENCH_CHECK(cudaEventRecord(e0));
        run_once();
        BENCH_CHECK(cudaEventRecord(e1));
        BENCH_CHECK(cudaEventSynchronize(e1));
        float first = 0;
        BENCH_CHECK(cudaEventElapsedTime(&first, e0, e1));
        const int reps = std::clamp(static_cast<int>(budget_ms / std::max(first, 1e-3f)), 3, 50);
        std::vector<float> times;
        for (int r = 0; r < reps; ++r) {
          BENCH_CHECK(cudaEventRecord(e0));
          run_once();
          BENCH_CHECK(cudaEventRecord(e1));
          BENCH_CHECK(cudaEventSynchronize(e1));
          float ms = 0;
          BENCH_CHECK(cudaEventElapsedTime(&ms, e0, e1));
          times.push_back(ms);
        }
        BENCH_CHECK(cudaGetLastError());
        std::sort(times.begin(), times.end());
        const double med = times[times.size() / 2];
        const double tflops = 4.0 * batch * heads * double(s) * double(s) * dim / (med * 1e-3) / 1e12;
        std::printf(
            "{\"impl\": \"%s\", \"dtype\": \"%s\", \"B\": %lld, \"H\": %lld, \"D\": %lld, \"S\": %lld, "
            "\"q_chunks\": %lld, \"kv_chunks\": %lld, \"ms\": %.4f, \"tflops\": %.1f, \"reps\": %d}\n",
            impl.c_str(), dtype_name.c_str(), (long long)batch, (long long)heads, (long long)dim, (long long)s, (long long)nq,
            (long long)nkv, med, tflops, reps);
        std::fflush(stdout);
      }
  return 0;
}
