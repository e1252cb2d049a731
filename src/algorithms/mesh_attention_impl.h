// MeshAttention's declaration, shared by the files that implement it (mesh_attention.h describes the schedule):
//   mesh_attention.cpp           geometry, workspaces, the forward pass, creation
//   mesh_attention_exchange.cpp  A. Ulysses scatter, B. Torus pulls, C. the ring's transfers, D. output pushes
//   mesh_attention_compute.cpp   C. the attention calls: which rows against which K/V, in how many calls
//   mesh_attention_loans.cpp     row loans between ranks of a lone ring (row_loans.h)
//   mesh_attention_diagonal.cpp  the local diagonal (SpAttentionConfig::local_diagonal)
//   mesh_attention_share.cpp     a lone ring's last calls shared between its GPUs (SpAttentionConfig::ring_share)
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/mesh_attention.h"
#include "algorithms/row_block.h"
#include "algorithms/row_loans.h"

namespace sf::detail {

class MeshAttention final : public SpAttention {
 public:
  MeshAttention(Comm& comm, Device& device, const AttentionShape& shape, const SpAttentionConfig& config)
      : comm_(comm),
        dev_(device),
        shape_(shape),
        mesh_(config.mesh),
        one_sided_(config.transport == Transport::kOneSided),
        requested_chunks_(config.torus_chunks),
        stagger_push_(config.stagger_foreign_push && one_sided_),
        by_block_(config.foreign_rows_by_block),
        merge_sets_(config.merge_kv_sets),
        local_diagonal_(config.local_diagonal),
        loan_limit_(config.row_loan_limit),
        share_(config.ring_share),
        heads_per_step_(config.ring_heads_per_step),
        first_wave_asked_(config.ring_first_wave_heads),
        lanes_asked_(config.compute_lanes) {}
  ~MeshAttention() override;

  Status init();
  Status rebalance(const std::vector<double>& rank_speeds) override;
  int64_t query_rows_computed() const override { return kept_rows() + (borrows() ? loans_.borrowed(rank_) : 0); }
  int torus_segments() const override { return c_; }
  int64_t ring_first_wave_heads() const override { return by_heads_ || diagonal_by_blocks_ ? first_wave_ : 0; }
  int compute_lanes() const override { return lanes_; }
  Result<int64_t> blocks_taken_by_helpers() override;
  std::string loans_summary() const override {
    std::string out;
    for (const RowLoan& l : loans_.loans)
      out += (out.empty() ? "" : ", ") + std::to_string(l.lender) + "->" + std::to_string(l.borrower) + " " +
             std::to_string(l.rows) + " rows";
    return out;
  }
  using SpAttention::forward;
  Status forward(const void* q, const void* k, const void* v, void* o) override;
  std::array<int64_t, 4> local_shape() const override {
    return {shape_.batch, rows_of(rank_), shape_.heads, shape_.head_dim};
  }
  DType dtype() const override { return shape_.dtype; }
  std::array<void*, 2> kv_input_buffers() const override {
    if (direct_ && ku_.id >= 0) return {ku_.local, vu_.local};
    return {nullptr, nullptr};
  }

 private:
  // ---- geometry (all derived from the mesh and the uneven sequence split; identical on every rank)
  int64_t rows_of(int x) const { return seq_count(shape_.seq_len, P_, x); }
  RowBlock block_of(int x) const;  // post-Ulysses rows of rank x with Ht heads
  int choose_torus_chunks() const;
  int64_t choose_first_wave() const;
  int torus_member(int x, int pos) const { return mesh_.group(LevelKind::kTorus, x)[pos]; }
  int64_t head_offset(int ulysses_index, int torus_index) const { return (ulysses_index * t_ + torus_index) * Ht_; }
  RowChunk user_rows(const void* base, int64_t head0) const;  // [B, n_me, H, D] view at head `head0`
  char* slot(void* base, size_t stride, int i) const { return static_cast<char*>(base) + i * stride; }

  // ---- phases
  Status scatter_ulysses(const void* q, const void* k, const void* v);
  Status issue_torus();
  struct KVBlock {
    RowBlock layout;
    char* k = nullptr;
    char* v = nullptr;
  };
  struct RingSet {
    std::vector<KVBlock> blocks;  // [r]: block s comes from ring member k−s; block 0 is our own
    // [segment][r]: when row segment `segment` of each block has arrived. A set moved whole has one entry.
    std::vector<std::vector<std::vector<Handle>>> arrived;
    // Pulled by heads (ring_heads_per_step): the pulls in issue order, each with the step of its ring block's flag
    // (flag s-1 for block s) that it completes.
    std::vector<LandedStep> head_steps;
  };
  // Moves row segment `seg` of set x's ring blocks (seg = -1: the whole blocks, in one go). The first call for
  // a set lays it out. `landed`: the handles after which our own block's rows may be read (our Torus pull of
  // them); the ring's transfers then wait for those alone, not for the compute issued so far. nullptr: they
  // follow the compute (set 0, whose rows the compute stream may just have copied).
  Status issue_ring_set(int x, int seg, RingSet* set, const std::vector<Handle>* landed = nullptr);
  // First row of segment `seg` of a piece of n rows (seg == c_ gives n). Boundaries fall on multiples of
  // 128 rows (the GPU kernel's tile) when the piece is long enough.
  int64_t seg_begin(int64_t n, int seg) const {
    const int64_t a = n * seg / c_, granule = n >= 128 * c_ ? 128 : 1;
    return seg == c_ ? n : a / granule * granule;
  }
  // A lone ring's pulls of set 0 in steps of heads (ring_heads_per_step) from the members' kb and vb at `base`.
  Status pull_ring_by_heads(const SymmetricBuffer& kb, const SymmetricBuffer& vb, size_t base, RingSet* set);
  // Moves row segment `seg` of a RowBlock (all pieces, all batch entries): one transfer per contiguous run.
  // send/recv/get/put are chosen by the caller through `move(offset_elems, count_elems)`.
  template <typename Move>
  Status for_segment_runs(const RowBlock& b, int seg, Move move) const;
  // The same with seg = -1 meaning the whole block (one run).
  template <typename Move>
  Status for_rows(const RowBlock& b, int seg, Move move) const {
    if (seg >= 0) return for_segment_runs(b, seg, move);
    return b.elems() ? move(0, b.elems()) : Status::ok();
  }
  // A K/V block, or one row segment of it (seg = -1: all rows).
  struct KVPart {
    const KVBlock* block;
    int seg = -1;
    LandedFlag ready{};  // Comm::landed_flag of the block's transfer, or none: it is there
  };
  // One attention call: Q rows of `stages` (row segment q_seg of every piece, or all rows if -1) against every
  // part in `kv` (the kernel takes them as a list of chunks). Accumulators are laid out per (piece, segment).
  // The problem of one call over Ht heads; it points into qs and kvs, which must outlive the call.
  AttentionProblem problem(int64_t batch, const std::vector<QChunk>& qs, const std::vector<KVChunk>& kvs,
                           AccumulatorMode mode, bool finalize) const;
  // shared: AttentionProblem::shared of the call, or null.
  Status compute(const std::vector<int>& stages, int q_seg, const std::vector<KVPart>& kv, AccumulatorMode mode,
                 bool finalize, void* o, const SharedWork* shared = nullptr);
  // Before our rows' last call (compute_lanes): orders the lanes.
  Status own_rows_last();
  // Every home block of set 0 pulled by heads, as one call takes them: ours, then the ring peers' with their step
  // flags (`steps`, one per peer: Comm::landed_steps).
  std::vector<KVPart> blocks_by_heads(const RingSet& set0, const std::vector<LandedFlag>& steps) const;
  // Q rows of `stages` against ring blocks [first, r) of one K/V set (row segment kv_seg of each, -1: whole
  // blocks). A ring inside a machine delivers every block long before it is needed, so all of them go into one
  // call (fewer, longer calls: each call costs its tiles' set-up and a partly filled last wave); a ring across
  // machines keeps one call per arriving block.
  Status ring_pass(const std::vector<int>& stages, int q_seg, const RingSet& set, int first, AccumulatorMode mode,
                   bool finalize, void* o, int kv_seg = -1, const SharedWork* shared = nullptr);
  // The K/V chunks of a block (row segment kv_seg of each piece, -1: whole), flagged `ready`.
  void append_kv_chunks(const KVBlock& kv, int kv_seg, const LandedFlag& ready, std::vector<KVChunk>* kvs) const;
  // Compute-bound Pull KV phase: the foreign stages over each K/V set 1..t-1 as it lands (then their output is
  // pushed), and our own stage over all sets in one last call.
  Status pull_kv_merged(const std::vector<int>& foreign_stages, std::vector<RingSet>* sets,
                        std::vector<Handle>* out_recvs, void* o);
  // Transfer-bound Pull KV phase (several segments per Torus transfer, or a ring across machines): every set
  // segment by segment as it lands, ring peers' rows of the same segment beside ours.
  Status pull_kv_by_segment(const std::vector<int>& all_stages, const std::vector<int>& foreign_stages,
                            std::vector<RingSet>* sets, std::vector<Handle>* out_recvs, void* o);
  // only_stage >= 1: that foreign stage's output alone (one-sided). With the local diagonal, its lse too.
  // `waits` gets the handles the caller must wait for: two-sided, the matching receives; with the local diagonal,
  // the partials' puts.
  Status push_outputs(bool foreign, std::vector<Handle>* waits, int only_stage = -1);

  // ---- the local diagonal (SpAttentionConfig::local_diagonal; mesh_attention_diagonal.cpp)
  // Phases C and D with the diagonal blocks computed at home: everything after the Torus pulls were issued.
  Status forward_local_diagonal(void* o);
  // Pulls every head block of the ring peers' home K/V (ring lane, after the compute so far) and lays out set 0
  // (head block l) over them. By head blocks (diagonal_by_blocks_): the other head block first, by heads, laid
  // out in *other (its flags' steps in other->head_steps).
  Status issue_home_ring(RingSet* set0, RingSet* other);
  // Our own rows against ring blocks [first, last) of our home K/V, every head block at once.
  Status diagonal_call(int first, int last, AccumulatorMode mode);
  // Our own rows of head block p against every home block (ours and the ring peers'), one call that starts the
  // accumulator: `ready` holds ring block s's flag at s-1 (blocks still landing), or is empty (waited for here).
  Status diagonal_block_call(int p, const std::vector<LandedFlag>& ready);
  // The finalized partials of our rows pushed by the Torus peers, each merged with its diagonal block into `o` once
  // its arrival signal says it has landed (partial_signals_), the next Torus peer's first: it finishes our rows
  // one set before the others (last_set in forward_local_diagonal).
  Status merge_pushed_partials(void* o);
  // Our rows' accumulator of head block p under the local diagonal (dense [B, n, Ht, D] and [B, n, Ht]).
  struct AccSlot {
    float *o, *m, *l;
  };
  AccSlot diagonal_acc(int64_t p) const {
    const int64_t ml = dacc_slot_ / shape_.head_dim;
    return {dacc_ + p * dacc_slot_, dacc_ + t_ * dacc_slot_ + p * ml, dacc_ + t_ * (dacc_slot_ + ml) + p * ml};
  }
  Status gather_outputs(void* o);

  // ---- row loans (row_loans.h; a ring inside one machine, one-sided)
  int64_t kept_rows() const { return loans_.loans.empty() ? rows_of(rank_) : loans_.kept[rank_]; }
  bool borrows() const { return !loans_.loans.empty() && loans_.borrowed(rank_) > 0; }
  bool lends() const { return !loans_.loans.empty() && loans_.lent(rank_) > 0; }
  // Lender: our lent Q rows into our symmetric Q buffer, where the borrowers read them.
  Status offer_lent_rows(const void* q);
  // Borrower: pulls the borrowed Q rows and returns their handles; the compute waits for them before its first
  // call. On the ring lane ahead of
  // the ring's K/V pulls: on the main lane the copy engines took them after those (1.7 ms late, 4x H200, 22:38).
  Result<std::vector<Handle>> pull_borrowed_rows();
  // Where loan i's rows sit in the borrower's dense buffers (elements; floats for the accumulator).
  int64_t borrowed_offset(size_t i) const;
  void append_borrowed_rows(std::vector<QChunk>* qs) const;
  // Borrower: puts the finalized output of the borrowed rows into the lenders' lent_o_ (on the ring lane, so
  // that the layer's last ring barrier completes them). Lender, after that barrier: copies it into o.
  Status return_borrowed_rows();
  Status collect_lent_rows(void* o);

  // ---- the shared ring (SpAttentionConfig::ring_share; mesh_attention_share.cpp)
  // Symmetric buffers of the shared ring, after the others (collective: same order on every rank).
  Status init_share(size_t acc_bytes, int64_t max_rows);
  // Our Q rows into our symmetric Q buffer, where helpers read them (main lane: beside the first call).
  Status offer_shared_rows(const void* q);
  // Our rows' calls, the last one shared (output into so_): pulled by heads (`steps`: the ring peers' blocks' flags)
  // one call over every block, all of it shared; else our own block, then the pulled ones as the shared call.
  Status shared_ring_calls(const RingSet& set0, const std::vector<LandedFlag>& steps);
  // Helper calls toward every ring peer's shared call, in ring order from the next one on.
  Status help_ring_peers(const RingSet& set0);
  // After the layer's last barrier: our rows' output from so_ into o.
  Status collect_shared_rows(void* o);
  // The shared call of ring member `owner` as we take part in it (its workspace, mapped here unless it is ours).
  SharedWork shared_work(int owner) const;

  Comm& comm_;
  Device& dev_;
  const AttentionShape shape_;
  const Mesh mesh_;
  const bool one_sided_;
  const int requested_chunks_;  // SpAttentionConfig::torus_chunks (0 = automatic)
  const bool stagger_push_;     // SpAttentionConfig::stagger_foreign_push, one-sided only
  const bool by_block_;         // SpAttentionConfig::foreign_rows_by_block
  const bool merge_sets_;       // SpAttentionConfig::merge_kv_sets
  const bool local_diagonal_;   // SpAttentionConfig::local_diagonal, as asked
  bool diagonal_ = false;       // ... and in force (mesh and transport allow it)
  // The diagonal by head blocks (two machines with a ring inside, ring_heads_per_step > 0, peers mapped): our
  // rows' first call takes the other head block against every home block, the ring peers' pulled by heads while
  // it runs; head block l follows after the foreign rows. Two calls of H/2 heads over all home keys instead of
  // two of H heads over half of them each (forward_local_diagonal says why).
  bool diagonal_by_blocks_ = false;
  const double loan_limit_;     // SpAttentionConfig::row_loan_limit
  const bool share_;            // SpAttentionConfig::ring_share
  const int heads_per_step_;    // SpAttentionConfig::ring_heads_per_step, as asked
  bool by_heads_ = false;       // ... and in force (a one-sided ring in a machine, peers' memory mapped, no Ulysses)
  const int first_wave_asked_;  // SpAttentionConfig::ring_first_wave_heads (0 = automatic)
  int64_t first_wave_ = 0;      // heads pulled peer by peer, in force: a multiple of heads_per_step_, at most Ht_
  const int lanes_asked_;       // SpAttentionConfig::compute_lanes (0 = automatic)
  int lanes_ = 1;               // ... in force: 2 only with Torus stages on a device that has two
  int c_ = 1;                   // row segments per Torus transfer
  bool ring_in_machine_ = false;  // every ring member on this rank's machine: ring blocks arrive early

  int rank_ = 0, P_ = 1, u_ = 1, t_ = 1, r_ = 1, iu_ = 0, l_ = 0, k_ = 0, elem_ = 4;
  int64_t Ht_ = 0;
  std::vector<int> gu_, gt_, gr_;
  size_t slot_bytes_ = 0;     // stride of one RowBlock slot (max over ranks)
  size_t os_slot_bytes_ = 0;  // stride of one output piece slot (max over ranks; with the diagonal, and its lse)
  size_t ostage_slot_bytes_ = 0;  // stride of ostage_'s slots: slot_bytes_, with the diagonal room for an lse
  // The local diagonal pushes a foreign stage's partial and its lse in one transfer (one copy instead of two, the
  // lse's 4 bytes a row and head no longer a transfer of its own on the layer's path): the lse follows the partial's
  // `rows` rows in its slot, here in ostage_ and at the owner in os_, at this byte offset.
  size_t lse_after(int64_t rows) const {
    return (static_cast<size_t>(shape_.batch * rows * Ht_ * shape_.head_dim) * elem_ + 3) / 4 * 4;
  }
  int64_t acc_stride_ = 0;    // floats per accumulator slot (Õ); m and l use acc_stride_ / D
  bool direct_ = false;       // u = t = 1: no Ulysses or Torus level, rows stay in the user's layout

  // Buffers, allocated once per shape. Symmetric ones are addressed by peers.
  SymmetricBuffer qu_, ku_, vu_;  // [t] RowBlocks: after Ulysses, sub-block p of this rank's rows
  // The local diagonal ends without a barrier (its pushes land on arrival signals), so a peer may still read our
  // previous forward's qu_, ku_, vu_ while we pack the next: it packs into this second set, swapped with the
  // first at every forward (every rank alike). A forward two apart writes a set again only after the scatter's
  // barrier of the forward between, which no peer reaches before it has read all it needs of the older one.
  SymmetricBuffer spare_q_, spare_k_, spare_v_;
  SymmetricBuffer kt_, vt_;       // [t-1] RowBlocks pulled from Torus peers (ring peers read them)
  SymmetricBuffer os_;            // [u·t] output pieces of this rank's rows, pushed by their computers
  void* qt_ = nullptr;            // [t-1] Q RowBlocks pulled from Torus peers
  void* pack_ = nullptr;          // [3][u·t] head-block pieces of this rank's Q, K, V to scatter
  void* ostage_ = nullptr;        // [t] finalized output RowBlocks waiting to be pushed (ostage_slot_bytes_ apart)
  void* ring_k_ = nullptr;        // [t][r-1] K RowBlocks from ring peers (kept: every Q stage reuses them)
  void* ring_v_ = nullptr;
  float* acc_ = nullptr;          // [t] accumulators: Õ slots, then m slots, then l slots
  // The local diagonal: our rows' accumulators per head block (dense [t][B, n, Ht, D], then m, then l; head block
  // l is stage 0's) and the ring peers' home K/V blocks ([r-1][t] slots). The partials' lse travel in their slots
  // (lse_after).
  float* dacc_ = nullptr;
  int64_t dacc_slot_ = 0;  // B·n·Ht·D
  // Word p rises to epoch_ once head block p's partial of our rows (pushed with put_signal) has landed in os_: each
  // merges as it lands, not after the layer's last barrier. epoch_ counts forwards, so the words never go back.
  SymmetricBuffer partial_signals_;
  uint64_t epoch_ = 0;
  void* home_ring_k_ = nullptr;
  void* home_ring_v_ = nullptr;
  std::vector<std::vector<std::vector<Handle>>> home_arrived_;  // [r][head block p]: ring peer s's pulls of p
  const void* home_q_ = nullptr;  // this rank's Q rows of its own Torus sub-block (QU slot l, or user's Q)
  const void* home_k_ = nullptr;
  const void* home_v_ = nullptr;
  std::vector<std::vector<std::vector<Handle>>> torus_q_, torus_kv_;  // [stage][segment], issued in phase B

  // Row loans: the plan (no loans until rebalance), and buffers sized for loan_cap_rows_ rows per rank.
  RowLoanPlan loans_;
  int64_t loan_cap_rows_ = 0;
  SymmetricBuffer lent_o_;         // [B, lent rows, H, D]: the output of our lent rows, put by the borrowers
  void* borrow_q_ = nullptr;       // per loan we borrow, [B, rows, H, D] back to back: the Q rows
  void* borrow_o_ = nullptr;       // the same layout: their finalized output, before it is put back
  float* borrow_acc_ = nullptr;    // their accumulators: Õ, then m, then l

  // The shared ring: acc_ lives in acc_sym_ (helpers resume from it), our last call's output in so_ (helpers
  // write theirs there too), and the work queue with the split pieces' partials in share_ws_. One epoch per
  // forward; share_q_: the copy of our Q rows into qu_.
  SymmetricBuffer acc_sym_, so_, share_ws_;
  uint64_t share_epoch_ = 0;
  std::vector<Handle> share_q_;
};

}  // namespace sf::detail
