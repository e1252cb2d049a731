// Polling a K/V chunk's landed flag (KVChunkArgs::ready, streamfusion/landed_flag.h) on the device.
//
// The flag is written by a stream memory operation (cuStreamWriteValue32) queued after the transfer that brings
// the chunk, on a stream of its own: the copy engine's writes are complete before the word changes. An acquire
// load at system scope sees the word; the proxy fence then orders it before the TMA loads (async proxy) that read
// the chunk. No hang guard: like the consumers' barrier waits, a flag that never comes is bounded by the host's
// watchdog, which names the transfer.
#pragma once

#include <cstdint>

#include "attention_kernel.cuh"
#include "streamfusion/landed_flag.h"

namespace sf::cuda::detail {

__device__ __forceinline__ void wait_landed(const uint32_t* word, uint32_t value) {
  if (word == nullptr) return;
  for (;;) {
    uint32_t v;
    asm volatile("ld.acquire.sys.global.u32 %0, [%1];\n" : "=r"(v) : "l"(word) : "memory");
    if (static_cast<int32_t>(v - value) >= 0) break;
    __nanosleep(256);
  }
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
}
// Head h of chunk c (a chunk landing in steps of heads waits for the step that brings h).
__device__ __forceinline__ void wait_landed(const KVChunkArgs& c, int h) {
  wait_landed(c.ready, landed_value_for_head(c.ready_value, c.ready_heads_per_step, h));
}

}  // namespace sf::cuda::detail
