// wait_landed_on_stream: the landed flags of a launch's K/V chunks, waited for ahead of kernels that do not poll
// them (every path but the warp-specialized one, whose producer polls each chunk's flag itself).
#include "landed_wait.cuh"

namespace sf::cuda::detail {
namespace {

struct LandedFlags {
  const uint32_t* word[kMaxKVChunks];
  uint32_t value[kMaxKVChunks];
  int count;
};

__global__ void wait_landed_kernel(const __grid_constant__ LandedFlags f) {
  for (int i = 0; i < f.count; ++i) wait_landed(f.word[i], f.value[i]);
}

}  // namespace

cudaError_t wait_landed_on_stream(const AttentionArgs& args, cudaStream_t stream) {
  LandedFlags f{};
  for (int i = 0; i < args.num_kv; ++i) {
    if (args.kv[i].ready == nullptr) continue;
    f.word[f.count] = args.kv[i].ready;
    f.value[f.count++] = landed_value_for_head(args.kv[i].ready_value, args.kv[i].ready_heads_per_step, args.heads - 1);
  }
  if (f.count == 0) return cudaSuccess;
  wait_landed_kernel<<<1, 1, 0, stream>>>(f);
  return cudaGetLastError();
}

}  // namespace sf::cuda::detail
