// Timestamps of every block of work of the warp-specialized kernel, to see where a block's time goes (its Q load,
// its first K/V tile, the rest of its tiles, its output, the gap to the SM's next block). A diagnostic: only the
// three-warpgroup bf16 D=128 kernel has a traced instance, chosen when SF_CUDA_BLOCK_TRACE names a file
// (attention_hopper_ws.cu); the launch then synchronizes and writes one CSV line per block of work
// (bench/kernel/block_trace.py reads it). The untraced kernels compile to the same code as without this file.
#pragma once

#include <cstdint>

namespace sf::cuda::detail {

// One record per block of work, indexed by the block's number: its number, its SM and K/V tile count, the global
// timer (ns) at its start and end, and the SM's cycle counter at its start, when its Q tile had landed, after its
// first K/V tile, after its last, after the consumers' barrier that follows, once the next block's Q load was
// issued, and once its output was stored. Cycle counts compare within an SM only; all but the global timer and
// the per-warpgroup fields are taken by the first consumer warpgroup's first thread. Per consumer warpgroup (its
// first thread): the cycles it spent waiting for K/V stages to fill (full_wait) and the moment it finished the
// block's ninth K/V tile (tile8: the warpgroups' offsets there show whether they run in step); and the cycles
// the producer waited for stages to empty while it loaded this block's tiles (empty_wait).
struct BlockTraceRecord {
  uint64_t block, sm_tiles, start_ns, end_ns, start, q_landed, first_tile, tiles_done, met, q_issued, stored;
  uint64_t full_wait[3], tile8[3], empty_wait;
};

__device__ __forceinline__ uint64_t trace_clock() {
  uint64_t c;
  asm volatile("mov.u64 %0, %%clock64;" : "=l"(c));
  return c;
}
__device__ __forceinline__ uint64_t trace_global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ uint32_t trace_sm() {
  uint32_t s;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
  return s;
}

}  // namespace sf::cuda::detail
