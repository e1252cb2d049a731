// The local diagonal (SpAttentionConfig::local_diagonal): phases C and D when each rank computes its own rows
// against its own ring group's keys for every head, and its Torus peers only the rest.
//
// Across the t Torus peers, a head block's rows × keys form a t × t matrix of blocks (rows of peer i, keys of
// peer j's ring group). Plain Torus gives peer l every block of head block l: the foreign rows' output is final
// only after the last K/V set has landed, so the push of (t-1)/t of a GPU's output waits for all of its pulls
// (bench/sp/TRACES.md, session 13: 4x1 Flux S=16384 at 50 GB/s can end no sooner than 1.11x its transfer).
// Here each peer l computes the diagonal block (l, l) of every head block itself, on local data, while its
// first pulls are in flight, and no peer computes another's. Foreign rows i then need every pulled set but
// set i, so their partial leaves one set earlier (with two machines, as soon as their Q has landed and met our
// keys), and the owner merges it with its diagonal block. Same transfers, plus an lse per row and head.
#include <cmath>

#include "algorithms/mesh_attention_impl.h"

namespace sf::detail {

Status MeshAttention::issue_home_ring(RingSet* set0, RingSet* other) {
  set0->blocks.assign(r_, KVBlock{});
  set0->blocks[0] = {block_of(rank_), const_cast<char*>(static_cast<const char*>(home_k_)),
                     const_cast<char*>(static_cast<const char*>(home_v_))};
  set0->arrived.assign(1, std::vector<std::vector<Handle>>(r_));
  home_arrived_.assign(r_, std::vector<std::vector<Handle>>(t_));
  const int first = (l_ + 1) % t_;  // by head blocks: the one our rows' first call takes
  if (diagonal_by_blocks_) {
    // Strided pulls of a few heads each, the call's first heads first, so that its first wave finds them landed.
    other->blocks.assign(r_, KVBlock{});
    other->arrived.assign(1, std::vector<std::vector<Handle>>(r_));
    for (int s = 1; s < r_; ++s)
      other->blocks[s] = {block_of(gr_[(k_ - s + r_) % r_]), slot(home_ring_k_, slot_bytes_, (s - 1) * t_ + first),
                          slot(home_ring_v_, slot_bytes_, (s - 1) * t_ + first)};
    SF_RETURN_IF_ERROR(pull_ring_by_heads(ku_, vu_, first * slot_bytes_, other));
    for (int s = 1; s < r_; ++s) home_arrived_[s][first] = other->arrived[0][s];
  }
  for (int s = 1; s < r_; ++s) {
    const int from = gr_[(k_ - s + r_) % r_];
    const RowBlock theirs = block_of(from);
    const size_t bytes = static_cast<size_t>(theirs.elems()) * elem_;
    // Head block l first: the foreign rows' first call needs it, the diagonal call needs them all.
    for (int n = 0; n < t_; ++n) {
      const int p = (l_ + n) % t_;
      if (diagonal_by_blocks_ && p == first) continue;  // pulled above
      char* k = slot(home_ring_k_, slot_bytes_, (s - 1) * t_ + p);
      char* v = slot(home_ring_v_, slot_bytes_, (s - 1) * t_ + p);
      if (p == l_) set0->blocks[s] = {theirs, k, v};
      if (bytes == 0) continue;  // a peer without rows (S < P)
      // After the compute issued so far (the packing of our own home blocks, which the scatter's barrier made
      // everyone's), so no detach: the peers' blocks were complete at that barrier.
      SF_ASSIGN_OR_RETURN(Handle hk, comm_.get(k, ku_, p * slot_bytes_, from, bytes, Lane::kRing));
      SF_ASSIGN_OR_RETURN(Handle hv, comm_.get(v, vu_, p * slot_bytes_, from, bytes, Lane::kRing));
      if (p == l_) set0->arrived[0][s] = {hk, hv};
      home_arrived_[s][p] = {hk, hv};
    }
  }
  return Status::ok();
}

// One call over every head block: with B = 1 the t head blocks of a home buffer ([t] slots of [n, Ht, D]) are
// the call's batch (stride: one slot), and the accumulator [t][n, Ht, D] is exactly the per-head-block slots.
// With B > 1 a batch entry and a head block cannot share one stride: one call per head block.
Status MeshAttention::diagonal_call(int first, int last, AccumulatorMode mode) {
  if (first >= last) return Status::ok();
  const int64_t D = shape_.head_dim, B = shape_.batch, row = Ht_ * D, n = rows_of(rank_);
  const int64_t slot_elems = static_cast<int64_t>(slot_bytes_) / elem_;
  for (int s = first; s < last; ++s)
    for (int p = 0; p < t_; ++p) SF_RETURN_IF_ERROR(comm_.wait_all(home_arrived_[s][p]));
  const int calls = B == 1 ? 1 : t_;
  for (int c = 0; c < calls; ++c) {
    const int64_t p0 = B == 1 ? 0 : c;  // first head block of this call
    const int64_t batch = B == 1 ? t_ : B;
    auto rows_at = [&](const void* base, int64_t len) {
      return RowChunk{static_cast<char*>(const_cast<void*>(base)) + p0 * slot_bytes_, len,
                      B == 1 ? slot_elems : len * row, row, D};
    };
    QChunk q;  // our rows of every head block in the call
    q.q = rows_at(qu_.local, n);
    const AccSlot a = diagonal_acc(p0);
    q.acc_o = a.o, q.acc_m = a.m, q.acc_l = a.l;
    std::vector<KVChunk> kvs;
    for (int s = first; s < last; ++s) {
      if (s == 0) {
        kvs.push_back({rows_at(ku_.local, n), rows_at(vu_.local, n)});
        continue;
      }
      const int64_t len = rows_of(gr_[(k_ - s + r_) % r_]);
      const void* k = slot(home_ring_k_, slot_bytes_, (s - 1) * t_);
      const void* v = slot(home_ring_v_, slot_bytes_, (s - 1) * t_);
      if (len > 0) kvs.push_back({rows_at(k, len), rows_at(v, len)});
    }
    if (n == 0 || (kvs.empty() && mode == AccumulatorMode::kResume)) continue;
    const std::vector<QChunk> qs{q};
    SF_RETURN_IF_ERROR(dev_.attention(problem(batch, qs, kvs, mode, false)));
  }
  return Status::ok();
}

Status MeshAttention::diagonal_block_call(int p, const std::vector<LandedFlag>& ready) {
  const int64_t D = shape_.head_dim, row = Ht_ * D, n = rows_of(rank_);
  auto rows_at = [&](const void* slot_base, int64_t len) {  // one head block's slot: dense [B, len, Ht, D]
    return RowChunk{static_cast<char*>(const_cast<void*>(slot_base)), len, len * row, row, D};
  };
  QChunk q;
  q.q = rows_at(slot(qu_.local, slot_bytes_, p), n);
  const AccSlot a = diagonal_acc(p);
  q.acc_o = a.o, q.acc_m = a.m, q.acc_l = a.l;
  std::vector<KVChunk> kvs{{rows_at(slot(ku_.local, slot_bytes_, p), n), rows_at(slot(vu_.local, slot_bytes_, p), n)}};
  for (int s = 1; s < r_; ++s) {
    const int64_t len = rows_of(gr_[(k_ - s + r_) % r_]);
    LandedFlag flag;
    if (static_cast<int>(ready.size()) >= s) flag = ready[s - 1];
    else SF_RETURN_IF_ERROR(comm_.wait_all(home_arrived_[s][p]));
    if (len > 0)
      kvs.push_back({rows_at(slot(home_ring_k_, slot_bytes_, (s - 1) * t_ + p), len),
                     rows_at(slot(home_ring_v_, slot_bytes_, (s - 1) * t_ + p), len), flag});
  }
  if (n == 0) return Status::ok();
  const std::vector<QChunk> qs{q};
  return dev_.attention(problem(shape_.batch, qs, kvs, AccumulatorMode::kInit, false));
}

Status MeshAttention::merge_pushed_partials(void* o) {
  const int64_t D = shape_.head_dim, n = rows_of(rank_);
  for (int i = 1; i < t_; ++i) {  // head block l_ is finalized in place by our rows' last call
    const int p = (l_ + i) % t_;
    SF_RETURN_IF_ERROR(comm_.wait_signal(partial_signals_, static_cast<size_t>(p), epoch_));
    Device::PartialMerge m;
    const AccSlot a = diagonal_acc(p);
    m.acc_o = a.o, m.acc_m = a.m, m.acc_l = a.l;
    char* part = static_cast<char*>(os_.local) + p * os_slot_bytes_;  // u = 1: slot p, the lse after the rows
    m.part_o = dense_rows(part, n, Ht_, D);
    m.part_lse = reinterpret_cast<const float*>(part + lse_after(n));
    m.out = user_rows(o, head_offset(0, p));
    SF_RETURN_IF_ERROR(dev_.merge_partials({m}, shape_.batch, Ht_, D, shape_.dtype));
  }
  return Status::ok();
}

Status MeshAttention::forward_local_diagonal(void* o) {
  ++epoch_;  // this forward's arrival signals
  std::vector<int> foreign_stages;
  for (int i = 1; i < t_; ++i) foreign_stages.push_back(i);
  std::vector<Handle> out_pushes;  // our partials' puts
  std::vector<RingSet> sets(t_);
  // Foreign stage i has seen every set it needs once the last set other than its own rows' (i) is in.
  const auto last_set = [&](int i) { return i == t_ - 1 ? t_ - 2 : t_ - 1; };
  const auto finish_stage = [&](int i, const RingSet& set) -> Status {
    SF_RETURN_IF_ERROR(ring_pass({i}, -1, set, 0, AccumulatorMode::kResume, true, o));
    return push_outputs(true, &out_pushes, i);
  };

  // Our own block of every head block at once, on local data, while the first pulls are in flight. By head blocks
  // (two machines, a ring inside them): the other head block against all home keys instead, its ring blocks
  // still landing by heads. The diagonal's two calls of H heads over n keys each (ours, then the ring peers',
  // resumed) ran 7-9 % longer than the same rank's calls of H/2 heads over 2n keys: twice the blocks of work, each
  // with its set-up, and the fp32 accumulator written, read and written again (Flux S=16384 on emulated 2x2, 4x
  // H200, the trace of bench/sp/TRACES.md session 28). By head blocks the four ranks' calls took 3 % less in all
  // (1.287 against 1.327 ms on average, traced), but the layer read level over 7 alternating rounds (median 1.418 ms
  // both ways, session 29): the first call waits a little for the strided pulls (2-head rows move at ~80 GB/s), and
  // which GPU runs slowest under the power cap moves the layer by more than that.
  RingSet other;
  SF_RETURN_IF_ERROR(issue_home_ring(&sets[0], &other));
  if (diagonal_by_blocks_) {
    SF_ASSIGN_OR_RETURN(const std::vector<LandedFlag> steps,
                        comm_.landed_steps(other.head_steps, r_ - 1, heads_per_step_));
    SF_RETURN_IF_ERROR(diagonal_block_call((l_ + 1) % t_, steps));
  } else {
    SF_RETURN_IF_ERROR(diagonal_call(0, 1, AccumulatorMode::kInit));
  }
  // The foreign rows against our home keys as their Q lands, in groups of doubling size ({1}, {2, 3}, ...: a
  // group's last Q lands while the stages before it compute). With two machines that is all they need
  // (last_set(1) = 0): they finalize and leave here.
  for (int first = 1; first < t_; first *= 2) {
    std::vector<int> group;
    for (int i = first; i < std::min(2 * first, t_); ++i) {
      SF_RETURN_IF_ERROR(comm_.wait_all(torus_q_[i][0]));
      group.push_back(i);
    }
    const bool done = last_set(first) == 0;  // t = 2: the group is stage 1 alone
    SF_RETURN_IF_ERROR(ring_pass(group, -1, sets[0], 0, AccumulatorMode::kInit, done, o));
    if (done) SF_RETURN_IF_ERROR(push_outputs(true, &out_pushes, first));
  }
  // The ring peers' home blocks of every head block (copied while the calls above ran); by head blocks, head
  // block l against all home keys.
  if (diagonal_by_blocks_) SF_RETURN_IF_ERROR(diagonal_block_call(l_, {}));
  else SF_RETURN_IF_ERROR(diagonal_call(1, r_, AccumulatorMode::kResume));

  // Pulled K/V set x: every row but set x's own (they took it at home). A stage whose last set this is
  // finalizes first and leaves at once; our own rows finalize with the last set, last.
  for (int x = 1; x < t_; ++x) {
    RingSet& set = sets[x];
    SF_RETURN_IF_ERROR(issue_ring_set(x, -1, &set, &torus_kv_[x][0]));
    SF_RETURN_IF_ERROR(comm_.wait_all(torus_kv_[x][0]));
    std::vector<int> rest;
    for (int i : foreign_stages)
      if (i != x && last_set(i) != x) rest.push_back(i);
    for (int i : foreign_stages)
      if (i != x && last_set(i) == x) SF_RETURN_IF_ERROR(finish_stage(i, set));
    if (x < t_ - 1) rest.push_back(0);
    SF_RETURN_IF_ERROR(ring_pass(rest, -1, set, 0, AccumulatorMode::kResume, false, o));
    if (x < t_ - 1) continue;
    SF_RETURN_IF_ERROR(own_rows_last());
    SF_RETURN_IF_ERROR(ring_pass({0}, -1, set, 0, AccumulatorMode::kResume, true, o));
  }
  // After our rows' last call: the partials land during it or after it (with two machines the peer's leaves with
  // its second call and takes about a call's time over the link; merged before our last call, that call waited
  // for it: 0.88x on 2x1 at Flux S=16384, 2 x H200, session 28).
  SF_RETURN_IF_ERROR(merge_pushed_partials(o));
  // No barrier at the end (it took about 0.024 ms of a 1.45 ms layer on emulated 2x2, Flux S=16384, 4x H200): our
  // output is complete once the partials are merged, the next forward packs into the other set of qu_, ku_, vu_
  // (spare_q_), and its scatter's barrier keeps every other buffer until its readers are done with it (ostage_,
  // which our puts read, too: each owner merges only after its signal, before it reaches that barrier). Our puts
  // are waited for all the same, so that none stays outstanding across forwards.
  return comm_.wait_all(out_pushes);
}

}  // namespace sf::detail
