// Device memory for the split pieces of the warp-specialized kernel (split_merge.cuh) and the counter of its work
// queue (block_queue.cuh): one workspace per device and stream (and host thread, for cudaStreamPerThread), so that
// launches on different streams never share a slot or a counter, while launches on one stream (which run one after
// the other) reuse it. Grown on demand by at least half its size (cudaMallocAsync, its counters zeroed in stream
// order); a replaced workspace is never freed, because another host thread may have queued a launch that uses it on
// the same stream, so all of them live as long as the process (a few, of at most tens of MB). A CUDA graph captured
// with split or queued launches keeps the capturing stream's workspace: replay it on that stream, not beside it.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

namespace sf::cuda::detail {

struct SplitWorkspace {
  float* o = nullptr;          // partial Õ rows
  float* ml = nullptr;         // partial (m, l) pairs
  unsigned* count = nullptr;   // arrival counts, zero between launches
  unsigned* queue = nullptr;   // the work queue's counter, zero between launches
};

// Room for `o_floats`, `ml_floats` and `counters` arrival counts (and the queue counter) on `stream`, the counters
// zeroed when first allocated.
// Fails rather than allocating while the stream is being captured into a graph.
cudaError_t split_workspace(cudaStream_t stream, size_t o_floats, size_t ml_floats, size_t counters,
                            SplitWorkspace& out);

}  // namespace sf::cuda::detail
