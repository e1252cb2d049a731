// How many thread blocks a launch of the warp-specialized CUDA kernel runs (host side, plain C++ so that CPU
// tests reach it). The launch has `blocks` blocks of work (tail_split.h: items, split pieces counted one each);
// thread block c computes blocks c, c + grid, c + 2·grid, ... (attention_hopper_ws.cu).
//
// One thread block per block of work is the plain launch. A persistent one runs one thread block per resident
// slot, whose producer streams the next block's K/V while the consumers store the last output: a block's set-up
// no longer runs alone. That pays where blocks are short, since the set-up is a fixed cost per block. With long
// ones the static order loses to the hardware's dynamic scheduling, which gives more blocks to the SMs that run
// faster. Measured on an H200 (bench/kernel/NOTES.md, same rounds): S = 4096 (32 K/V tiles per block) +4 % at
// D=128 and +2 % at D=64; S = 32768–65536 at D=128 −4 to −5 %.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sf::cuda::detail {

constexpr int64_t kPersistentMaxKvTiles = 32;

// limit < 0: automatic (persistent when a block has at most kPersistentMaxKvTiles K/V tiles); 0: never
// persistent; n > 0: at most n thread blocks (tests: every thread block then walks many blocks of work).
inline int64_t launch_grid(int64_t blocks, int64_t slots, int64_t kv_tiles, int64_t limit = -1) {
  if (limit == 0) return blocks;
  if (limit > 0) return std::min(blocks, limit);
  return kv_tiles <= kPersistentMaxKvTiles ? std::min(blocks, std::max<int64_t>(slots, 1)) : blocks;
}

}  // namespace sf::cuda::detail
