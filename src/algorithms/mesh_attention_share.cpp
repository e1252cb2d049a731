// MeshAttention's shared ring (SpAttentionConfig::ring_share): in a lone ring inside one machine every rank holds every
// K/V block once the ring has passed, so the ranks that finish their own rows first take blocks of work from a slower
// rank's last call while it runs (AttentionProblem::shared). Our rows' last call is shared: its work queue, the pieces'
// partials, our accumulator, our Q rows and its output all sit in symmetric memory, where the helpers' kernels reach
// them. Pulled by heads (ring_heads_per_step) our rows take every block in that one call, and all of it is shared; else
// our own block comes first, in a call of its own. After it we help every ring peer in turn: a helper call takes
// whatever is left of the peer's call (nothing, if it has ended) and returns. The layer's last ring barrier then orders
// every helper call toward our rows before we copy their output into o. On rank threads the CPU devices share a call's
// (batch, head) pairs the same way (tests/cpu/test_sp_attention.cpp, RingShare*); on GPUs its blocks of work and the
// tail's pieces (src/backends/cuda/shared_work.h). Measured slower on 4x H200 (bench/sp/TRACES.md, sessions 24 and 30,
// the one call too): off by default.
#include "algorithms/mesh_attention_impl.h"

#include <algorithm>

namespace sf::detail {

Status MeshAttention::init_share(size_t acc_bytes, int64_t max_rows) {
  SF_ASSIGN_OR_RETURN(acc_sym_, comm_.alloc_symmetric(acc_bytes));
  acc_ = static_cast<float*>(acc_sym_.local);
  const size_t out_bytes = static_cast<size_t>(shape_.batch * max_rows * Ht_ * shape_.head_dim) * elem_;
  SF_ASSIGN_OR_RETURN(so_, comm_.alloc_symmetric(std::max<size_t>(out_bytes, 64)));
  // The pieces' partials are fp32 rows like the accumulator's; as large as it (at most 256 MB) holds the finer
  // tail of the largest shapes (shared_work.h).
  const size_t ws_bytes = std::clamp<size_t>(acc_bytes, 4u << 20, 256u << 20);
  SF_ASSIGN_OR_RETURN(share_ws_, comm_.alloc_symmetric(ws_bytes));
  // Zero, and every ring peer's zero before anyone helps: symmetric memory comes uninitialized (poisoned on rank
  // threads), and a header left by an earlier layer's work or garbage could read as an armed call (`go` at or past
  // our first epoch), so that a helper took a stale queue's blocks, or none, before the owner armed it; the
  // pieces' arrival counts must start at zero too (shared_work.h).
  SF_RETURN_IF_ERROR(dev_.fill(share_ws_.local, 0, share_ws_.bytes));
  SF_RETURN_IF_ERROR(comm_.barrier(gr_));
  for (int y : gr_) {
    if (y == rank_) continue;
    for (const SymmetricBuffer* b : {&qu_, &acc_sym_, &so_, &share_ws_})
      if (comm_.peer_address(*b, y) == nullptr)
        return infeasible("ring_share needs ranks that reach each other's memory directly, but rank " +
                          std::to_string(rank_) + " cannot address rank " + std::to_string(y) +
                          "'s (Comm::peer_address)");
  }
  return Status::ok();
}

SharedWork MeshAttention::shared_work(int owner) const {
  SharedWork w;
  w.workspace = owner == rank_ ? share_ws_.local : comm_.peer_address(share_ws_, owner);
  w.bytes = share_ws_.bytes;
  w.epoch = share_epoch_;
  w.helper = owner != rank_;
  return w;
}

Status MeshAttention::offer_shared_rows(const void* q) {
  const size_t bytes = static_cast<size_t>(block_of(rank_).elems()) * elem_;  // direct: our dense [B, n, H, D]
  SF_ASSIGN_OR_RETURN(Handle h, comm_.put(qu_, 0, rank_, q, bytes, Lane::kMain));
  share_q_.assign(1, h);
  return Status::ok();
}

Status MeshAttention::shared_ring_calls(const RingSet& set0, const std::vector<LandedFlag>& steps) {
  if (by_heads_) {  // one call, shared whole: the helpers come once their own call has ended
    SF_RETURN_IF_ERROR(comm_.wait_all(share_q_));  // helpers read our Q rows once the call below is armed
    ++share_epoch_;
    const SharedWork mine = shared_work(rank_);
    SF_RETURN_IF_ERROR(compute({0}, -1, blocks_by_heads(set0, steps), AccumulatorMode::kInit, true, so_.local, &mine));
    return help_ring_peers(set0);
  }
  SF_RETURN_IF_ERROR(compute({0}, -1, {{&set0.blocks[0]}}, AccumulatorMode::kInit, false, so_.local));
  SF_RETURN_IF_ERROR(comm_.wait_all(share_q_));  // helpers read our Q rows once the call below is armed
  ++share_epoch_;
  const SharedWork mine = shared_work(rank_);
  SF_RETURN_IF_ERROR(
      ring_pass({0}, -1, set0, 1, AccumulatorMode::kResume, true, so_.local, -1, &mine));
  return help_ring_peers(set0);
}

Status MeshAttention::help_ring_peers(const RingSet& set0) {
  const int64_t D = shape_.head_dim, row = Ht_ * D;
  for (int j = 1; j < r_; ++j) {
    const int k_owner = (k_ + j) % r_, owner = gr_[k_owner];
    auto* q = static_cast<char*>(comm_.peer_address(qu_, owner));
    auto* acc = static_cast<float*>(comm_.peer_address(acc_sym_, owner));
    auto* out = static_cast<char*>(comm_.peer_address(so_, owner));
    const int64_t n = rows_of(owner);
    // The owner's call, as shared_ring_calls issues it there: its rows (direct: one dense piece) against its ring
    // blocks 1..r-1 (block s from ring member k_owner - s), its own block 0 first where that call takes every block
    // (by heads), here our copies of those blocks in that order.
    QChunk c;
    c.q = RowChunk{q, n, n * row, row, D};
    c.acc_o = acc;
    c.acc_m = acc + t_ * acc_stride_;
    c.acc_l = c.acc_m + t_ * (acc_stride_ / D);
    c.out = RowChunk{out, n, n * row, row, D};
    std::vector<QChunk> qs{c};
    std::vector<KVChunk> kvs;
    for (int s = by_heads_ ? 0 : 1; s < r_; ++s) {
      const int member = (k_owner - s + r_) % r_;
      append_kv_chunks(set0.blocks[(k_ - member + r_) % r_], -1, LandedFlag{}, &kvs);
    }
    const SharedWork w = shared_work(owner);
    AttentionProblem p =
        problem(shape_.batch, qs, kvs, by_heads_ ? AccumulatorMode::kInit : AccumulatorMode::kResume, true);
    p.shared = &w;
    SF_RETURN_IF_ERROR(dev_.attention(p));
  }
  return Status::ok();
}

Status MeshAttention::collect_shared_rows(void* o) {
  return dev_.copy_rows(user_rows(o, 0), user_rows(so_.local, 0), shape_.batch, Ht_, shape_.head_dim, shape_.dtype);
}

Result<int64_t> MeshAttention::blocks_taken_by_helpers() {
  if (!share_) return int64_t{0};
  return dev_.shared_blocks_helped(shared_work(rank_));
}

}  // namespace sf::detail
