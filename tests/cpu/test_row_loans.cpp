// Row loans (src/algorithms/row_loans.h): the plan, and the ring layer that carries it out, exact on thread ranks
// for any speeds, changing plans between forwards, and refused where it cannot apply.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algorithms/row_loans.h"
#include "streamfusion/layer_check.h"
#include "streamfusion/planner.h"

namespace sf {
namespace {

// Every rank's rows are accounted for once: kept + lent = held, loans are consecutive runs right after what
// the lender keeps, no rank both lends and borrows, and nobody moves more than the limit allows.
void expect_consistent(const RowLoanPlan& plan, const std::vector<int64_t>& rows, double limit, int64_t granule) {
  ASSERT_EQ(plan.kept.size(), rows.size());
  for (size_t x = 0; x < rows.size(); ++x) {
    const int r = static_cast<int>(x);
    EXPECT_EQ(plan.kept[x] + plan.lent(r), rows[x]) << "rank " << x;
    EXPECT_FALSE(plan.lent(r) > 0 && plan.borrowed(r) > 0) << "rank " << x << " both lends and borrows";
    EXPECT_LE(plan.lent(r), limit * static_cast<double>(rows[x])) << "rank " << x;
    EXPECT_LE(plan.borrowed(r), limit * static_cast<double>(rows[x])) << "rank " << x;
    int64_t next = plan.kept[x];
    for (const RowLoan& l : plan.loans) {
      if (l.lender != r) continue;
      EXPECT_EQ(l.first, next) << "rank " << x << "'s loans are not consecutive after what it keeps";
      EXPECT_GT(l.rows, 0);
      EXPECT_EQ(l.rows % granule, 0) << "a loan of " << l.rows << " rows is not whole granules of " << granule;
      next += l.rows;
    }
  }
}

TEST(RowLoans, EqualSpeedsLendNothing) {
  Result<RowLoanPlan> plan = plan_row_loans({4096, 4096, 4096, 4096}, {1, 1, 1, 1}, 0.125, 64);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_TRUE(plan->loans.empty());
  EXPECT_EQ(plan->kept, (std::vector<int64_t>{4096, 4096, 4096, 4096}));
}

TEST(RowLoans, WorkFollowsSpeed) {
  // Trace 4's four GPUs (4x H200, Flux S=65536 on 1x4): the same calls took 21.56, 20.85, 20.95 and 20.62 ms.
  const std::vector<int64_t> rows(4, 16384);
  const std::vector<double> ms = {21.56, 20.85, 20.95, 20.62};
  std::vector<double> speeds;
  for (double t : ms) speeds.push_back(1.0 / t);
  Result<RowLoanPlan> plan = plan_row_loans(rows, speeds, 0.125, 64);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  expect_consistent(*plan, rows, 0.125, 64);
  double worst_before = 0.0, worst_after = 0.0;
  for (int x = 0; x < 4; ++x) {
    const double work = static_cast<double>(plan->kept[x] + plan->borrowed(x));
    worst_before = std::max(worst_before, 16384.0 * ms[x]);
    worst_after = std::max(worst_after, work * ms[x]);
    // Within one granule of its fair share, and rank 0 (the slowest) lends.
    const double fair = 4 * 16384.0 * speeds[x] / (speeds[0] + speeds[1] + speeds[2] + speeds[3]);
    EXPECT_NEAR(work, fair, 64.0 + 1e-9) << "rank " << x;
  }
  EXPECT_GT(plan->lent(0), 0);
  EXPECT_LT(worst_after / 16384.0, 21.11) << "the slowest rank should end near the average of 21.0 ms";
  EXPECT_LT(worst_after, worst_before);
}

TEST(RowLoans, UnevenRowsSeveralLendersAndBorrowersAndTheLimit) {
  const std::vector<int64_t> rows = {1000, 999, 999, 999, 1000, 999};
  const std::vector<double> speeds = {0.5, 2.0, 0.7, 1.0, 3.0, 0.9};
  for (double limit : {0.05, 0.2, 0.5})
    for (int64_t granule : {1, 7, 64}) {
      Result<RowLoanPlan> plan = plan_row_loans(rows, speeds, limit, granule);
      ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
      expect_consistent(*plan, rows, limit, granule);
      int64_t lent = 0, borrowed = 0;
      for (int x = 0; x < 6; ++x) {
        lent += plan->lent(x);
        borrowed += plan->borrowed(x);
      }
      EXPECT_EQ(lent, borrowed);
      if (limit * 999 >= static_cast<double>(granule)) EXPECT_GT(lent, 0) << "limit " << limit << " granule " << granule;
      else EXPECT_EQ(lent, 0) << "a loan under one granule: limit " << limit << " granule " << granule;
    }
}

TEST(RowLoans, BadInputIsRefusedWithTheReason) {
  struct Bad {
    std::vector<int64_t> rows;
    std::vector<double> speeds;
    double limit;
    int64_t granule;
    const char* says;
  };
  const Bad cases[] = {
      {{8, 8}, {1.0}, 0.1, 1, "expected one speed per rank (2), got 1"},
      {{8, 8}, {1.0, 0.0}, 0.1, 1, "rank 1's speed must be finite and positive"},
      {{8, 8}, {std::nan(""), 1.0}, 0.1, 1, "rank 0's speed must be finite and positive"},
      {{8, 8}, {1.0, 1.0}, 0.6, 1, "limit must be in [0, 0.5]"},
      {{8, 8}, {1.0, 1.0}, 0.1, 0, "granule must be at least 1"},
  };
  for (const Bad& c : cases) {
    Result<RowLoanPlan> plan = plan_row_loans(c.rows, c.speeds, c.limit, c.granule);
    ASSERT_FALSE(plan.is_ok()) << c.says;
    EXPECT_NE(plan.status().to_string().find(c.says), std::string::npos) << plan.status().to_string();
  }
}

// The layer with loans equals the float64 reference whatever the speeds, with the plan changing between
// forwards (each forward's output is poisoned first, so rows nobody wrote back show), with uneven shares, batch
// 2 and K/V in the layer's own buffers. The call count stays that of the ring without loans:
// borrowed rows ride in the calls the borrower makes anyway.
TEST(RowLoans, RingLayerIsExactForAnySpeeds) {
  struct LoanCase {
    Topology topo;
    const char* mesh;
    int64_t seq;
    std::vector<std::vector<double>> speeds;  // per forward
    int64_t calls;
  };
  const LoanCase cases[] = {
      {{1, 4}, "R4", 1100, {{1, 1.2, 0.8, 1}, {0.7, 1, 1, 1.3}, {1.1, 0.9, 1.2, 0.8}}, 2},
      {{1, 4}, "R4", 70, {{2, 1, 1, 1}, {1, 1, 1, 1}, {1, 3, 0.5, 1}}, 2},
      {{1, 4}, "R4", 1024, {{1, 1, 1, 0.8}, {0.8, 1, 1.1, 1}, {1.3, 0.6, 1, 1}}, 2},
      {{1, 2}, "R2", 515, {{1, 1.5}, {1.5, 1}, {1, 1.5}}, 2},
      {{1, 3}, "R3", 333, {{1, 2, 0.5}, {0.5, 1, 2}, {2, 0.5, 1}}, 2},
  };
  for (const LoanCase& c : cases)
    for (bool kv_in_layer : {false, true}) {
      const AttentionShape shape{2, c.seq, 4, 16, DType::kF32};
      Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, Transport::kOneSided);
      ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
      plan->config.row_loan_limit = 0.3;
      plan->config.ring_heads_per_step = 0;  // loans need the ring's two calls
      const LayerInputs in = make_random_inputs(shape, 77);
      ThreadRunOptions opt;
      opt.warmup = static_cast<int>(c.speeds.size()) - 1;
      opt.rank_speeds = c.speeds;
      opt.kv_in_layer_buffers = kv_in_layer;
      opt.world.chaos_seed = 9;
      Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_EQ(r->error.non_finite, 0) << c.mesh << " S=" << c.seq;
      EXPECT_LT(r->error.rel(), 1e-5) << c.mesh << " S=" << c.seq;
      for (int g = 0; g < c.topo.world_size(); ++g)
        EXPECT_EQ(r->attention_calls[g], c.calls) << c.mesh << " S=" << c.seq << " rank " << g;
    }
}

// The last forward's loans really moved rows: with rank 0 twice as slow, it lends and the others borrow, so
// the Q rows pulled and the output put back show in the byte counters beside the ring's K/V.
TEST(RowLoans, LoansMoveTheirRowsAndNothingElse) {
  const AttentionShape shape{1, 1024, 4, 16, DType::kF32};
  Result<Plan> plan = make_plan(Scheme::kCustom, {1, 4}, shape, "R4", Transport::kOneSided);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const LayerInputs in = make_random_inputs(shape, 3);
  ThreadRunOptions base;
  Result<ThreadRunResult> without = run_layer_on_threads({1, 4}, in, reference_output(in), plan->config, base);
  ASSERT_TRUE(without.is_ok()) << without.status().to_string();
  plan->config.row_loan_limit = 0.125;
  plan->config.ring_heads_per_step = 0;  // loans need the ring's two calls
  ThreadRunOptions opt;
  opt.rank_speeds = {{0.5, 1, 1, 1}};
  Result<ThreadRunResult> with = run_layer_on_threads({1, 4}, in, reference_output(in), plan->config, opt);
  ASSERT_TRUE(with.is_ok()) << with.status().to_string();
  EXPECT_LT(with->error.rel(), 1e-5);
  // Rank 0 holds 256 rows; its fair share is 256 · 4 · 0.5 / 3.5 ≈ 146, the limit caps the loan at 32 rows.
  const RowLoanPlan loans = *plan_row_loans({256, 256, 256, 256}, {0.5, 1, 1, 1}, 0.125, 64);
  const uint64_t row_bytes = 4 * 16 * 4;
  for (int g = 1; g < 4; ++g) {
    const uint64_t moved = static_cast<uint64_t>(loans.borrowed(g)) * row_bytes * 2;  // Q in, O back
    EXPECT_EQ(with->bytes[g].intra(), without->bytes[g].intra() + moved) << "rank " << g;
  }
  EXPECT_EQ(with->bytes[0].intra(), without->bytes[0].intra()) << "the lender moves nothing itself";
}

TEST(RowLoans, MeshesAndTransportsWithoutALoneRingAreRefused) {
  const AttentionShape shape{1, 64, 4, 16, DType::kF32};
  struct Refused {
    Topology topo;
    const char* mesh;
    Transport transport;
    double limit;
    const char* says;
  };
  const Refused cases[] = {
      {{1, 4}, "R4", Transport::kTwoSided, 0.1, "row loans need a ring inside one machine and nothing else"},
      {{1, 4}, "U4", Transport::kOneSided, 0.1, "row loans need a ring inside one machine and nothing else"},
      {{1, 4}, "U2R2", Transport::kOneSided, 0.1, "got mesh U2R2"},
      {{2, 2}, "T2R2", Transport::kOneSided, 0.1, "row loans need"},
      {{1, 4}, "R4", Transport::kOneSided, 0.75, "row_loan_limit must be in [0, 0.5]"},
  };
  for (const Refused& c : cases) {
    Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, c.transport);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    plan->config.row_loan_limit = c.limit;
    plan->config.ring_heads_per_step = 0;  // loans need the ring's two calls
    const LayerInputs in = make_random_inputs(shape, 5);
    Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, {});
    ASSERT_FALSE(r.is_ok()) << c.mesh;
    EXPECT_NE(r.status().to_string().find(c.says), std::string::npos) << r.status().to_string();
  }
  // Speeds for a layer made without loan buffers.
  Result<Plan> plan = make_plan(Scheme::kCustom, {1, 4}, shape, "R4", Transport::kOneSided);
  ASSERT_TRUE(plan.is_ok());
  ThreadRunOptions opt;
  opt.rank_speeds = {{1, 2, 1, 1}};
  const LayerInputs in = make_random_inputs(shape, 5);
  Result<ThreadRunResult> r = run_layer_on_threads({1, 4}, in, reference_output(in), plan->config, opt);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().to_string().find("row_loan_limit 0"), std::string::npos) << r.status().to_string();
}

}  // namespace
}  // namespace sf
