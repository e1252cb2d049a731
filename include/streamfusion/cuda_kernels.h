// Host-side API of the CUDA attention kernels (src/backends/cuda). No CUDA types: a stream is passed as
// `void*` (a cudaStream_t; nullptr = the legacy default stream). Every call only enqueues work on the stream
// and returns a Status describing bad arguments or a launch failure; it never synchronizes.
#pragma once

#include <cstdint>

#include "streamfusion/attention_problem.h"
#include "streamfusion/dtype.h"
#include "streamfusion/status.h"

namespace sf::cuda {

// Fused multi-chunk attention (attention_problem.h). Supported: dtype bf16 or fp16, head_dim 64 or 128, on Hopper
// (sm_90a; the library is built for nothing else). The default kernel is the warp-specialized one (hopper_ws: a
// TMA producer warpgroup and three wgmma consumer warpgroups on 192-row Q tiles, or two on 128-row tiles when
// the Q chunks' lengths would pad 192-row tiles too much); SF_CUDA_ATTENTION_PATH = hopper_ws3 | hopper_ws2 |
// hopper_ws_pp | hopper_ws_seq_pp | hopper_tma | hopper_tma_pp | hopper | ampere selects the others (tests and
// benchmarks compare them), and chunks that a TMA tensor map cannot describe fall back to the cp.async (hopper)
// kernel.
// Requirements (checked; invalid_argument otherwise): q/k/v data 16-byte aligned with strides that are
// multiples of 8 elements; out 4-byte aligned with even strides; accumulators 8-byte aligned (acc_o) and
// present unless the call both starts fresh (kInit) and finalizes. Chunk lists of any length are accepted
// (long lists are split into several launches chained through the accumulator, which then must be present).
Status attention(const AttentionProblem& problem, void* stream);

// The owner of a shared call (AttentionProblem::shared) that was computed by some other kernel: arms its queue with
// no plan, so that helpers waiting for it take nothing and return (src/backends/cuda/shared_work.h).
Status arm_shared_unplanned(const SharedWork& work, void* stream);

// The (Õ, m, l) accumulator of `rows` query rows: o is [rows, head_dim], m and l are [rows], all fp32, dense.
// AttentionProblem's accumulators are such blocks with rows = B·len·H.
struct AccumulatorRef {
  float* o = nullptr;
  float* m = nullptr;
  float* l = nullptr;
};

// out = merge(a, b) (DESIGN.md section 4). `out` may alias `a` or `b` exactly. Rows empty on both sides
// (m = −inf, l = 0) stay empty, never NaN.
Status merge_partials(const AccumulatorRef& a, const AccumulatorRef& b, const AccumulatorRef& out, int64_t rows,
                      int64_t head_dim, void* stream);

// A partial in LSE form, as FlashAttention/cuDNN return it: normalized O (rows of a [B, len, H, D] tensor of
// the call's dtype, any strides, d contiguous) and lse = m + log(l) in fp32 (−inf for rows that saw no keys),
// element (b, s, h) at lse + b*lse_stride_b + s*lse_stride_s + h*lse_stride_h.
struct LsePartial {
  RowChunk o;
  float* lse = nullptr;
  int64_t lse_stride_b = 0, lse_stride_s = 0, lse_stride_h = 0;
};

// out = merge(a, b) in LSE form: lse = log(e^lse_a + e^lse_b), O = e^{lse_a−lse}·O_a + e^{lse_b−lse}·O_b.
// dtype is that of the three O tensors (fp32, bf16 or fp16); a.o.len == b.o.len == out.o.len. `out` may alias
// `a` or `b` exactly. Rows with lse = −inf on both sides get O = 0 and lse = −inf.
Status merge_lse(const LsePartial& a, const LsePartial& b, const LsePartial& out, DType dtype, int64_t batch,
                 int64_t heads, int64_t head_dim, void* stream);

}  // namespace sf::cuda
