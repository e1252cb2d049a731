// Row loans: balancing a ring layer across GPUs of unequal speed.
//
// Four GPUs at their power cap do not run equally fast: in one forward of a 1x4 ring their identical calls took
// 5.3 to 5.6 ms (bench/sp/TRACES.md, trace 4), and the layer ends with the slowest. In a ring inside one
// machine every rank holds every K/V block once the ring has passed, so a faster rank can compute some of a
// slower rank's query rows outright: it pulls those Q rows (small), runs them in its own calls beside its own
// rows and puts the finished output back. A loan is such a run of rows, always the last rows of the lender's
// share, so that what the lender keeps is one contiguous prefix.
#pragma once

#include <cstdint>
#include <vector>

#include "streamfusion/status.h"

namespace sf {

struct RowLoan {
  int lender = 0, borrower = 0;
  int64_t first = 0, rows = 0;  // rows [first, first + rows) of the lender's own rows
};

struct RowLoanPlan {
  std::vector<RowLoan> loans;
  std::vector<int64_t> kept;  // per rank: the leading rows it computes itself
  // Rows rank x lends out (a suffix of its rows) and borrows in (from all lenders).
  int64_t lent(int x) const;
  int64_t borrowed(int x) const;
};

// Loans that give every rank work in proportion to its speed. rows[x]: the rows rank x holds; speeds[x] > 0:
// its relative speed (1 / its time for the same work). No rank lends or borrows more than `limit` of its own
// rows (the buffers behind a loan are sized once); loans come in whole multiples of `granule` rows (the GPU
// kernel's 64-row slices): each rank's excess or shortfall is rounded to the nearest granule, and what the other
// side cannot take stays where it is. Identical on every rank for the same
// arguments: every rank computes the plan itself.
Result<RowLoanPlan> plan_row_loans(const std::vector<int64_t>& rows, const std::vector<double>& speeds, double limit,
                                   int64_t granule);

}  // namespace sf
