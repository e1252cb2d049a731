// Standalone merges of two attention partials (DESIGN.md section 4): the (Õ, m, l) form the fused kernel
// keeps, and the LSE form (normalized O, lse) that FlashAttention/cuDNN return. One warp per query row; the
// row's scalars are read by every lane before any lane writes, so `out` may alias an input.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "streamfusion/cuda_kernels.h"

namespace sf::cuda::detail {

cudaError_t launch_merge_partials(const AccumulatorRef& a, const AccumulatorRef& b, const AccumulatorRef& out,
                                  int64_t rows, int head_dim, cudaStream_t stream);

cudaError_t launch_merge_lse(const LsePartial& a, const LsePartial& b, const LsePartial& out, DType dtype,
                             int64_t batch, int64_t heads, int head_dim, cudaStream_t stream);

}  // namespace sf::cuda::detail
