// LandedFlag: a word in device memory that reaches a value once some transfer's data has landed.
//
// A GPU Comm can hand one out for a transfer (Comm::landed_flag) so that an attention call that reads the data
// is issued without its stream waiting for the transfer: the kernel polls the word before it loads the first
// tile of that K/V chunk (KVChunk::ready). A call then starts on the chunks that are there while the last ones
// still land, instead of idling until all have (bench/sp/TRACES.md, session 20: 0.06 ms of a 1.5 ms 1x4 layer).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SF_LANDED_FN __host__ __device__ inline
#else
#define SF_LANDED_FN inline
#endif

namespace sf {

// The value at which head h has landed, for data landing at `value` in steps of heads_per_step heads (0: all at
// once): shared by the host (LandedFlag) and the kernels that poll the word (landed_wait.cuh). 32-bit on purpose:
// a 64-bit division in the kernels' producer cost every warp-specialized kernel 16-40 bytes of spills.
SF_LANDED_FN uint32_t landed_value_for_head(uint32_t value, int32_t heads_per_step, int32_t h) {
  return heads_per_step > 0 ? value + static_cast<uint32_t>(h / heads_per_step) : value;
}

struct LandedFlag {
  const uint32_t* word = nullptr;  // null: the data is there when the call starts
  uint32_t value = 0;              // landed once (int32_t)(*word - value) >= 0 (the words count up and wrap)
  // > 0: the data lands in steps of this many heads (Comm::landed_steps): heads [g·n, (g+1)·n) have landed once the
  // word reaches value + g, so that a call's first items (the first heads) start on the first step while the
  // others still land. 0: every head at `value`.
  int32_t heads_per_step = 0;
  bool pending() const { return word != nullptr; }
  // The value at which head h has landed.
  uint32_t value_for_head(int64_t h) const {
    return landed_value_for_head(value, heads_per_step, static_cast<int32_t>(h));
  }
};

}  // namespace sf
