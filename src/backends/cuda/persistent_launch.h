// How many thread blocks a launch of the warp-specialized CUDA kernel runs (host side, plain C++ so that CPU
// tests reach it). The launch has `blocks` blocks of work (tail_split.h: items, split pieces counted one each).
//
// One thread block per block of work is the plain launch. A persistent one runs one thread block per resident
// slot, each computing block after block (block_queue.cuh), its producer streaming the next block's K/V while the
// consumers store the last output: a block's set-up no longer runs alone. That pays where blocks are short, since
// the set-up is a fixed cost per block: S = 4096 (32 K/V tiles per block) +3–4 % at D=128, +2 % at D=64 (H100
// and H200, bench/kernel/NOTES.md). Which block a thread block takes next:
// - from the work queue (a counter the whole grid shares): an SM that runs faster takes more blocks, as with
//   the hardware's scheduler; persistent at every length (H100 2026-11-27 11:27: +0.6 to +2.9 % at D=128 over one
//   thread block per block of work at S = 4k … 64k, within ±0.6 % at D=64);
// - in the static order (blockIdx.x, + gridDim.x, ...: when there is no queue counter), which cannot give more
//   blocks to the faster SMs and cost 4–5 % at D=128 S = 32k–64k on an H200: persistent only for short blocks.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sf::cuda::detail {

constexpr int64_t kPersistentMaxKvTiles = 32;  // the static order's limit

// limit < 0: automatic (above); 0: never persistent; n > 0: at most n thread blocks (tests: every thread block
// then walks many blocks of work). queued: the blocks come from the work queue.
inline int64_t launch_grid(int64_t blocks, int64_t slots, int64_t kv_tiles, int64_t limit = -1, bool queued = true) {
  if (limit == 0) return blocks;
  if (limit > 0) return std::min(blocks, limit);
  const bool persistent = queued || kv_tiles <= kPersistentMaxKvTiles;
  return persistent ? std::min(blocks, std::max<int64_t>(slots, 1)) : blocks;
}

// Thread blocks that run at once: `per_sm` on each multiprocessor but `reserved_sms`, which are left to other
// streams. A thread block of the kernel may hold a whole SM (at D=128 every register), so while a persistent grid
// of one per SM runs, a kernel on a communication stream (NCCL's) may wait for the call's end (bench/sp/TRACES.md,
// trace 5 and session 11). At least one SM stays with the call.
inline int64_t resident_slots(int sms, int per_sm, int reserved_sms) {
  const int usable = std::max(sms - std::max(reserved_sms, 0), 1);
  return int64_t{usable} * std::max(per_sm, 1);
}

}  // namespace sf::cuda::detail
