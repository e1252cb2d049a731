#include "algorithms/mesh_attention.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <string>
#include <vector>

#include "algorithms/row_block.h"
#include "algorithms/row_loans.h"

namespace sf {
namespace {

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
        lead_fraction_(config.ring_lead_fraction),
        merge_sets_(config.merge_kv_sets),
        loan_limit_(config.row_loan_limit) {}
  ~MeshAttention() override;

  Status init();
  Status rebalance(const std::vector<double>& rank_speeds) override;
  int64_t query_rows_computed() const override { return kept_rows() + (borrows() ? loans_.borrowed(rank_) : 0); }
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
  // Which of stage 0's rows a call takes (SpAttentionConfig::ring_lead_fraction): all, the leading rows of
  // every piece (those that take our own K/V block while the ring pulls), or the rest.
  enum class RowPart : uint8_t { kAll, kLead, kRest };
  int64_t lead_rows(int64_t n) const;  // of a piece of n rows
  // A K/V block, or one row segment of it (seg = -1: all rows).
  struct KVPart {
    const KVBlock* block;
    int seg = -1;
  };
  // One attention call: Q rows of `stages` (row segment q_seg of every piece, or all rows if -1) against every
  // part in `kv` (the kernel takes them as a list of chunks). Accumulators are laid out per (piece, segment).
  Status compute(const std::vector<int>& stages, int q_seg, const std::vector<KVPart>& kv, AccumulatorMode mode,
                 bool finalize, void* o, RowPart part = RowPart::kAll);
  // Q rows of `stages` against ring blocks [first, r) of one K/V set (row segment kv_seg of each, -1: whole
  // blocks). A ring inside a machine delivers every block long before it is needed, so all of them go into one
  // call (fewer, longer calls: each call costs its tiles' set-up and a partly filled last wave); a ring across
  // machines keeps one call per arriving block.
  Status ring_pass(const std::vector<int>& stages, int q_seg, const RingSet& set, int first, AccumulatorMode mode,
                   bool finalize, void* o, int kv_seg = -1, RowPart part = RowPart::kAll);
  // Compute-bound Pull KV phase: the foreign stages over each K/V set 1..t-1 as it lands (then their output is
  // pushed), and our own stage over all sets in one last call.
  Status pull_kv_merged(const std::vector<int>& foreign_stages, std::vector<RingSet>* sets,
                        std::vector<Handle>* out_recvs, void* o);
  // Transfer-bound Pull KV phase (several segments per Torus transfer, or a ring across machines): every set
  // segment by segment as it lands, ring peers' rows of the same segment beside ours.
  Status pull_kv_by_segment(const std::vector<int>& all_stages, const std::vector<int>& foreign_stages,
                            std::vector<RingSet>* sets, std::vector<Handle>* out_recvs, void* o);
  // only_stage >= 1: that foreign stage's output alone (one-sided).
  Status push_outputs(bool foreign, std::vector<Handle>* recvs, int only_stage = -1);
  Status gather_outputs(void* o);

  // ---- row loans (row_loans.h; a ring inside one machine, one-sided)
  int64_t kept_rows() const { return loans_.loans.empty() ? rows_of(rank_) : loans_.kept[rank_]; }
  bool borrows() const { return !loans_.loans.empty() && loans_.borrowed(rank_) > 0; }
  bool lends() const { return !loans_.loans.empty() && loans_.lent(rank_) > 0; }
  // Lender: our lent Q rows into our symmetric Q buffer, where the borrowers read them.
  Status offer_lent_rows(const void* q);
  // Borrower: pulls the borrowed Q rows; the compute waits for them before its first call. On the ring lane ahead of
  // the ring's K/V pulls: on the main lane the copy engines took them after those (1.7 ms late, 4x H200, 22:38).
  Status pull_borrowed_rows();
  // Where loan i's rows sit in the borrower's dense buffers (elements; floats for the accumulator).
  int64_t borrowed_offset(size_t i) const;
  void append_borrowed_rows(std::vector<QChunk>* qs) const;
  // Borrower: puts the finalized output of the borrowed rows into the lenders' lent_o_ (on the ring lane, so
  // that the layer's last ring barrier completes them). Lender, after that barrier: copies it into o.
  Status return_borrowed_rows();
  Status collect_lent_rows(void* o);

  Comm& comm_;
  Device& dev_;
  const AttentionShape shape_;
  const Mesh mesh_;
  const bool one_sided_;
  const int requested_chunks_;  // SpAttentionConfig::torus_chunks (0 = automatic)
  const bool stagger_push_;     // SpAttentionConfig::stagger_foreign_push, one-sided only
  const bool by_block_;         // SpAttentionConfig::foreign_rows_by_block
  const double lead_fraction_;  // SpAttentionConfig::ring_lead_fraction
  const bool merge_sets_;       // SpAttentionConfig::merge_kv_sets
  const double loan_limit_;     // SpAttentionConfig::row_loan_limit
  int c_ = 1;                   // row segments per Torus transfer
  bool ring_in_machine_ = false;  // every ring member on this rank's machine: ring blocks arrive early

  int rank_ = 0, P_ = 1, u_ = 1, t_ = 1, r_ = 1, iu_ = 0, l_ = 0, k_ = 0, elem_ = 4;
  int64_t Ht_ = 0;
  std::vector<int> gu_, gt_, gr_;
  size_t slot_bytes_ = 0;     // stride of one RowBlock slot (max over ranks)
  size_t os_slot_bytes_ = 0;  // stride of one output piece slot (max over ranks)
  int64_t acc_stride_ = 0;    // floats per accumulator slot (Õ); m and l use acc_stride_ / D
  bool direct_ = false;       // u = t = 1: no Ulysses or Torus level, rows stay in the user's layout

  // Buffers, allocated once per shape. Symmetric ones are addressed by peers.
  SymmetricBuffer qu_, ku_, vu_;  // [t] RowBlocks: after Ulysses, sub-block p of this rank's rows
  SymmetricBuffer kt_, vt_;       // [t-1] RowBlocks pulled from Torus peers (ring peers read them)
  SymmetricBuffer os_;            // [u·t] output pieces of this rank's rows, pushed by their computers
  void* qt_ = nullptr;            // [t-1] Q RowBlocks pulled from Torus peers
  void* pack_ = nullptr;          // [3][u·t] head-block pieces of this rank's Q, K, V to scatter
  void* ostage_ = nullptr;        // [t] finalized output RowBlocks waiting to be pushed
  void* ring_k_ = nullptr;        // [t][r-1] K RowBlocks from ring peers (kept: every Q stage reuses them)
  void* ring_v_ = nullptr;
  float* acc_ = nullptr;          // [t] accumulators: Õ slots, then m slots, then l slots
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
  std::vector<Handle> borrowed_q_; // this forward's pulls of the borrowed Q rows
};

MeshAttention::~MeshAttention() {
  for (SymmetricBuffer* b : {&qu_, &ku_, &vu_, &kt_, &vt_, &os_, &lent_o_})
    if (b->id >= 0) (void)comm_.free_symmetric(*b);
  for (void* p : {qt_, pack_, ostage_, ring_k_, ring_v_, static_cast<void*>(acc_), borrow_q_, borrow_o_,
                  static_cast<void*>(borrow_acc_)})
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

// Rounded up to whole 64-row slices of the GPU kernel's tiles when the piece is long enough, so that neither part
// ends in a partly filled slice.
int64_t MeshAttention::lead_rows(int64_t n) const {
  const int64_t granule = n >= 256 ? 64 : 1;
  const auto slices = static_cast<int64_t>(std::ceil(static_cast<double>(n) * lead_fraction_ / granule));
  return std::min(n, slices * granule);
}

RowChunk MeshAttention::user_rows(const void* base, int64_t head0) const {
  const int64_t H = shape_.heads, D = shape_.head_dim, n = rows_of(rank_);
  return RowChunk{static_cast<char*>(const_cast<void*>(base)) + head0 * D * elem_, n, n * H * D, H * D, D};
}

// Automatic: 4 segments per Torus transfer, fewer when a segment's attention call would no longer keep the
// device busy (on a GPU a call with too few query tiles leaves multiprocessors idle, which costs more than the
// overlap gains).
int MeshAttention::choose_torus_chunks() const {
  if (requested_chunks_ > 0) return requested_chunks_;
  if (t_ == 1) return 1;
  const int64_t busy = dev_.busy_query_tiles();
  if (busy <= 0) return 4;
  // Of the smallest Torus stage anywhere: every rank must cut the same way, since ring peers read each other's
  // Torus blocks segment by segment.
  int64_t tiles = INT64_MAX;
  for (int x = 0; x < P_; ++x) {
    int64_t n = 0;
    for (int64_t len : block_of(x).piece_len) n += (len + 127) / 128;
    tiles = std::min(tiles, n * Ht_ * shape_.batch);
  }
  return static_cast<int>(std::clamp<int64_t>(tiles / busy, 1, 4));
}

Status MeshAttention::init() {
  SF_RETURN_IF_ERROR(shape_.validate());
  if (!(lead_fraction_ >= 0.0 && lead_fraction_ <= 1.0))
    return invalid_argument("ring_lead_fraction must be in [0, 1] (the share of our own rows that take our own "
                            "K/V block first); got " + std::to_string(lead_fraction_));
  P_ = comm_.world_size();
  rank_ = comm_.rank();
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
  c_ = choose_torus_chunks();
  ring_in_machine_ = true;
  for (int y : gr_) ring_in_machine_ = ring_in_machine_ && comm_.topology().link(rank_, y) == LinkClass::kIntra;
  if (!(loan_limit_ >= 0.0 && loan_limit_ <= 0.5))
    return invalid_argument("row_loan_limit must be in [0, 0.5] (the most of its rows a rank lends or borrows); got " +
                            std::to_string(loan_limit_));
  if (loan_limit_ > 0.0 && !(direct_ && r_ > 1 && ring_in_machine_ && one_sided_))
    return infeasible("row loans need a ring inside one machine and nothing else (mesh R" + std::to_string(P_) +
                      " on one machine) and the one-sided transport; got mesh " + mesh_.to_string() + ", " +
                      transport_name(one_sided_ ? Transport::kOneSided : Transport::kTwoSided) +
                      (ring_in_machine_ ? "" : ", ring across machines"));

  int64_t max_block = 0, max_rows = 0;
  for (int x = 0; x < P_; ++x) {
    max_block = std::max(max_block, block_of(x).elems());
    max_rows = std::max(max_rows, rows_of(x));
  }
  slot_bytes_ = static_cast<size_t>(max_block) * elem_;
  os_slot_bytes_ = static_cast<size_t>(shape_.batch * max_rows * Ht_ * shape_.head_dim) * elem_;
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
  }
  if (t_ > 1) {
    SF_RETURN_IF_ERROR(symmetric((t_ - 1) * slot_bytes_, &kt_));
    SF_RETURN_IF_ERROR(symmetric((t_ - 1) * slot_bytes_, &vt_));
    SF_RETURN_IF_ERROR(local((t_ - 1) * slot_bytes_, &qt_));
  }
  if (!direct_) {
    SF_RETURN_IF_ERROR(symmetric(u_ * t_ * os_slot_bytes_, &os_));
    SF_RETURN_IF_ERROR(local(3 * u_ * t_ * os_slot_bytes_, &pack_));
    SF_RETURN_IF_ERROR(local(t_ * slot_bytes_, &ostage_));
  }
  if (r_ > 1) {
    SF_RETURN_IF_ERROR(local(t_ * (r_ - 1) * slot_bytes_, &ring_k_));
    SF_RETURN_IF_ERROR(local(t_ * (r_ - 1) * slot_bytes_, &ring_v_));
  }
  void* acc = nullptr;
  SF_RETURN_IF_ERROR(local(t_ * (acc_stride_ + 2 * acc_stride_ / shape_.head_dim) * sizeof(float), &acc));
  acc_ = static_cast<float*>(acc);
  if (loan_limit_ > 0.0) {
    loan_cap_rows_ = static_cast<int64_t>(std::ceil(loan_limit_ * static_cast<double>(max_rows)));
    const int64_t elems = shape_.batch * loan_cap_rows_ * Ht_ * shape_.head_dim;
    SF_RETURN_IF_ERROR(symmetric(elems * elem_, &lent_o_));
    SF_RETURN_IF_ERROR(local(elems * elem_, &borrow_q_));
    SF_RETURN_IF_ERROR(local(elems * elem_, &borrow_o_));
    SF_RETURN_IF_ERROR(local((elems + 2 * elems / shape_.head_dim) * sizeof(float), &acc));
    borrow_acc_ = static_cast<float*>(acc);
  }
  return Status::ok();
}

Status MeshAttention::rebalance(const std::vector<double>& rank_speeds) {
  if (loan_limit_ <= 0.0)
    return invalid_argument("rebalance: this layer was made with row_loan_limit 0 (no loan buffers); set "
                            "SpAttentionConfig::row_loan_limit to allow loans");
  if (rank_speeds.empty()) {
    loans_ = RowLoanPlan{};
    return Status::ok();
  }
  std::vector<int64_t> rows(P_);
  int64_t fewest = INT64_MAX;
  for (int x = 0; x < P_; ++x) fewest = std::min(fewest, rows[x] = rows_of(x));
  // Whole 64-row slices of the GPU kernel's tiles when every share is long enough: no loan ends in a partly
  // filled slice.
  SF_ASSIGN_OR_RETURN(RowLoanPlan plan, plan_row_loans(rows, rank_speeds, loan_limit_, fewest >= 256 ? 64 : 1));
  for (int x = 0; x < P_; ++x)
    if (plan.lent(x) > loan_cap_rows_ || plan.borrowed(x) > loan_cap_rows_)
      return internal_error("rebalance: a loan exceeds the buffers sized by row_loan_limit");
  loans_ = std::move(plan);
  return Status::ok();
}

Status MeshAttention::offer_lent_rows(const void* q) {
  if (!lends()) return Status::ok();
  const int64_t keep = kept_rows(), row = Ht_ * shape_.head_dim;
  RowChunk dst = block_of(rank_).piece(qu_.local, 0, elem_), src = user_rows(q, 0);
  for (RowChunk* c : {&dst, &src}) {
    c->data = static_cast<char*>(c->data) + keep * row * elem_;
    c->len = loans_.lent(rank_);
  }
  return dev_.copy_rows(dst, src, shape_.batch, Ht_, shape_.head_dim, shape_.dtype);
}

int64_t MeshAttention::borrowed_offset(size_t i) const {
  int64_t rows = 0;
  for (size_t j = 0; j < i; ++j) rows += loans_.loans[j].borrower == rank_ ? loans_.loans[j].rows : 0;
  return shape_.batch * rows * Ht_ * shape_.head_dim;
}

Status MeshAttention::pull_borrowed_rows() {
  borrowed_q_.clear();
  const int64_t row = Ht_ * shape_.head_dim;
  for (size_t i = 0; i < loans_.loans.size(); ++i) {
    const RowLoan& l = loans_.loans[i];
    if (l.borrower != rank_) continue;
    const int64_t n = rows_of(l.lender);
    for (int64_t b = 0; b < shape_.batch; ++b) {
      char* dst = static_cast<char*>(borrow_q_) + (borrowed_offset(i) + b * l.rows * row) * elem_;
      SF_ASSIGN_OR_RETURN(Handle h, comm_.get(dst, qu_, (b * n + l.first) * row * elem_, l.lender, l.rows * row * elem_,
                                              Lane::kRing));
      borrowed_q_.push_back(h);
    }
  }
  return Status::ok();
}

void MeshAttention::append_borrowed_rows(std::vector<QChunk>* qs) const {
  const int64_t D = shape_.head_dim, cap = shape_.batch * loan_cap_rows_ * Ht_ * D;
  for (size_t i = 0; i < loans_.loans.size(); ++i) {
    const RowLoan& l = loans_.loans[i];
    if (l.borrower != rank_) continue;
    const int64_t off = borrowed_offset(i);
    QChunk c;
    c.q = dense_rows(static_cast<char*>(borrow_q_) + off * elem_, l.rows, Ht_, D);
    c.acc_o = borrow_acc_ + off;
    c.acc_m = borrow_acc_ + cap + off / D;
    c.acc_l = borrow_acc_ + cap + cap / D + off / D;
    c.out = dense_rows(static_cast<char*>(borrow_o_) + off * elem_, l.rows, Ht_, D);
    qs->push_back(c);
  }
}

Status MeshAttention::return_borrowed_rows() {
  const int64_t row = Ht_ * shape_.head_dim;
  for (size_t i = 0; i < loans_.loans.size(); ++i) {
    const RowLoan& l = loans_.loans[i];
    if (l.borrower != rank_) continue;
    const int64_t lent = loans_.lent(l.lender), into = l.first - loans_.kept[l.lender];
    for (int64_t b = 0; b < shape_.batch; ++b) {
      const char* src = static_cast<char*>(borrow_o_) + (borrowed_offset(i) + b * l.rows * row) * elem_;
      SF_RETURN_IF_ERROR(
          comm_.put(lent_o_, (b * lent + into) * row * elem_, l.lender, src, l.rows * row * elem_, Lane::kRing).status());
    }
  }
  return Status::ok();
}

Status MeshAttention::collect_lent_rows(void* o) {
  if (!lends()) return Status::ok();
  const int64_t lent = loans_.lent(rank_), row = Ht_ * shape_.head_dim;
  RowChunk dst = user_rows(o, 0);
  dst.data = static_cast<char*>(dst.data) + kept_rows() * row * elem_;
  dst.len = lent;
  return dev_.copy_rows(dst, dense_rows(lent_o_.local, lent, Ht_, shape_.head_dim), shape_.batch, Ht_,
                        shape_.head_dim, shape_.dtype);
}

// ---- A. Ulysses: pack head blocks, scatter them inside the Ulysses group.
Status MeshAttention::scatter_ulysses(const void* q, const void* k, const void* v) {
  if (direct_) {
    home_q_ = q;
    if (qu_.id < 0) {
      home_k_ = k;
      home_v_ = v;
      return Status::ok();
    }
    // One-sided ring: peers pull K/V, so they must sit in symmetric memory (already there when the caller wrote
    // them into kv_input_buffers()).
    const RowBlock me = block_of(rank_);
    if (k != ku_.local)
      SF_RETURN_IF_ERROR(dev_.copy_rows(me.piece(ku_.local, 0, elem_), user_rows(k, 0), shape_.batch, Ht_,
                                        shape_.head_dim, shape_.dtype));
    if (v != vu_.local)
      SF_RETURN_IF_ERROR(dev_.copy_rows(me.piece(vu_.local, 0, elem_), user_rows(v, 0), shape_.batch, Ht_,
                                        shape_.head_dim, shape_.dtype));
    home_k_ = ku_.local;
    home_v_ = vu_.local;
    SF_RETURN_IF_ERROR(offer_lent_rows(q));
    return comm_.barrier(gr_);  // ring peers may pull as soon as everyone's copy is in place
  }
  const RowBlock me = block_of(rank_);
  const int64_t n = rows_of(rank_), D = shape_.head_dim;
  const size_t piece_bytes = static_cast<size_t>(shape_.batch * n * Ht_ * D) * elem_;
  const void* inputs[3] = {q, k, v};
  const SymmetricBuffer* homes[3] = {&qu_, &ku_, &vu_};
  // Pack: piece (j, p) holds heads of Ulysses block j, Torus sub-block p. Our own pieces go straight home. All
  // 3·u·t pieces in one batch: no transfer can start before the last of them.
  std::vector<Device::RowCopy> pack;
  for (int tensor = 0; tensor < 3; ++tensor)
    for (int j = 0; j < u_; ++j)
      for (int p = 0; p < t_; ++p) {
        const RowChunk src = user_rows(inputs[tensor], head_offset(j, p));
        RowChunk dst = j == iu_ ? me.piece(slot(homes[tensor]->local, slot_bytes_, p), iu_, elem_)
                                : dense_rows(static_cast<char*>(pack_) + ((tensor * u_ + j) * t_ + p) * os_slot_bytes_, n, Ht_, D);
        pack.push_back({dst, src});
      }
  SF_RETURN_IF_ERROR(dev_.copy_rows_batch(pack, shape_.batch, Ht_, D, shape_.dtype));
  if (u_ > 1 && one_sided_) {  // ScatterPush: our piece iu_ of each peer's block (same pieces: same group)
    for (int tensor = 0; tensor < 3; ++tensor)
      for (int j = 0; j < u_; ++j)
        for (int p = 0; p < t_ && j != iu_ && piece_bytes; ++p) {
          const char* src = static_cast<char*>(pack_) + ((tensor * u_ + j) * t_ + p) * os_slot_bytes_;
          const size_t dst_off = p * slot_bytes_ + me.piece_offset(iu_) * elem_;
          SF_RETURN_IF_ERROR(comm_.put(*homes[tensor], dst_off, gu_[j], src, piece_bytes).status());
        }
  } else if (u_ > 1) {  // all-to-all: to peer j its head blocks, from peer j its rows of ours
    std::vector<std::vector<Comm::ConstPiece>> sends(u_);
    std::vector<std::vector<Comm::MutablePiece>> recvs(u_);
    for (int tensor = 0; tensor < 3; ++tensor)
      for (int j = 0; j < u_; ++j)
        for (int p = 0; p < t_; ++p) {
          sends[j].push_back({static_cast<char*>(pack_) + ((tensor * u_ + j) * t_ + p) * os_slot_bytes_, piece_bytes});
          recvs[j].push_back({slot(homes[tensor]->local, slot_bytes_, p) + me.piece_offset(j) * elem_,
                              static_cast<size_t>(me.piece_elems(j)) * elem_});
        }
    SF_ASSIGN_OR_RETURN(std::vector<Handle> handles, comm_.all_to_all(gu_, sends, recvs));
    SF_RETURN_IF_ERROR(comm_.wait_all(handles));
  }
  // One-sided: every ScatterPush has landed everywhere before anyone pulls (paper Algorithm 1, BarrierAll).
  if (one_sided_) SF_RETURN_IF_ERROR(comm_.barrier_all());
  home_q_ = slot(qu_.local, slot_bytes_, l_);
  home_k_ = slot(ku_.local, slot_bytes_, l_);
  home_v_ = slot(vu_.local, slot_bytes_, l_);
  return Status::ok();
}

// ---- B. Torus: stage i needs Q (then K/V) of sub-block l from Torus peer l+i. Q first: K/V are twice the
// bytes and harder to hide. Issued in stage order and, inside a stage, segment by segment, so the first rows
// arrive first and compute can start on them.
template <typename Move>
Status MeshAttention::for_segment_runs(const RowBlock& b, int seg, Move move) const {
  const int64_t row = Ht_ * shape_.head_dim;
  for (int j = 0; j < b.pieces(); ++j) {
    const int64_t n = b.piece_len[j], a = seg_begin(n, seg), len = seg_begin(n, seg + 1) - a;
    if (len == 0) continue;
    for (int64_t batch = 0; batch < b.batch; ++batch)
      SF_RETURN_IF_ERROR(move(b.piece_offset(j) + (batch * n + a) * row, len * row));
  }
  return Status::ok();
}

Status MeshAttention::issue_torus() {
  torus_q_.assign(t_, std::vector<std::vector<Handle>>(c_));
  torus_kv_.assign(t_, std::vector<std::vector<Handle>>(c_));
  const RowBlock mine = block_of(rank_);
  for (int pass = 0; pass < 2; ++pass) {  // 0: Pull Q, 1: Pull KV
    const int tensors = pass == 0 ? 1 : 2;
    for (int i = 1; i < t_; ++i) {
      const int from = gt_[(l_ + i) % t_], to = gt_[(l_ - i + t_) % t_];
      const RowBlock theirs = block_of(from);
      char* dst[2] = {pass == 0 ? slot(qt_, slot_bytes_, i - 1) : slot(kt_.local, slot_bytes_, i - 1),
                      pass == 0 ? nullptr : slot(vt_.local, slot_bytes_, i - 1)};
      const SymmetricBuffer* src_buf[2] = {pass == 0 ? &qu_ : &ku_, pass == 0 ? nullptr : &vu_};
      for (int seg = 0; seg < c_; ++seg) {
        std::vector<Handle>& done = (pass == 0 ? torus_q_ : torus_kv_)[i][seg];
        for (int j = 0; j < tensors; ++j) {
          if (one_sided_) {  // GatherPull straight from the peer's Ulysses output
            SF_RETURN_IF_ERROR(for_segment_runs(theirs, seg, [&](int64_t off, int64_t n) -> Status {
              SF_ASSIGN_OR_RETURN(Handle h, comm_.get(dst[j] + off * elem_, *src_buf[j], l_ * slot_bytes_ + off * elem_,
                                                      from, n * elem_));
              done.push_back(h);
              return Status::ok();
            }));
            continue;
          }
          SF_RETURN_IF_ERROR(comm_.begin_batch());
          const char* src = slot(src_buf[j]->local, slot_bytes_, (l_ - i + t_) % t_);
          SF_RETURN_IF_ERROR(for_segment_runs(mine, seg, [&](int64_t off, int64_t n) -> Status {
            return comm_.send(to, src + off * elem_, n * elem_).status();
          }));
          SF_RETURN_IF_ERROR(for_segment_runs(theirs, seg, [&](int64_t off, int64_t n) -> Status {
            SF_ASSIGN_OR_RETURN(Handle h, comm_.recv(from, dst[j] + off * elem_, n * elem_));
            done.push_back(h);
            return Status::ok();
          }));
          SF_RETURN_IF_ERROR(comm_.end_batch());
        }
      }
    }
  }
  return Status::ok();
}

// ---- C. The ring of K/V set x (set 0: the stationary sub-block; set x: pulled from Torus peer l+x).
// Block s of the result comes from ring member k−s; block 0 is our own.
Status MeshAttention::issue_ring_set(int x, int seg, RingSet* set, const std::vector<Handle>* landed) {
  std::vector<KVBlock>& blocks = set->blocks;
  auto set_layout = [&](int member) { return block_of(torus_member(member, (l_ + x) % t_)); };
  if (blocks.empty()) {
    blocks.assign(r_, KVBlock{});
    blocks[0] = {set_layout(rank_), const_cast<char*>(static_cast<const char*>(x == 0 ? home_k_ : slot(kt_.local, slot_bytes_, x - 1))),
                 const_cast<char*>(static_cast<const char*>(x == 0 ? home_v_ : slot(vt_.local, slot_bytes_, x - 1)))};
    for (int s = 1; s < r_; ++s) {
      const int from = gr_[(k_ - s + r_) % r_];
      blocks[s] = {set_layout(from), slot(ring_k_, slot_bytes_, x * (r_ - 1) + s - 1),
                   slot(ring_v_, slot_bytes_, x * (r_ - 1) + s - 1)};
    }
    set->arrived.assign(seg < 0 ? 1 : c_, std::vector<std::vector<Handle>>(r_));
  }
  if (r_ == 1) return Status::ok();
  std::vector<std::vector<Handle>>& arrived = set->arrived[std::max(seg, 0)];
  // Runs `issue` on the ring lane after `deps` only (detached from the compute), or after the compute if none.
  auto on_ring_lane = [&](const std::vector<Handle>* deps, auto issue) -> Status {
    if (!deps) return issue();
    SF_RETURN_IF_ERROR(comm_.begin_detached(Lane::kRing, *deps));
    const Status issued = issue();
    SF_RETURN_IF_ERROR(comm_.end_detached(Lane::kRing));
    return issued;
  };
  if (one_sided_) {  // pull from the owners' buffers directly: no per-step handshake
    return on_ring_lane(landed, [&]() -> Status {
      // Every ring member's Torus pull of these rows must have landed before anyone reads them.
      if (x > 0) SF_RETURN_IF_ERROR(comm_.barrier(gr_, Lane::kRing));
      const SymmetricBuffer& kb = x == 0 ? ku_ : kt_;
      const SymmetricBuffer& vb = x == 0 ? vu_ : vt_;
      const size_t base = x == 0 ? l_ * slot_bytes_ : (x - 1) * slot_bytes_;  // the set's slot in every member
      for (int s = 1; s < r_; ++s) {
        const int from = gr_[(k_ - s + r_) % r_];
        const KVBlock& b = blocks[s];
        const Status pulled = for_rows(b.layout, seg, [&](int64_t off, int64_t n) -> Status {
          const size_t at = off * elem_, bytes = n * elem_;
          SF_ASSIGN_OR_RETURN(Handle hk, comm_.get(b.k + at, kb, base + at, from, bytes, Lane::kRing));
          SF_ASSIGN_OR_RETURN(Handle hv, comm_.get(b.v + at, vb, base + at, from, bytes, Lane::kRing));
          arrived[s].push_back(hk);
          arrived[s].push_back(hv);
          return Status::ok();
        });
        SF_RETURN_IF_ERROR(pulled);
      }
      return Status::ok();
    });
  }
  // Two-sided: step s forwards the block received at step s−1 to the next member and receives the next one. A
  // step waits on the ring lane for the block it forwards, never on the compute stream: the compute of the
  // blocks already here goes on meanwhile.
  const int next = gr_[(k_ + 1) % r_], prev = gr_[(k_ - 1 + r_) % r_];
  for (int s = 1; s < r_; ++s) {
    const KVBlock& fwd = blocks[s - 1];
    const KVBlock& b = blocks[s];
    const Status stepped = on_ring_lane(s == 1 ? landed : &arrived[s - 1], [&]() -> Status {
      SF_RETURN_IF_ERROR(comm_.begin_batch());
      const Status sent = for_rows(fwd.layout, seg, [&](int64_t off, int64_t n) -> Status {
        SF_RETURN_IF_ERROR(comm_.send(next, fwd.k + off * elem_, n * elem_, Lane::kRing).status());
        return comm_.send(next, fwd.v + off * elem_, n * elem_, Lane::kRing).status();
      });
      SF_RETURN_IF_ERROR(sent);
      const Status received = for_rows(b.layout, seg, [&](int64_t off, int64_t n) -> Status {
        SF_ASSIGN_OR_RETURN(Handle hk, comm_.recv(prev, b.k + off * elem_, n * elem_, Lane::kRing));
        SF_ASSIGN_OR_RETURN(Handle hv, comm_.recv(prev, b.v + off * elem_, n * elem_, Lane::kRing));
        arrived[s].push_back(hk);
        arrived[s].push_back(hv);
        return Status::ok();
      });
      SF_RETURN_IF_ERROR(received);
      return comm_.end_batch();
    });
    SF_RETURN_IF_ERROR(stepped);
  }
  return Status::ok();
}

Status MeshAttention::compute(const std::vector<int>& stages, int q_seg, const std::vector<KVPart>& kv_parts,
                              AccumulatorMode mode, bool finalize, void* o, RowPart part) {
  const int64_t D = shape_.head_dim, row = Ht_ * D, B = shape_.batch;
  std::vector<QChunk> qs;
  for (int i : stages) {
    const RowBlock qb = block_of(gt_[(l_ + i) % t_]);
    char* qbase = static_cast<char*>(const_cast<void*>(i == 0 ? home_q_ : static_cast<const void*>(slot(qt_, slot_bytes_, i - 1))));
    float* acc_o = acc_ + i * acc_stride_;
    float* acc_m = acc_ + t_ * acc_stride_ + i * (acc_stride_ / D);
    float* acc_l = acc_m + t_ * (acc_stride_ / D);
    for (int j = 0; j < qb.pieces(); ++j) {
      const int64_t n = qb.piece_len[j];
      // Our own rows go straight into the user's output; the rest wait in ostage_ to be pushed.
      const bool mine = i == 0 && j == iu_;
      const RowChunk out_piece = mine ? user_rows(o, head_offset(iu_, l_)) : qb.piece(slot(ostage_, slot_bytes_, i), j, elem_);
      // Rows we lent out are computed by their borrowers (row loans: only in a lone ring, one piece).
      const int64_t mine_n = mine ? std::min(n, kept_rows()) : n;
      const int64_t lead = part == RowPart::kAll ? mine_n : lead_rows(mine_n);
      const int64_t w0 = part == RowPart::kRest ? lead : 0, w1 = part == RowPart::kLead ? lead : mine_n;
      for (int seg = q_seg < 0 ? 0 : q_seg; seg < (q_seg < 0 ? c_ : q_seg + 1); ++seg) {
        // The segment's rows inside the window of `part`. Its accumulator stays where the whole segment's rows
        // would have it, so that calls on either part of a segment find the same rows.
        const int64_t a = std::max(seg_begin(n, seg), w0), len = std::min(seg_begin(n, seg + 1), w1) - a;
        if (len <= 0) continue;
        QChunk c;
        c.q = RowChunk{qbase + (qb.piece_offset(j) + a * row) * elem_, len, n * row, row, D};
        // The accumulator of (piece, segment) is dense: [B, len, Ht, D] right after the segments before it.
        c.acc_o = acc_o + qb.piece_offset(j) + B * a * row;
        c.acc_m = acc_m + qb.piece_ml_offset(j) + B * a * Ht_;
        c.acc_l = acc_l + qb.piece_ml_offset(j) + B * a * Ht_;
        if (finalize) {
          c.out = out_piece;
          c.out.data = static_cast<char*>(out_piece.data) + a * out_piece.stride_s * elem_;
          c.out.len = len;
        }
        qs.push_back(c);
      }
    }
  }
  // Borrowed rows ride along with our own whole rows (not with the leading ones, which take our block alone).
  if (borrows() && part != RowPart::kLead && std::find(stages.begin(), stages.end(), 0) != stages.end())
    append_borrowed_rows(&qs);
  std::vector<KVChunk> kvs;
  for (const KVPart& kv_part : kv_parts) {
    const KVBlock& kv = *kv_part.block;
    const int kv_seg = kv_part.seg;
    for (int j = 0; j < kv.layout.pieces(); ++j) {
      const int64_t n = kv.layout.piece_len[j];
      const int64_t a = kv_seg < 0 ? 0 : seg_begin(n, kv_seg), len = kv_seg < 0 ? n : seg_begin(n, kv_seg + 1) - a;
      if (len == 0) continue;
      const int64_t off = (kv.layout.piece_offset(j) + a * row) * elem_;
      kvs.push_back({RowChunk{kv.k + off, len, n * row, row, D}, RowChunk{kv.v + off, len, n * row, row, D}});
    }
  }
  if (qs.empty() || (kvs.empty() && !finalize && mode == AccumulatorMode::kResume)) return Status::ok();
  AttentionProblem p;
  p.dtype = shape_.dtype;
  p.batch = B;
  p.heads = Ht_;
  p.head_dim = D;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  p.q = qs.data();
  p.num_q = static_cast<int32_t>(qs.size());
  p.kv = kvs.data();
  p.num_kv = static_cast<int32_t>(kvs.size());
  p.mode = mode;
  p.finalize = finalize;
  return dev_.attention(p);
}

Status MeshAttention::ring_pass(const std::vector<int>& stages, int q_seg, const RingSet& set, int first,
                                AccumulatorMode mode, bool finalize, void* o, int kv_seg, RowPart part) {
  const std::vector<KVBlock>& blocks = set.blocks;
  const std::vector<std::vector<Handle>>& handles = set.arrived[std::max(kv_seg, 0)];
  if (ring_in_machine_) {
    std::vector<KVPart> parts;
    for (int s = first; s < r_; ++s) {
      SF_RETURN_IF_ERROR(comm_.wait_all(handles[s]));
      parts.push_back({&blocks[s], kv_seg});
    }
    return parts.empty() ? Status::ok() : compute(stages, q_seg, parts, mode, finalize, o, part);
  }
  for (int s = first; s < r_; ++s) {
    SF_RETURN_IF_ERROR(comm_.wait_all(handles[s]));
    SF_RETURN_IF_ERROR(compute(stages, q_seg, {{&blocks[s], kv_seg}}, s == first ? mode : AccumulatorMode::kResume,
                               finalize && s == r_ - 1, o, part));
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
  SF_RETURN_IF_ERROR(compute({0}, -1, whole, AccumulatorMode::kResume, true, o));
  return push_outputs(false, out_recvs);
}

// ---- D. Push finalized output pieces to the ranks that own their rows. foreign: Torus stages 1..t-1 (rows
// of other machines' Torus peers); otherwise stage 0 (rows of our Ulysses peers). Two-sided: the matching
// receives (from ranks whose Torus index differs from ours, or equals it) go in the same batch.
Status MeshAttention::push_outputs(bool foreign, std::vector<Handle>* recvs, int only_stage) {
  if (only_stage >= 1 && !one_sided_) return internal_error("push_outputs: one stage alone needs one-sided pushes");
  if (!one_sided_) SF_RETURN_IF_ERROR(comm_.begin_batch());
  const int64_t D = shape_.head_dim;
  for (int i = foreign ? 1 : 0; i < (foreign ? t_ : 1); ++i) {
    if (only_stage >= 1 && i != only_stage) continue;
    const int x = gt_[(l_ + i) % t_];
    const RowBlock qb = block_of(x);
    const std::vector<int> owners = mesh_.group(LevelKind::kUlysses, x);
    for (int j = 0; j < qb.pieces(); ++j) {
      const int owner = owners[j];
      if (owner == rank_) continue;
      const char* src = slot(ostage_, slot_bytes_, i) + qb.piece_offset(j) * elem_;
      const size_t bytes = static_cast<size_t>(qb.piece_elems(j)) * elem_;
      if (!bytes) continue;
      const size_t dst_off = (iu_ * t_ + l_) * os_slot_bytes_;  // the owner's slot for our heads
      if (one_sided_) SF_RETURN_IF_ERROR(comm_.put(os_, dst_off, owner, src, bytes).status());
      else SF_RETURN_IF_ERROR(comm_.send(owner, src, bytes).status());
    }
  }
  if (!one_sided_) {
    const size_t bytes = static_cast<size_t>(shape_.batch * rows_of(rank_) * Ht_ * D) * elem_;
    for (int lp = 0; lp < t_; ++lp) {
      if ((lp != l_) != foreign) continue;
      const std::vector<int> senders = mesh_.group(LevelKind::kUlysses, gt_[lp]);
      for (int j = 0; j < u_; ++j) {
        if (senders[j] == rank_ || !bytes) continue;
        SF_ASSIGN_OR_RETURN(Handle h, comm_.recv(senders[j], static_cast<char*>(os_.local) + (j * t_ + lp) * os_slot_bytes_, bytes));
        recvs->push_back(h);
      }
    }
    SF_RETURN_IF_ERROR(comm_.end_batch());
  }
  return Status::ok();
}

Status MeshAttention::gather_outputs(void* o) {
  const int64_t n = rows_of(rank_), D = shape_.head_dim;
  std::vector<Device::RowCopy> pieces;
  for (int j = 0; j < u_; ++j)
    for (int lp = 0; lp < t_; ++lp) {
      if (j == iu_ && lp == l_) continue;  // finalized in place
      const RowChunk src = dense_rows(static_cast<char*>(os_.local) + (j * t_ + lp) * os_slot_bytes_, n, Ht_, D);
      pieces.push_back({user_rows(o, head_offset(j, lp)), src});
    }
  return dev_.copy_rows_batch(pieces, shape_.batch, Ht_, D, shape_.dtype);
}

Status MeshAttention::forward(const void* q, const void* k, const void* v, void* o) {
  if (!q || !k || !v || !o) return invalid_argument("forward: q, k, v and o must all be given");
  SF_RETURN_IF_ERROR(scatter_ulysses(q, k, v));
  SF_RETURN_IF_ERROR(issue_torus());

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
  if (borrows()) SF_RETURN_IF_ERROR(pull_borrowed_rows());
  SF_RETURN_IF_ERROR(issue_ring_set(0, -1, &sets[0]));
  // The first call takes the borrowed rows too, so it waits for them: a few MB over NVLink, some microseconds.
  SF_RETURN_IF_ERROR(comm_.wait_all(borrowed_q_));
  borrowed_q_.clear();
  if (t_ == 1 && r_ > 1 && ring_in_machine_ && lead_fraction_ < 1.0) {
    // Only the leading rows take our own block while the ring pulls (ring_lead_fraction); the rest take every
    // block in one call once all have landed: one block of kernel work per row and head instead of two.
    SF_RETURN_IF_ERROR(compute({0}, -1, {{&sets[0].blocks[0]}}, AccumulatorMode::kInit, false, o, RowPart::kLead));
    SF_RETURN_IF_ERROR(ring_pass({0}, -1, sets[0], 1, AccumulatorMode::kResume, true, o, -1, RowPart::kLead));
    SF_RETURN_IF_ERROR(ring_pass({0}, -1, sets[0], 0, AccumulatorMode::kInit, true, o, -1, RowPart::kRest));
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
    SF_RETURN_IF_ERROR(comm_.barrier(gr_, Lane::kRing));
    SF_RETURN_IF_ERROR(collect_lent_rows(o));
  }
  return Status::ok();
}

}  // namespace

const char* transport_name(Transport t) { return t == Transport::kOneSided ? "one-sided" : "two-sided"; }

Result<std::unique_ptr<SpAttention>> create_mesh_attention(Comm& comm, Device& device, const AttentionShape& shape,
                                                           const SpAttentionConfig& config) {
  auto a = std::make_unique<MeshAttention>(comm, device, shape, config);
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
