// Kernels of the CUDA Device that are not the fast attention kernel: a simple, exact fallback attention
// (any dtype, head_dim ≤ 256; used when sf_cuda_kernels is absent or does not cover the case), row-block
// copies for packing, and the random fill and comparison used by the CLI and the multi-GPU tests.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "streamfusion/attention_problem.h"
#include "streamfusion/device.h"
#include "streamfusion/status.h"

namespace sf::gpu {

Status fallback_attention(const AttentionProblem& p, cudaStream_t stream);

Status copy_rows_kernel(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads, int64_t head_dim,
                        DType dtype, cudaStream_t stream);
// Up to kMaxBatchedCopies copies of one shape in one kernel when every copy's rows hold their heads back to back
// (stride_h == head_dim on both sides, as in the packing of head blocks) and everything is 16-byte aligned;
// otherwise one copy_rows_kernel per copy.
constexpr int kMaxBatchedCopies = 32;
Status copy_rows_batch_kernel(const RowChunk* dst, const RowChunk* src, int n, int64_t batch, int64_t heads,
                              int64_t head_dim, DType dtype, cudaStream_t stream);

// Device::merge_partials: up to kMaxBatchedMerges merges of one row count in one kernel.
constexpr int kMaxBatchedMerges = 16;
Status merge_partials_kernel(const Device::PartialMerge* merges, int n, int64_t batch, int64_t heads,
                             int64_t head_dim, DType dtype, cudaStream_t stream);

// Fills n elements with N(0, 1) samples; element i depends only on (seed, first_index + i), so every rank
// can fill its slice of a global tensor and agree with a rank that fills the whole tensor.
Status fill_normal(void* data, int64_t n, DType dtype, uint64_t seed, int64_t first_index, cudaStream_t stream);

struct CompareResult {
  double max_abs = 0.0;
  double sum_sq_diff = 0.0;
  double sum_sq_ref = 0.0;
  int64_t non_finite = 0;  // NaN or Inf in the tested tensor
  double rel_l2() const;
};
// Compares `test` with `ref` (both n elements of dtype); synchronizes the stream.
Result<CompareResult> compare(const void* test, const void* ref, int64_t n, DType dtype, cudaStream_t stream);

}  // namespace sf::gpu
