#include "algorithms/mesh_attention_impl.h"

#include <cmath>
#include <utility>

namespace sf {
namespace detail {

MeshAttention::~MeshAttention() {
  if (acc_sym_.id >= 0) acc_ = nullptr;  // symmetric: freed below
  for (SymmetricBuffer* b : {&qu_, &ku_, &vu_, &spare_q_, &spare_k_, &spare_v_, &kt_, &vt_, &os_, &lent_o_,
                            &acc_sym_, &so_, &share_ws_, &partial_signals_})
    if (b->id >= 0) (void)comm_.free_symmetric(*b);
  for (void* p : {qt_, pack_, ostage_, ring_k_, ring_v_, static_cast<void*>(acc_), borrow_q_, borrow_o_,
                  static_cast<void*>(borrow_acc_), static_cast<void*>(dacc_),
                  home_ring_k_, home_ring_v_})
    if (p) dev_.free(p);
}

RowBlock MeshAttention::block_of(int x) const {
  RowBlock b;
  for (int y : mesh_.group(LevelKind::kUlysses, x)) b.piece_len.push_back(rows_of(y));
  b.batch = shape_.batch;
  b.heads = Ht_;
  b.head_dim = shape_.head_dim;
  return b;
}

RowChunk MeshAttention::user_rows(const void* base, int64_t head0) const {
  const int64_t H = shape_.heads, D = shape_.head_dim, n = rows_of(rank_);
  return RowChunk{static_cast<char*>(const_cast<void*>(base)) + head0 * D * elem_, n, n * H * D, H * D, D};
}

// Automatic: 4 segments per Torus transfer, fewer when a segment's attention call would no longer keep the
// device busy (on a GPU a call with too few query tiles leaves multiprocessors idle, which costs more than the
// overlap gains). But at least two where a one-sided ring inside the machines relays every pulled K/V set: the
// ring peers copy a set only once it has landed, and the foreign rows' output waits for the copy; in two segments
// half of the relay and of the compute on it run while the other half lands. Flux S=16384 on 2x2 (384 query
// tiles per stage, under two busy waves): 1.05x faster at 50 GB/s on 4x H100 and 4x H200, 1.014x at 6.25 GB/s;
// on 4x1, with no relay, two segments were 0.87x (bench/sp/results/h200x4-2026-11-27-chunks-wave/).
int MeshAttention::choose_torus_chunks() const {
  if (requested_chunks_ > 0) return requested_chunks_;
  if (t_ == 1) return 1;
  const int64_t busy = dev_.busy_query_tiles();
  if (busy <= 0) return 4;
  const int64_t fewest = r_ > 1 && ring_in_machine_ && one_sided_ ? 2 : 1;
  // Of the smallest Torus stage anywhere: every rank must cut the same way, since ring peers read each other's
  // Torus blocks segment by segment.
  int64_t tiles = INT64_MAX;
  for (int x = 0; x < P_; ++x) {
    int64_t n = 0;
    for (int64_t len : block_of(x).piece_len) n += (len + 127) / 128;
    tiles = std::min(tiles, n * Ht_ * shape_.batch);
  }
  return static_cast<int>(std::clamp<int64_t>(tiles / busy, fewest, 4));
}

// Pulled by heads: the first heads, pulled peer by peer. Automatic: those of the call's first wave of work, which
// takes items head by head with the Q tile fastest (batch entry 0 first). A device asks for busy_query_tiles()
// 128-row tiles per call, about two waves; half of them is about one (on an H200 at D=128: 132 items of 192 rows,
// 6 heads at Flux S=16384 on 1x4). No preference (CPU ranks): one step's.
int64_t MeshAttention::choose_first_wave() const {
  const int64_t n = heads_per_step_, rows = rows_of(rank_), busy = dev_.busy_query_tiles();
  int64_t heads = first_wave_asked_;
  if (heads == 0) heads = busy > 0 && rows > 0 ? (busy / 2 * 128 + rows - 1) / rows : n;
  return std::min(Ht_, (heads + n - 1) / n * n);
}

Status MeshAttention::init() {
  SF_RETURN_IF_ERROR(shape_.validate());
  P_ = comm_.world_size();
  rank_ = comm_.rank();
  SF_RETURN_IF_ERROR(shape_.validate_split(P_));
  if (mesh_.world_size() != P_)
    return infeasible("mesh " + mesh_.to_string() + " covers " + std::to_string(mesh_.world_size()) +
                      " ranks but the world has " + std::to_string(P_));
  u_ = mesh_.degree(LevelKind::kUlysses);
  t_ = mesh_.degree(LevelKind::kTorus);
  r_ = mesh_.degree(LevelKind::kRing);
  if (shape_.heads % (int64_t{u_} * t_) != 0)
    return infeasible(std::to_string(shape_.heads) + " heads do not divide by Ulysses x Torus degree " +
                      std::to_string(u_ * t_) + " of mesh " + mesh_.to_string());
  iu_ = mesh_.index_in(LevelKind::kUlysses, rank_);
  l_ = mesh_.index_in(LevelKind::kTorus, rank_);
  k_ = mesh_.index_in(LevelKind::kRing, rank_);
  gu_ = mesh_.group(LevelKind::kUlysses, rank_);
  gt_ = mesh_.group(LevelKind::kTorus, rank_);
  gr_ = mesh_.group(LevelKind::kRing, rank_);
  Ht_ = shape_.heads / (u_ * t_);
  elem_ = dtype_size(shape_.dtype);
  direct_ = u_ == 1 && t_ == 1;
  ring_in_machine_ = true;
  for (int y : gr_) ring_in_machine_ = ring_in_machine_ && comm_.topology().link(rank_, y) == LinkClass::kIntra;
  diagonal_ = local_diagonal_ && one_sided_ && t_ > 1 && u_ == 1;
  if (diagonal_ && requested_chunks_ > 1)
    return invalid_argument("local_diagonal moves whole Torus blocks: torus_chunks must be 0 (automatic) or 1; got " +
                            std::to_string(requested_chunks_));
  c_ = diagonal_ ? 1 : choose_torus_chunks();
  if (!(loan_limit_ >= 0.0 && loan_limit_ <= 0.5))
    return invalid_argument("row_loan_limit must be in [0, 0.5] (the most of its rows a rank lends or borrows); got " +
                            std::to_string(loan_limit_));
  if (loan_limit_ > 0.0 && !(direct_ && r_ > 1 && ring_in_machine_ && one_sided_))
    return infeasible("row loans need a ring inside one machine and nothing else (mesh R" + std::to_string(P_) +
                      " on one machine) and the one-sided transport; got mesh " + mesh_.to_string() + ", " +
                      transport_name(one_sided_ ? Transport::kOneSided : Transport::kTwoSided) +
                      (ring_in_machine_ ? "" : ", ring across machines"));

  if (share_ && !(direct_ && r_ > 1 && ring_in_machine_ && one_sided_))
    return infeasible("ring_share needs a ring inside one machine and nothing else (mesh R" + std::to_string(P_) +
                      " on one machine) and the one-sided transport; got mesh " + mesh_.to_string() + ", " +
                      transport_name(one_sided_ ? Transport::kOneSided : Transport::kTwoSided) +
                      (ring_in_machine_ ? "" : ", ring across machines"));
  if (share_ && loan_limit_ > 0.0)
    return invalid_argument("ring_share takes the ring's last calls whole: it excludes row_loan_limit > 0");

  if (lanes_asked_ < 0 || lanes_asked_ > 2)
    return invalid_argument("compute_lanes must be 0 (the layer's choice), 1 or 2; got " +
                            std::to_string(lanes_asked_));
  // Only Torus stages have calls of foreign rows alone to put beside our own rows' calls.
  lanes_ = t_ > 1 && lanes_asked_ == 2 ? std::min(2, dev_.compute_lanes()) : 1;

  if (heads_per_step_ < 0)
    return invalid_argument("ring_heads_per_step must be 0 (whole K/V blocks) or a number of heads; got " +
                            std::to_string(heads_per_step_));
  if (first_wave_asked_ < 0)
    return invalid_argument("ring_first_wave_heads must be 0 (about the first wave's heads) or a number of heads; "
                            "got " + std::to_string(first_wave_asked_));
  if (heads_per_step_ > 0 && loan_limit_ > 0.0)
    return invalid_argument("ring_heads_per_step (" + std::to_string(heads_per_step_) +
                            ", which the planner sets for one-sided rings inside a machine) takes our rows against "
                            "every block in one call: it excludes row_loan_limit > 0 (set it to 0 for that)");

  int64_t max_block = 0, max_rows = 0;
  for (int x = 0; x < P_; ++x) {
    max_block = std::max(max_block, block_of(x).elems());
    max_rows = std::max(max_rows, rows_of(x));
  }
  slot_bytes_ = static_cast<size_t>(max_block) * elem_;
  os_slot_bytes_ = static_cast<size_t>(shape_.batch * max_rows * Ht_ * shape_.head_dim) * elem_;
  ostage_slot_bytes_ = slot_bytes_;
  if (diagonal_) {  // room for a partial's lse after its rows, in the slots it leaves from and lands in
    const size_t lse_bytes = static_cast<size_t>(shape_.batch * max_rows * Ht_) * sizeof(float);
    const size_t with_lse = lse_after(max_rows) + lse_bytes;
    os_slot_bytes_ = (with_lse + 255) / 256 * 256;
    ostage_slot_bytes_ = (std::max(slot_bytes_, with_lse) + 255) / 256 * 256;
  }
  acc_stride_ = max_block;

  auto local = [&](size_t bytes, void** out) -> Status {
    SF_ASSIGN_OR_RETURN(*out, dev_.alloc(std::max<size_t>(bytes, 64)));
    return Status::ok();
  };
  auto symmetric = [&](size_t bytes, SymmetricBuffer* out) -> Status {
    SF_ASSIGN_OR_RETURN(*out, comm_.alloc_symmetric(std::max<size_t>(bytes, 64)));
    return Status::ok();
  };
  // Collective allocations happen in the same order on every rank.
  const bool need_home_copy = !direct_ || (one_sided_ && r_ > 1);
  if (need_home_copy) {
    SF_RETURN_IF_ERROR(symmetric(t_ * slot_bytes_, &qu_));
    SF_RETURN_IF_ERROR(symmetric(t_ * slot_bytes_, &ku_));
    SF_RETURN_IF_ERROR(symmetric(t_ * slot_bytes_, &vu_));
    if (diagonal_)
      for (SymmetricBuffer* b : {&spare_q_, &spare_k_, &spare_v_}) SF_RETURN_IF_ERROR(symmetric(t_ * slot_bytes_, b));
  }
  if (t_ > 1) {
    SF_RETURN_IF_ERROR(symmetric((t_ - 1) * slot_bytes_, &kt_));
    SF_RETURN_IF_ERROR(symmetric((t_ - 1) * slot_bytes_, &vt_));
    SF_RETURN_IF_ERROR(local((t_ - 1) * slot_bytes_, &qt_));
  }
  // Pulled by heads where every ring peer's K/V can be read in strided runs (their memory mapped here): a lone
  // ring, or the home K/V of a ring beside Torus stages (no Ulysses level; the local diagonal moves its home blocks
  // its own way).
  // Every ring peer's memory mapped here (strided pulls read it directly); asked only of one-sided rings in a machine.
  bool ring_mapped = r_ > 1 && ring_in_machine_ && one_sided_ && ku_.id >= 0;
  for (int y : gr_) ring_mapped = ring_mapped && (y == rank_ || comm_.peer_address(ku_, y) != nullptr);
  by_heads_ = heads_per_step_ > 0 && u_ == 1 && r_ > 1 && ring_in_machine_ && one_sided_ && !diagonal_ && ring_mapped;
  // The local diagonal by head blocks: the same strided pulls, into the diagonal's home blocks.
  diagonal_by_blocks_ = diagonal_ && t_ == 2 && r_ > 1 && heads_per_step_ > 0 && ring_in_machine_ && ring_mapped;
  if (by_heads_ || diagonal_by_blocks_) first_wave_ = choose_first_wave();
  if (!direct_) {
    SF_RETURN_IF_ERROR(symmetric(u_ * t_ * os_slot_bytes_, &os_));
    SF_RETURN_IF_ERROR(local(3 * u_ * t_ * os_slot_bytes_, &pack_));
    SF_RETURN_IF_ERROR(local(t_ * ostage_slot_bytes_, &ostage_));
  }
  if (one_sided_ && r_ > 1) {  // the ring groups' barriers (collective: every rank names every ring group)
    std::vector<std::vector<int>> rings;
    for (int x = 0; x < P_; ++x)
      if (mesh_.index_in(LevelKind::kRing, x) == 0) rings.push_back(mesh_.group(LevelKind::kRing, x));
    SF_RETURN_IF_ERROR(comm_.prepare_barriers(rings));
  }
  if (r_ > 1) {
    SF_RETURN_IF_ERROR(local(t_ * (r_ - 1) * slot_bytes_, &ring_k_));
    SF_RETURN_IF_ERROR(local(t_ * (r_ - 1) * slot_bytes_, &ring_v_));
  }
  void* acc = nullptr;
  const size_t acc_bytes = t_ * (acc_stride_ + 2 * acc_stride_ / shape_.head_dim) * sizeof(float);
  // Pulled by heads in a lone ring, our rows' one call starts and finalizes: no accumulator (fp32, twice the Q
  // bytes), unless a device may have to chain its launches through one (the CUDA kernel takes up to 32 K/V chunks,
  // one per ring member, in a launch).
  const bool one_shot = by_heads_ && direct_ && r_ <= 32;
  if (!share_ && !one_shot) SF_RETURN_IF_ERROR(local(acc_bytes, &acc));
  acc_ = static_cast<float*>(acc);
  if (diagonal_) {
    dacc_slot_ = shape_.batch * rows_of(rank_) * Ht_ * shape_.head_dim;
    SF_RETURN_IF_ERROR(local(t_ * (dacc_slot_ + 2 * dacc_slot_ / shape_.head_dim) * sizeof(float), &acc));
    dacc_ = static_cast<float*>(acc);
    SF_ASSIGN_OR_RETURN(partial_signals_, comm_.alloc_signals(static_cast<size_t>(t_)));  // collective
    if (r_ > 1) {
      SF_RETURN_IF_ERROR(local((r_ - 1) * t_ * slot_bytes_, &home_ring_k_));
      SF_RETURN_IF_ERROR(local((r_ - 1) * t_ * slot_bytes_, &home_ring_v_));
    }
  }
  if (loan_limit_ > 0.0) {
    loan_cap_rows_ = static_cast<int64_t>(std::ceil(loan_limit_ * static_cast<double>(max_rows)));
    const int64_t elems = shape_.batch * loan_cap_rows_ * Ht_ * shape_.head_dim;
    SF_RETURN_IF_ERROR(symmetric(elems * elem_, &lent_o_));
    SF_RETURN_IF_ERROR(local(elems * elem_, &borrow_q_));
    SF_RETURN_IF_ERROR(local(elems * elem_, &borrow_o_));
    SF_RETURN_IF_ERROR(local((elems + 2 * elems / shape_.head_dim) * sizeof(float), &acc));
    borrow_acc_ = static_cast<float*>(acc);
  }
  if (share_) SF_RETURN_IF_ERROR(init_share(acc_bytes, max_rows));
  return Status::ok();
}

Status MeshAttention::forward(const void* q, const void* k, const void* v, void* o) {
  if (!q || !k || !v || !o) return invalid_argument("forward: q, k, v and o must all be given");
  if (diagonal_) {  // this forward packs into the set the one before did not
    std::swap(qu_, spare_q_);
    std::swap(ku_, spare_k_);
    std::swap(vu_, spare_v_);
  }
  SF_RETURN_IF_ERROR(scatter_ulysses(q, k, v));
  SF_RETURN_IF_ERROR(issue_torus());
  if (diagonal_) return forward_local_diagonal(o);

  std::vector<int> all_stages(t_), foreign_stages;
  for (int i = 0; i < t_; ++i) all_stages[i] = i;
  foreign_stages.assign(all_stages.begin() + 1, all_stages.end());
  std::vector<Handle> out_recvs;
  std::vector<RingSet> sets(t_);  // K/V set x: stage x's Torus block and its ring peers' (set 0: stationary)

  // Pull Q stages: stage i computes Q_i against the stationary K/V (a ring over the ring group). Stage 0 is
  // local data: its call on our own block starts at once, while everything else is in flight. When the layer is
  // compute-bound (one segment per Torus transfer) the other stages share calls in groups of doubling size,
  // {1}, {2, 3}, {4..7}, ...: a group's call starts once its last Q has landed. The links deliver the Q blocks
  // in the order they were issued, so group g..2g−1 waits for 2g−1 Q transfers while the g stages before it
  // compute; compute-bound (a stage's compute at least its K/V transfer, twice its Q), that is no wait. One call
  // for all of them waited for all t−1 transfers behind one stage's compute (about 19 ms of 200 on 4 emulated
  // machines, CogVideoX S=163840 at 6.25 GB/s). Otherwise each stage computes segment by segment as its Q arrives.
  SF_ASSIGN_OR_RETURN(const std::vector<Handle> borrowed_q, pull_borrowed_rows());  // none without loans
  SF_RETURN_IF_ERROR(issue_ring_set(0, -1, &sets[0]));
  // The first call takes the borrowed rows too, so it waits for them: a few MB over NVLink, some microseconds.
  SF_RETURN_IF_ERROR(comm_.wait_all(borrowed_q));
  std::vector<LandedFlag> steps;  // pulled by heads: a flag per ring peer's block, raised step by step
  if (by_heads_) {
    SF_ASSIGN_OR_RETURN(steps, comm_.landed_steps(sets[0].head_steps, r_ - 1, heads_per_step_));
  }
  if (share_) {
    SF_RETURN_IF_ERROR(offer_shared_rows(q));  // after the scatter's barrier: beside the first call
    SF_RETURN_IF_ERROR(shared_ring_calls(sets[0], steps));
  } else if (by_heads_) {
    // One call over every home block, each pulled block's heads waited for step by step (ring_heads_per_step).
    // Beside Torus stages our rows go on with the pulled sets, so it does not finalize.
    SF_RETURN_IF_ERROR(compute({0}, -1, blocks_by_heads(sets[0], steps), AccumulatorMode::kInit, t_ == 1, o));
  } else {
    SF_RETURN_IF_ERROR(compute({0}, -1, {{&sets[0].blocks[0]}}, AccumulatorMode::kInit, t_ == 1 && r_ == 1, o));
    SF_RETURN_IF_ERROR(ring_pass({0}, -1, sets[0], 1, AccumulatorMode::kResume, t_ == 1, o));
  }
  if (c_ == 1 && t_ > 1) {
    for (int first = 1; first < t_; first *= 2) {
      std::vector<int> group;
      for (int i = first; i < std::min(2 * first, t_); ++i) {
        SF_RETURN_IF_ERROR(comm_.wait_all(torus_q_[i][0]));
        group.push_back(i);
      }
      SF_RETURN_IF_ERROR(ring_pass(group, -1, sets[0], 0, AccumulatorMode::kInit, false, o));
    }
  } else {
    for (int i = 1; i < t_; ++i)
      for (int q_seg = 0; q_seg < c_; ++q_seg) {
        SF_RETURN_IF_ERROR(comm_.wait_all(torus_q_[i][q_seg]));
        SF_RETURN_IF_ERROR(ring_pass({i}, q_seg, sets[0], 0, AccumulatorMode::kInit, false, o));
      }
  }
  if (t_ == 1 && !direct_) SF_RETURN_IF_ERROR(push_outputs(false, &out_recvs));

  // Pull KV stages: all Q against the K/V of Torus peer l+x. Compute-bound with the ring inside the machine:
  // as few calls as the data allows (pull_kv_merged). Otherwise segment by segment as the set arrives
  // (pull_kv_by_segment), and in the last stage the foreign rows go first and are pushed to their owners while
  // our own rows still compute.
  if (t_ > 1 && c_ == 1 && ring_in_machine_) {
    SF_RETURN_IF_ERROR(pull_kv_merged(foreign_stages, &sets, &out_recvs, o));
  } else if (t_ > 1) {
    SF_RETURN_IF_ERROR(pull_kv_by_segment(all_stages, foreign_stages, &sets, &out_recvs, o));
  }
  if (!direct_) {
    if (one_sided_) SF_RETURN_IF_ERROR(comm_.barrier_all());  // all pushes landed; buffers free for reuse
    else SF_RETURN_IF_ERROR(comm_.wait_all(out_recvs));
    SF_RETURN_IF_ERROR(gather_outputs(o));
  } else if (one_sided_ && r_ > 1) {
    if (borrows()) SF_RETURN_IF_ERROR(return_borrowed_rows());
    // Ring peers are done reading our K/V (and our lent Q), and every borrowed row's output has landed.
    // With ring_share also every helper call toward our rows has ended.
    SF_RETURN_IF_ERROR(comm_.barrier(gr_, Lane::kRing));
    SF_RETURN_IF_ERROR(collect_lent_rows(o));
    if (share_) SF_RETURN_IF_ERROR(collect_shared_rows(o));
  }
  return Status::ok();
}

}  // namespace detail

const char* transport_name(Transport t) { return t == Transport::kOneSided ? "one-sided" : "two-sided"; }

Result<std::unique_ptr<SpAttention>> create_mesh_attention(Comm& comm, Device& device, const AttentionShape& shape,
                                                           const SpAttentionConfig& config) {
  auto a = std::make_unique<detail::MeshAttention>(comm, device, shape, config);
  SF_RETURN_IF_ERROR(a->init());
  return std::unique_ptr<SpAttention>(std::move(a));
}

Status SpAttention::forward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& o) {
  const std::array<int64_t, 4> want = local_shape();
  SF_RETURN_IF_ERROR(q.expect("q", dtype(), want));
  SF_RETURN_IF_ERROR(k.expect("k", dtype(), want));
  SF_RETURN_IF_ERROR(v.expect("v", dtype(), want));
  SF_RETURN_IF_ERROR(o.expect("o", dtype(), want));
  return forward(q.data, k.data, v.data, o.data);
}

Result<std::unique_ptr<SpAttention>> SpAttention::create(Comm& comm, Device& device, const AttentionShape& shape,
                                                         const SpAttentionConfig& config) {
  return create_mesh_attention(comm, device, shape, config);
}

}  // namespace sf
