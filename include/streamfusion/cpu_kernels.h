// CPU kernels: the fast float32 multi-chunk attention used by CPU ranks, and the float64 reference every
// backend is checked against.
#pragma once

#include <vector>

#include "streamfusion/attention_problem.h"
#include "streamfusion/status.h"

namespace sf {

// Checks an AttentionProblem's sizes and pointers (shared by every backend before launching).
Status validate_problem(const AttentionProblem& p);

// How a CPU device takes part in shared calls (AttentionProblem::shared).
struct CpuShareOptions {
  double wait_s = 60.0;    // a helper's longest wait for its owner to arm the call (then a kTimeout error)
  int owner_pause_ms = 0;  // tests: an owner pauses this long once armed, so that its helpers take its work
  int arm_delay_ms = 0;    // tests: an owner pauses this long before it arms, so that its helpers come first
};

// Runs p on the calling thread (float32 arithmetic, online softmax in blocks of keys). A shared call's (batch,
// head) pairs go to whichever of the owner's and its helpers' calls takes them first.
Status cpu_attention(const AttentionProblem& p, const CpuShareOptions& share = {});

// The pairs that helpers took in the latest shared call of the owner whose workspace this is.
int64_t cpu_shared_helped(const SharedWork& work);

// Reference: O = softmax(scale·QKᵀ)V per (batch, head) in float64, two passes (max, then exp-sum), no
// blocking. q is [B, Sq, H, D], k and v [B, Skv, H, D], dense, any dtype; returns [B, Sq, H, D].
std::vector<double> reference_attention(const void* q, const void* k, const void* v, DType dtype, int64_t batch,
                                        int64_t seq_q, int64_t seq_kv, int64_t heads, int64_t head_dim,
                                        double scale);

}  // namespace sf
