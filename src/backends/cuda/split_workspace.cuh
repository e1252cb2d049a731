// Device memory for the split pieces of the warp-specialized kernel (split_merge.cuh): one workspace per
// (device, stream), so that launches on different streams never share a slot or a counter, while launches on one
// stream (which run one after the other) reuse it. Grown on demand, stream-ordered (cudaMallocAsync /
// cudaFreeAsync: a larger workspace replaces the old one only after the launches already queued on the stream),
// and kept for the life of the process.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

namespace sf::cuda::detail {

struct SplitWorkspace {
  float* o = nullptr;          // partial Õ rows
  float* ml = nullptr;         // partial (m, l) pairs
  unsigned* count = nullptr;   // arrival counts, zero between launches
};

// Room for `o_floats`, `ml_floats` and `counters` on `stream` (the counters zeroed when first allocated).
// Fails rather than allocating while the stream is being captured into a graph.
cudaError_t split_workspace(cudaStream_t stream, size_t o_floats, size_t ml_floats, size_t counters,
                            SplitWorkspace& out);

}  // namespace sf::cuda::detail
