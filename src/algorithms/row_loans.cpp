#include "algorithms/row_loans.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace sf {

int64_t RowLoanPlan::lent(int x) const {
  int64_t n = 0;
  for (const RowLoan& l : loans) n += l.lender == x ? l.rows : 0;
  return n;
}

int64_t RowLoanPlan::borrowed(int x) const {
  int64_t n = 0;
  for (const RowLoan& l : loans) n += l.borrower == x ? l.rows : 0;
  return n;
}

Result<RowLoanPlan> plan_row_loans(const std::vector<int64_t>& rows, const std::vector<double>& speeds, double limit,
                                   int64_t granule) {
  const size_t P = rows.size();
  if (speeds.size() != P)
    return invalid_argument("row loans: expected one speed per rank (" + std::to_string(P) + "), got " +
                            std::to_string(speeds.size()));
  if (!(limit >= 0.0 && limit <= 0.5))
    return invalid_argument("row loans: the limit must be in [0, 0.5] of a rank's rows, got " + std::to_string(limit));
  if (granule < 1) return invalid_argument("row loans: the granule must be at least 1 row, got " + std::to_string(granule));
  double total_speed = 0.0;
  int64_t total_rows = 0;
  for (size_t x = 0; x < P; ++x) {
    if (!(std::isfinite(speeds[x]) && speeds[x] > 0.0))
      return invalid_argument("row loans: rank " + std::to_string(x) + "'s speed must be finite and positive, got " +
                              std::to_string(speeds[x]));
    if (rows[x] < 0) return invalid_argument("row loans: rank " + std::to_string(x) + " holds a negative row count");
    total_speed += speeds[x];
    total_rows += rows[x];
  }
  // Each rank's excess over its fair share, to the nearest whole granule and within the limit: positive lends.
  std::vector<int64_t> lend(P, 0), borrow(P, 0);
  for (size_t x = 0; x < P; ++x) {
    const double fair = static_cast<double>(total_rows) * speeds[x] / total_speed;
    const double excess = static_cast<double>(rows[x]) - fair;
    const auto cap = static_cast<int64_t>(std::floor(limit * static_cast<double>(rows[x]) / granule)) * granule;
    const int64_t whole = std::llround(std::fabs(excess) / static_cast<double>(granule)) * granule;
    (excess > 0 ? lend : borrow)[x] = std::min(cap, whole);
  }
  // Lenders and borrowers matched in rank order; each lender's loans are consecutive runs from the end of its
  // rows. Whatever one side cannot place stays where it is.
  RowLoanPlan plan;
  plan.kept = rows;
  size_t b = 0;
  for (size_t x = 0; x < P; ++x) {
    while (lend[x] > 0) {
      while (b < P && borrow[b] == 0) ++b;
      if (b == P) break;
      const int64_t n = std::min(lend[x], borrow[b]);
      plan.kept[x] -= n;
      plan.loans.push_back({static_cast<int>(x), static_cast<int>(b), 0, n});
      lend[x] -= n;
      borrow[b] -= n;
    }
  }
  // Place the runs: a lender's loans in order, right after what it keeps.
  std::vector<int64_t> next(plan.kept.begin(), plan.kept.end());
  for (RowLoan& l : plan.loans) {
    l.first = next[l.lender];
    next[l.lender] += l.rows;
  }
  return plan;
}

}  // namespace sf
