// MeshAttention's attention calls (phase C): which rows against which K/V blocks, in how few calls.
#include "algorithms/mesh_attention_impl.h"

#include <cmath>

namespace sf::detail {

AttentionProblem MeshAttention::problem(int64_t batch, const std::vector<QChunk>& qs, const std::vector<KVChunk>& kvs,
                                        AccumulatorMode mode, bool finalize) const {
  AttentionProblem p;
  p.dtype = shape_.dtype;
  p.batch = batch;
  p.heads = Ht_;
  p.head_dim = shape_.head_dim;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape_.head_dim)));
  p.q = qs.data();
  p.num_q = static_cast<int32_t>(qs.size());
  p.kv = kvs.data();
  p.num_kv = static_cast<int32_t>(kvs.size());
  p.mode = mode;
  p.finalize = finalize;
  return p;
}

void MeshAttention::append_kv_chunks(const KVBlock& kv, int kv_seg, const LandedFlag& ready,
                                     std::vector<KVChunk>* kvs) const {
  const int64_t D = shape_.head_dim, row = Ht_ * D;
  for (int j = 0; j < kv.layout.pieces(); ++j) {
    const int64_t n = kv.layout.piece_len[j];
    const int64_t a = kv_seg < 0 ? 0 : seg_begin(n, kv_seg), len = kv_seg < 0 ? n : seg_begin(n, kv_seg + 1) - a;
    if (len == 0) continue;
    const int64_t off = (kv.layout.piece_offset(j) + a * row) * elem_;
    kvs->push_back({RowChunk{kv.k + off, len, n * row, row, D}, RowChunk{kv.v + off, len, n * row, row, D}, ready});
  }
}

Status MeshAttention::compute(const std::vector<int>& stages, int q_seg, const std::vector<KVPart>& kv_parts,
                              AccumulatorMode mode, bool finalize, void* o,
                              const SharedWork* shared) {
  const int64_t D = shape_.head_dim, row = Ht_ * D, B = shape_.batch;
  std::vector<QChunk> qs;
  for (int i : stages) {
    const RowBlock qb = block_of(gt_[(l_ + i) % t_]);
    char* qbase = static_cast<char*>(const_cast<void*>(i == 0 ? home_q_ : static_cast<const void*>(slot(qt_, slot_bytes_, i - 1))));
    // No accumulator where our rows' one call starts and finalizes (pulled by heads): the chunks get none.
    float *acc_o = nullptr, *acc_m = nullptr, *acc_l = nullptr;
    if (acc_ != nullptr) {
      acc_o = acc_ + i * acc_stride_;
      acc_m = acc_ + t_ * acc_stride_ + i * (acc_stride_ / D);
      acc_l = acc_m + t_ * (acc_stride_ / D);
    }
    if (diagonal_ && i == 0) {  // our rows of head block l: where the diagonal call left them
      const AccSlot a = diagonal_acc(l_);
      acc_o = a.o, acc_m = a.m, acc_l = a.l;
    }
    for (int j = 0; j < qb.pieces(); ++j) {
      const int64_t n = qb.piece_len[j];
      // Our own rows go straight into the user's output; the rest wait in ostage_ to be pushed.
      const bool mine = i == 0 && j == iu_;
      const RowChunk out_piece =
          mine ? user_rows(o, head_offset(iu_, l_)) : qb.piece(slot(ostage_, ostage_slot_bytes_, i), j, elem_);
      // Rows we lent out are computed by their borrowers (row loans: only in a lone ring, one piece).
      const int64_t mine_n = mine ? std::min(n, kept_rows()) : n;
      for (int seg = q_seg < 0 ? 0 : q_seg; seg < (q_seg < 0 ? c_ : q_seg + 1); ++seg) {
        const int64_t a = seg_begin(n, seg), len = std::min(seg_begin(n, seg + 1), mine_n) - a;
        if (len <= 0) continue;
        QChunk c;
        c.q = RowChunk{qbase + (qb.piece_offset(j) + a * row) * elem_, len, n * row, row, D};
        // The accumulator of (piece, segment) is dense: [B, len, Ht, D] right after the segments before it.
        if (acc_o != nullptr) {
          c.acc_o = acc_o + qb.piece_offset(j) + B * a * row;
          c.acc_m = acc_m + qb.piece_ml_offset(j) + B * a * Ht_;
          c.acc_l = acc_l + qb.piece_ml_offset(j) + B * a * Ht_;
        }
        // A foreign stage's partial under the local diagonal: its owner merges it, by its lse.
        if (finalize && diagonal_ && i > 0)  // u = 1: one piece, whose lse follows its rows
          c.lse = reinterpret_cast<float*>(slot(ostage_, ostage_slot_bytes_, i) + lse_after(n)) + B * a * Ht_;
        if (finalize) {
          c.out = out_piece;
          c.out.data = static_cast<char*>(out_piece.data) + a * out_piece.stride_s * elem_;
          c.out.len = len;
        }
        qs.push_back(c);
      }
    }
  }
  // Borrowed rows ride along with our own.
  if (borrows() && std::find(stages.begin(), stages.end(), 0) != stages.end())
    append_borrowed_rows(&qs);
  std::vector<KVChunk> kvs;
  for (const KVPart& kv_part : kv_parts) append_kv_chunks(*kv_part.block, kv_part.seg, kv_part.ready, &kvs);
  if (qs.empty() || (kvs.empty() && !finalize && mode == AccumulatorMode::kResume)) return Status::ok();
  AttentionProblem p = problem(B, qs, kvs, mode, finalize);
  p.shared = shared;
  // With two compute lanes, calls of foreign rows alone run on lane 1, beside our own rows' calls (they touch
  // other accumulators and outputs); a call over both follows, and precedes, every call on either lane.
  const bool ours = std::find(stages.begin(), stages.end(), 0) != stages.end();
  const bool mixed = lanes_ > 1 && ours && stages.size() > 1;
  if (lanes_ > 1 && !ours) p.lane = 1;
  if (mixed) SF_RETURN_IF_ERROR(dev_.order_lanes());
  SF_RETURN_IF_ERROR(dev_.attention(p));
  return mixed ? dev_.order_lanes() : Status::ok();
}

// Our rows' last call hides the foreign rows' pushes: on two lanes it starts only after every foreign call, so
// that it cannot take the SMs those need and hold back the pushes it is there to hide (beside them, Flux S=36864 on
// emulated 4x1 at 50 GB/s ran 1.09x as long, 4x H200, bench/sp/TRACES.md session 27).
std::vector<MeshAttention::KVPart> MeshAttention::blocks_by_heads(const RingSet& set0,
                                                                   const std::vector<LandedFlag>& steps) const {
  std::vector<KVPart> parts = {{&set0.blocks[0]}};
  for (int s = 1; s < r_; ++s) parts.push_back({&set0.blocks[s], -1, steps[s - 1]});
  return parts;
}

Status MeshAttention::own_rows_last() { return lanes_ > 1 ? dev_.order_lanes() : Status::ok(); }

Status MeshAttention::ring_pass(const std::vector<int>& stages, int q_seg, const RingSet& set, int first,
                                AccumulatorMode mode, bool finalize, void* o, int kv_seg,
                                const SharedWork* shared) {
  const std::vector<KVBlock>& blocks = set.blocks;
  const std::vector<std::vector<Handle>>& handles = set.arrived[std::max(kv_seg, 0)];
  if (ring_in_machine_) {
    // One call over the blocks. In a lone ring it starts, where the backend can, on those that are there while
    // the last land (the kernel waits for each at its first tile: Comm::landed_flag): a 1x4 ring at S=16384
    // idled 0.06 ms of 1.4 for its third block otherwise, and runs 1.047x faster so (4x H200, session 20,
    // bench/sp/TRACES.md). Beside Torus stages it did not pay (2x2 at S=16384: 0.987x), where calls that hold
    // the SMs early keep the ring's barrier kernels for the next set waiting.
    std::vector<KVPart> parts;
    for (int s = first; s < r_; ++s) {
      LandedFlag ready;
      if (t_ == 1) {
        SF_ASSIGN_OR_RETURN(ready, comm_.landed_flag(handles[s]));
      } else {
        SF_RETURN_IF_ERROR(comm_.wait_all(handles[s]));
      }
      parts.push_back({&blocks[s], kv_seg, ready});
    }
    return parts.empty() ? Status::ok() : compute(stages, q_seg, parts, mode, finalize, o, shared);
  }
  for (int s = first; s < r_; ++s) {
    SF_RETURN_IF_ERROR(comm_.wait_all(handles[s]));
    SF_RETURN_IF_ERROR(compute(stages, q_seg, {{&blocks[s], kv_seg}}, s == first ? mode : AccumulatorMode::kResume,
                               finalize && s == r_ - 1, o));
  }
  return Status::ok();
}

Status MeshAttention::pull_kv_merged(const std::vector<int>& foreign_stages, std::vector<RingSet>* sets,
                                     std::vector<Handle>* out_recvs, void* o) {
  // The foreign rows take each set as it lands (the links deliver them in issue order; one call for several
  // sets would wait for the last of them: 19 ms of 195 on 4 emulated machines, CogVideoX S=163840 at
  // 6.25 GB/s), finalize with the last one and leave; our own rows take every set in one last call, long
  // enough to hide the push of the foreign output. With merge_kv_sets (the planner's model says the sets land
  // in time) they take the sets in groups of doubling size, {1}, {2, 3}, {4..7}, ...: fewer, longer calls.
  std::vector<KVPart> every, rest;
  const bool merge = merge_sets_ && !(by_block_ && r_ > 1);  // by block: each set's blocks in two calls of their own
  int group_end = 1;  // sets [x, group_end) go into the foreign rows' next call
  for (int x = 1; x < t_; ++x) {
    if (x == group_end) group_end = merge ? std::min(2 * x, t_) : x + 1;
    RingSet& set = (*sets)[x];
    // The ring's transfers of set x (one-sided: the ring barrier and pulls; two-sided: the forwarding) wait for
    // our Torus pull of it alone: not for the compute before them, and not for a slower ring peer's compute, so
    // the ring peers' blocks are there when the call needs them.
    SF_RETURN_IF_ERROR(issue_ring_set(x, -1, &set, &torus_kv_[x][0]));
    SF_RETURN_IF_ERROR(comm_.wait_all(torus_kv_[x][0]));
    int first = 0;  // the set's blocks [first, r) go into the next call
    if (by_block_ && r_ > 1) {  // our Torus block now; the ring peers' copies of theirs land one copy later
      SF_RETURN_IF_ERROR(compute(foreign_stages, -1, {{&set.blocks[0]}}, AccumulatorMode::kResume, false, o));
      first = 1;
    }
    for (int s = 0; s < r_; ++s) {
      if (s >= first) {
        SF_RETURN_IF_ERROR(comm_.wait_all(set.arrived[0][s]));
        rest.push_back({&set.blocks[s]});
      }
      every.push_back({&set.blocks[s]});
    }
    if (x + 1 < group_end) continue;  // the group's later sets go into the same call
    if (x < t_ - 1 || !stagger_push_) {
      SF_RETURN_IF_ERROR(compute(foreign_stages, -1, rest, AccumulatorMode::kResume, x == t_ - 1, o));
      rest.clear();
      continue;
    }
    // Staggered: stage i's output crosses the link while stage i+1 computes.
    for (int i : foreign_stages) {
      SF_RETURN_IF_ERROR(compute({i}, -1, rest, AccumulatorMode::kResume, true, o));
      SF_RETURN_IF_ERROR(push_outputs(true, out_recvs, i));
    }
  }
  if (!stagger_push_) SF_RETURN_IF_ERROR(push_outputs(true, out_recvs));
  SF_RETURN_IF_ERROR(own_rows_last());
  SF_RETURN_IF_ERROR(compute({0}, -1, every, AccumulatorMode::kResume, true, o));
  return push_outputs(false, out_recvs);
}

Status MeshAttention::pull_kv_by_segment(const std::vector<int>& all_stages, const std::vector<int>& foreign_stages,
                                         std::vector<RingSet>* sets, std::vector<Handle>* out_recvs, void* o) {
  for (int x = 1; x < t_; ++x) {
    const bool last = x == t_ - 1;
    RingSet& set = (*sets)[x];
    // In the last stage only the foreign rows take the set as it lands: their output must cross the link.
    const std::vector<int>& rows = last ? foreign_stages : all_stages;
    for (int seg = 0; seg < c_; ++seg) {
      const bool finalize = last && seg == c_ - 1;
      // Ring peers pull this segment over their own links at our rate, so theirs lands about when ours does;
      // the foreign rows then wait for the last segment only, not for whole ring blocks (trace 3: CogVideoX 2x2
      // at 6.25 GB/s spent ~5 ms after the last segment landed on the ring peers' blocks before its push).
      // The ring's transfers of it wait for this segment's Torus pull alone, not for compute.
      SF_RETURN_IF_ERROR(issue_ring_set(x, seg, &set, &torus_kv_[x][seg]));
      SF_RETURN_IF_ERROR(comm_.wait_all(torus_kv_[x][seg]));
      // Our rows of the segment and the ring peers' (inside a machine in one call).
      SF_RETURN_IF_ERROR(ring_pass(rows, -1, set, 0, AccumulatorMode::kResume, finalize, o, seg));
    }
  }
  // Everything has landed: our own rows take the last set whole, in one call that hides the foreign push.
  SF_RETURN_IF_ERROR(push_outputs(true, out_recvs));
  std::vector<KVPart> whole;
  for (const KVBlock& b : (*sets)[t_ - 1].blocks) whole.push_back({&b});
  SF_RETURN_IF_ERROR(own_rows_last());
  SF_RETURN_IF_ERROR(compute({0}, -1, whole, AccumulatorMode::kResume, true, o));
  return push_outputs(false, out_recvs);
}

}  // namespace sf::detail
