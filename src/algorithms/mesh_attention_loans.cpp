// MeshAttention's row loans (row_loans.h): a lone ring's faster ranks compute some of the slower ranks' rows.
#include "algorithms/mesh_attention_impl.h"

#include <cmath>

namespace sf::detail {

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

Result<std::vector<Handle>> MeshAttention::pull_borrowed_rows() {
  std::vector<Handle> pulled;
  const int64_t row = Ht_ * shape_.head_dim;
  for (size_t i = 0; i < loans_.loans.size(); ++i) {
    const RowLoan& l = loans_.loans[i];
    if (l.borrower != rank_) continue;
    const int64_t n = rows_of(l.lender);
    for (int64_t b = 0; b < shape_.batch; ++b) {
      char* dst = static_cast<char*>(borrow_q_) + (borrowed_offset(i) + b * l.rows * row) * elem_;
      SF_ASSIGN_OR_RETURN(Handle h, comm_.get(dst, qu_, (b * n + l.first) * row * elem_, l.lender, l.rows * row * elem_,
                                              Lane::kRing));
      pulled.push_back(h);
    }
  }
  return pulled;
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

}  // namespace sf::detail
