// Which blocks of work a thread block of the warp-specialized kernel computes, and how its producer thread tells
// its consumer warpgroups (attention_hopper_ws.cu).
//
// The producer thread decides the next block as soon as it has issued the last K/V tile of the current one, well
// before the consumers finish that block, and posts it in a two-slot mailbox in shared memory: slot n & 1 holds
// the thread block's n-th block; "full" completes when it is written, "empty" when every consumer thread is done
// with it. The consumers read a block's index from its slot whenever they need it (instead of keeping it in a
// register through the main loop) and release the slot after the last read, once the block's K/V tiles are done;
// the producer only needs slot n & 1 back when it posts block n + 2, after it has issued all of block n + 1.
//
// The next block: one per thread block when the grid has them all. In a persistent launch (persistent_launch.h)
// either the static order (blockIdx.x, + gridDim.x, ...) or, when the launch gives a work-queue counter, the
// next value of that counter: then an SM that runs faster takes more blocks, as the hardware's block scheduler
// would, also when other kernels hold some SMs (the static order cost 4–5 % at D=128 S=32768–65536 on one
// H200 call and not in the next two: bench/kernel/NOTES.md).
#pragma once

#include <cstdint>

#include "attention_kernel.cuh"
#include "tma_primitives.cuh"

namespace sf::cuda::detail {

struct BlockMailbox {
  static constexpr int kSmemBytes = 40;  // two 4-byte slots, two "full" and two "empty" mbarriers (8-byte aligned)
  uint32_t s_slot, s_full, s_empty;

  __device__ __forceinline__ explicit BlockMailbox(uint32_t smem)
      : s_slot(smem), s_full(smem + 8), s_empty(smem + 24) {}
  // One thread, before the block barrier (and the ring's mbar_init_fence).
  __device__ __forceinline__ void init(int consumers) const {
    for (int k = 0; k < 2; ++k) {
      mbar_init(s_full + 8 * k, 1);
      mbar_init(s_empty + 8 * k, consumers);
    }
  }
  // Producer thread: posts the thread block's n-th block of work (n = 0, 1, ...; a value >= args.blocks: done).
  __device__ __forceinline__ void post(int n, int bx) const {
    const int k = n & 1;
    if (n >= 2) mbar_wait(s_empty + 8 * k, ((n >> 1) - 1) & 1);
    st_shared_u32(s_slot + 4 * k, static_cast<uint32_t>(bx));
    mbar_arrive(s_full + 8 * k);  // release: the value is visible to whoever sees the phase complete
  }
  // Consumer threads: wait once for block n to be posted, then read it as often as needed until release(n).
  __device__ __forceinline__ int wait(int n) const {
    mbar_wait_spin(s_full + 8 * (n & 1), (n >> 1) & 1);
    return read(n);
  }
  __device__ __forceinline__ int read(int n) const { return static_cast<int>(ld_shared_u32(s_slot + 4 * (n & 1))); }
  __device__ __forceinline__ void release(int n) const { mbar_arrive(s_empty + 8 * (n & 1)); }
};

// A shared call's next block (shared_work.h): the owner's counter at system scope; past the end, args.blocks.
// A helper takes a block only while more than the owner's reserve are unclaimed (shared_work.h). Not inlined, as
// helper_admitted: inlined into the producer (24 registers in the two-warpgroup kernels) they cost those kernels
// 28 bytes more of spills, out of line 12 (nvcc 13.0, --resource-usage).
static __device__ __noinline__ int take_shared_block(const AttentionArgs& args) {
  if (args.share_role == 2) {
    const unsigned claimed = *static_cast<const volatile unsigned*>(&args.share->queue);
    const unsigned reserve = *static_cast<const volatile unsigned*>(&args.share->reserve);
    if (claimed + reserve >= static_cast<unsigned>(args.blocks)) return args.blocks;
  }
  const unsigned v = atomicAdd_system(&args.share->queue, 1u);
  if (v >= static_cast<unsigned>(args.blocks)) return args.blocks;
  if (args.share_role == 2) atomicAdd_system(&args.share->helped, 1u);
  return static_cast<int>(v);
}

// A helper's producer thread, once the owner has armed the queue (the launch waited for that: wait_for_owner in
// attention_hopper_ws.cu): whether the owner's plan is this launch's (else the helper takes nothing).
static __device__ __noinline__ bool helper_admitted(const AttentionArgs& args) {
  bool same = true;
  const volatile unsigned* plan = args.share->plan;
  for (int i = 0; i < 4; ++i) same = same && plan[i] == args.share_plan[i];
  return same;
}

// The first block of work of this thread block: blockIdx.x, or a shared call's first from its queue.
__device__ __forceinline__ int first_block(const AttentionArgs& args) {
  if (args.share_role == 0) return static_cast<int>(blockIdx.x);
  if (args.share_role == 2 && !helper_admitted(args)) return args.blocks;
  return take_shared_block(args);
}

// The producer's next block after bx: a shared call's from its queue (above). With the work queue (args.queue,
// zero at launch), the first wave takes blocks 0 .. gridDim.x-1 by blockIdx.x and every later fetch the counter's next value v, block gridDim.x + v.
// Each thread block fetches until it gets a value past the end, so the blocks - gridDim.x fetches that succeed
// and the gridDim.x that do not hand out exactly 0 .. blocks-1: the fetch that gets blocks - 1 is the launch's
// last and resets the counter for the next launch on the stream (as the split pieces' arrival counts reset).
__device__ __forceinline__ int next_block(const AttentionArgs& args, int bx) {
  if (args.share_role != 0) return take_shared_block(args);
  if (args.queue == nullptr) return bx + static_cast<int>(gridDim.x);
  const unsigned v = atomicAdd(args.queue, 1u);
  if (v == static_cast<unsigned>(args.blocks - 1)) atomicExch(args.queue, 0u);
  return static_cast<int>(gridDim.x + v);
}

}  // namespace sf::cuda::detail
