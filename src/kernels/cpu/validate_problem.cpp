#include <string>

#include "streamfusion/cpu_kernels.h"

namespace sf {

Status validate_problem(const AttentionProblem& p) {
  if (p.batch < 1 || p.heads < 1 || p.head_dim < 1)
    return invalid_argument("attention problem needs batch, heads and head_dim ≥ 1, found B=" +
                            std::to_string(p.batch) + " H=" + std::to_string(p.heads) +
                            " D=" + std::to_string(p.head_dim));
  if (p.num_q < 0 || p.num_kv < 0 || (p.num_q > 0 && !p.q) || (p.num_kv > 0 && !p.kv))
    return invalid_argument("attention problem has a negative chunk count or a missing chunk list");
  SF_RETURN_IF_ERROR(validate_shared(p));
  for (int i = 0; i < p.num_q; ++i) {
    const QChunk& c = p.q[i];
    if (c.q.len < 0) return invalid_argument("Q chunk " + std::to_string(i) + " has negative length");
    if (c.q.len == 0) continue;
    if (!c.q.data) return invalid_argument("Q chunk " + std::to_string(i) + " has no data pointer");
    if (p.finalize && (!c.out.data || c.out.len != c.q.len))
      return invalid_argument("Q chunk " + std::to_string(i) + " needs an output of the same length to finalize");
    // The accumulator is only optional for a one-shot call (fresh start, finalized in the same call).
    const bool needs_acc = p.mode == AccumulatorMode::kResume || !p.finalize;
    if (needs_acc && (!c.acc_o || !c.acc_m || !c.acc_l))
      return invalid_argument("Q chunk " + std::to_string(i) + " needs accumulator pointers (o, m, l)");
  }
  for (int i = 0; i < p.num_kv; ++i) {
    const KVChunk& c = p.kv[i];
    if (c.k.len != c.v.len || c.k.len < 0)
      return invalid_argument("K/V chunk " + std::to_string(i) + " has K length " + std::to_string(c.k.len) +
                              " and V length " + std::to_string(c.v.len) + "; they must be equal and ≥ 0");
    if (c.k.len > 0 && (!c.k.data || !c.v.data))
      return invalid_argument("K/V chunk " + std::to_string(i) + " has no data pointer");
    // A landed flag lives in device memory and is set by a GPU stream: no CPU rank can wait for it.
    if (c.ready.pending())
      return invalid_argument("K/V chunk " + std::to_string(i) + " has a landed flag (a GPU Comm's); the CPU "
                              "kernels take only chunks whose data is there");
  }
  return Status::ok();
}

}  // namespace sf
