// The local diagonal (SpAttentionConfig::local_diagonal): each rank computes its own rows against its own ring
// group's keys for every head block, its Torus peers the rest, and the owner merges their pushed partials
// (Device::merge_partials). On thread ranks with chaotic timing, against the float64 reference.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "streamfusion/cpu_device.h"
#include "streamfusion/layer_check.h"
#include "streamfusion/planner.h"

namespace sf {
namespace {

struct DiagonalCase {
  const char* mesh;
  Topology topo;
  int64_t batch, seq, heads;
};

// heads_per_step >= 0: SpAttentionConfig::ring_heads_per_step (with two machines and a ring inside, > 0 takes the
// diagonal by head blocks); < 0: the planner's.
Result<ThreadRunResult> run_case(const DiagonalCase& c, DType dtype, Transport tr, bool diagonal, uint64_t seed,
                                 int iterations = 1, int heads_per_step = -1) {
  const AttentionShape shape{c.batch, c.seq, c.heads, 16, dtype};
  Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, tr);
  if (!plan.is_ok()) return plan.status();
  plan->config.torus_chunks = 1;
  plan->config.local_diagonal = diagonal;
  if (heads_per_step >= 0) plan->config.ring_heads_per_step = heads_per_step;
  const LayerInputs in = make_random_inputs(shape, seed);
  ThreadRunOptions opt;
  opt.world.chaos_seed = seed + 1;
  opt.iterations = iterations;
  return run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
}

// Two, three, four and eight machines, a ring inside them or none, a batch of one (one diagonal call over every
// head block) and of two (one per head block), uneven sequence splits: exact in fp32, every output element
// written (the outputs are poisoned), and twice in a row (the buffers are reused).
TEST(LocalDiagonal, IsExactOnEveryTorusMesh) {
  const DiagonalCase cases[] = {
      {"T2", {2, 1}, 1, 64, 4},    {"T2R2", {2, 2}, 1, 61, 4}, {"T4", {4, 1}, 1, 70, 8},  {"T4", {4, 1}, 2, 53, 8},
      {"T3", {3, 1}, 2, 47, 6},    {"T4R2", {4, 2}, 1, 101, 4}, {"T2R2", {2, 2}, 2, 64, 2}, {"T8", {8, 1}, 1, 203, 8},
      {"T2R4", {2, 4}, 1, 77, 2},
  };
  for (const DiagonalCase& c : cases) {
    Result<ThreadRunResult> r = run_case(c, DType::kF32, Transport::kOneSided, true, 71, 2);
    ASSERT_TRUE(r.is_ok()) << c.mesh << ": " << r.status().to_string();
    EXPECT_EQ(r->error.non_finite, 0) << c.mesh;
    EXPECT_LT(r->error.rel(), 1e-5) << c.mesh << " B=" << c.batch << " S=" << c.seq;
  }
}

// Two machines with a ring inside: the diagonal by head blocks (the first call over one head block and every home
// block, whose ring peers' blocks land head step by head step) and the diagonal by home blocks (every head block
// over our own keys, then over the ring peers'), each exact, with the same bytes and barriers, and the calls each
// schedule makes: by head blocks one per head block whatever the batch; by home blocks one per home-block group
// with B = 1 and t of them with B > 1. Steps of one head and of every head; rings of two and four.
TEST(LocalDiagonal, ByHeadBlocksAndByHomeBlocksAreExact) {
  struct BlocksCase {
    DiagonalCase c;
    int step;
    int64_t calls;
  };
  const BlocksCase cases[] = {
      {{"T2R2", {2, 2}, 1, 61, 4}, 1, 4},  {{"T2R2", {2, 2}, 1, 61, 4}, 0, 4},
      {{"T2R2", {2, 2}, 2, 64, 6}, 1, 4},  {{"T2R2", {2, 2}, 2, 64, 6}, 0, 6},
      {{"T2R4", {2, 4}, 1, 77, 4}, 2, 4},  {{"T2R4", {2, 4}, 1, 77, 4}, 0, 4},
      {{"T2R4", {2, 4}, 2, 93, 8}, 1, 4},
  };
  for (const BlocksCase& bc : cases) {
    const DiagonalCase& c = bc.c;
    Result<ThreadRunResult> r = run_case(c, DType::kF32, Transport::kOneSided, true, 131, 2, bc.step);
    ASSERT_TRUE(r.is_ok()) << c.mesh << " step " << bc.step << ": " << r.status().to_string();
    EXPECT_EQ(r->error.non_finite, 0) << c.mesh;
    EXPECT_LT(r->error.rel(), 1e-5) << c.mesh << " B=" << c.batch << " S=" << c.seq << " step " << bc.step;
    for (int g = 0; g < c.topo.world_size(); ++g) {
      EXPECT_EQ(r->attention_calls[g], bc.calls) << c.mesh << " B=" << c.batch << " step " << bc.step << " rank " << g;
      // By head blocks the ring peers' blocks of the first call's head block come by heads, the first wave's first.
      EXPECT_EQ(r->ring_first_wave_heads[g] > 0, bc.step > 0) << c.mesh << " step " << bc.step << " rank " << g;
    }
    if (bc.step == 0) continue;
    Result<ThreadRunResult> whole = run_case(c, DType::kF32, Transport::kOneSided, true, 131, 2, 0);
    ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
    for (int g = 0; g < c.topo.world_size(); ++g) {
      EXPECT_EQ(r->bytes[g].intra(), whole->bytes[g].intra()) << c.mesh << " rank " << g;
      EXPECT_EQ(r->bytes[g].inter(), whole->bytes[g].inter()) << c.mesh << " rank " << g;
      EXPECT_EQ(r->barriers[g].inter, whole->barriers[g].inter) << c.mesh << " rank " << g;
    }
  }
}

// The layer ends without a barrier: forwards back to back with no barrier between them either (each rank starts
// its next as soon as its last returned), under chaotic timing with one rank's transfers landing 2 ms after it
// waits for them (its peers run into their next forward meanwhile), every forward's output checked (all but the
// last on sign-flipped inputs). A peer that packed into buffers still being pulled, or a partial merged before it
// landed, shows in the output.
TEST(LocalDiagonal, ForwardsBackToBackWithoutBarriersAreExact) {
  const DiagonalCase cases[] = {
      {"T2R2", {2, 2}, 1, 61, 4}, {"T4", {4, 1}, 1, 70, 8}, {"T2R4", {2, 4}, 2, 77, 4}, {"T4R2", {4, 2}, 1, 101, 4},
      {"T2", {2, 1}, 1, 64, 4},
  };
  for (const DiagonalCase& c : cases)
    for (uint64_t seed : {141, 142, 143}) {
      const AttentionShape shape{c.batch, c.seq, c.heads, 16, DType::kF32};
      Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, Transport::kOneSided);
      ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
      plan->config.torus_chunks = 1;
      plan->config.local_diagonal = true;
      const LayerInputs in = make_random_inputs(shape, seed);
      ThreadRunOptions opt;
      opt.world.chaos_seed = seed;
      opt.world.lagging_rank = static_cast<int>(seed % c.topo.world_size());
      opt.world.lag = std::chrono::microseconds(2000);
      opt.iterations = 4;
      opt.barrier_between_forwards = false;
      opt.check_every_forward = true;
      Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
      ASSERT_TRUE(r.is_ok()) << c.mesh << ": " << r.status().to_string();
      EXPECT_EQ(r->error.non_finite, 0) << c.mesh << " seed " << seed;
      EXPECT_LT(r->error.rel(), 1e-5) << c.mesh << " B=" << c.batch << " seed " << seed;
    }
}

// In bf16 the pushed partial is rounded once more than a finalized output: still within a bf16 output's error.
TEST(LocalDiagonal, StaysWithinBf16ToleranceWhereThePartialIsRounded) {
  for (const DiagonalCase& c : {DiagonalCase{"T4", {4, 1}, 1, 96, 8}, DiagonalCase{"T2R2", {2, 2}, 1, 96, 4}}) {
    Result<ThreadRunResult> off = run_case(c, DType::kBF16, Transport::kOneSided, false, 81);
    Result<ThreadRunResult> on = run_case(c, DType::kBF16, Transport::kOneSided, true, 81);
    ASSERT_TRUE(off.is_ok() && on.is_ok()) << c.mesh;
    EXPECT_EQ(on->error.non_finite, 0) << c.mesh;
    EXPECT_LT(on->error.rel(), 2e-2) << c.mesh;
    // One bf16 ulp of the largest output (2^-7 relative; a finalized output is off by at most half of one).
    EXPECT_LE(on->error.max_abs_err, std::ldexp(on->error.max_abs_ref, -7)) << c.mesh << ": without it "
                                                                             << off->error.max_abs_err;
    std::printf("%s bf16: max error %.5f (without the diagonal %.5f), largest output %.4f\n", c.mesh,
                on->error.max_abs_err, off->error.max_abs_err, on->error.max_abs_ref);
  }
}

// Every rank moves the same bytes across machines as without it, plus one lse float per pushed row and head; a
// ring inside the machines pulls every head block of its peers' home K/V instead of one. Inter-machine barriers:
// the scatter's alone (the partials land on arrival signals). Two-sided transport leaves the schedule as it was.
TEST(LocalDiagonal, MovesTheSameBytesAcrossMachines) {
  const DiagonalCase c{"T4R2", {4, 2}, 1, 64, 8};
  Result<ThreadRunResult> off = run_case(c, DType::kF32, Transport::kOneSided, false, 91);
  Result<ThreadRunResult> on = run_case(c, DType::kF32, Transport::kOneSided, true, 91);
  ASSERT_TRUE(off.is_ok() && on.is_ok());
  const int t = 4, r = 2;
  const int64_t n = 64 / 8, ht = 8 / t, D = 16;
  for (int g = 0; g < 8; ++g) {
    const uint64_t lse = static_cast<uint64_t>((t - 1) * n * ht) * sizeof(float);
    EXPECT_EQ(on->bytes[g].inter(), off->bytes[g].inter() + lse) << "rank " << g;
    // Set 0's ring pull: every head block instead of ours (K and V, fp32).
    const uint64_t more_ring = static_cast<uint64_t>((r - 1) * (t - 1) * 2 * n * ht * D) * sizeof(float);
    EXPECT_EQ(on->bytes[g].intra(), off->bytes[g].intra() + more_ring) << "rank " << g;
    EXPECT_EQ(on->barriers[g].inter, 1u) << "rank " << g;
    EXPECT_EQ(off->barriers[g].inter, 2u) << "rank " << g;
  }
  Result<ThreadRunResult> two_off = run_case(c, DType::kF32, Transport::kTwoSided, false, 93);
  Result<ThreadRunResult> two_on = run_case(c, DType::kF32, Transport::kTwoSided, true, 93);
  ASSERT_TRUE(two_off.is_ok() && two_on.is_ok());
  EXPECT_LT(two_on->error.rel(), 1e-5);
  for (int g = 0; g < 8; ++g) EXPECT_EQ(two_on->attention_calls[g], two_off->attention_calls[g]) << "rank " << g;
}

// The calls a rank makes: the diagonal (1 with B = 1), the ring peers' diagonal, the foreign rows against our home
// keys ({1}, {2, 3}), then per pulled set the stage that finishes with it, the rest, and our own rows.
TEST(LocalDiagonal, CallsFollowTheSchedule) {
  struct CallCase {
    DiagonalCase c;
    int64_t calls;
    const char* why;
  };
  const CallCase cases[] = {
      {{"T2", {2, 1}, 1, 64, 4}, 3, "diagonal; stage 1 (finalized, pushed); own rows x set 1"},
      {{"T2R2", {2, 2}, 1, 64, 4}, 4, "diagonal; stage 1 x set 0; ring peers' diagonal; own rows x set 1"},
      {{"T4", {4, 1}, 1, 64, 8}, 9,
       "diagonal; {1}; {2,3}; set 1: {2,3,0}; set 2: 3 finishes, {1,0}; set 3: 1, 2 finish, own rows"},
      {{"T4", {4, 1}, 2, 64, 8}, 12, "the same with one diagonal call per head block (4)"},
  };
  for (const CallCase& cc : cases) {
    Result<ThreadRunResult> r = run_case(cc.c, DType::kF32, Transport::kOneSided, true, 101);
    ASSERT_TRUE(r.is_ok()) << cc.c.mesh << ": " << r.status().to_string();
    EXPECT_LT(r->error.rel(), 1e-5) << cc.c.mesh;
    for (int g = 0; g < cc.c.topo.world_size(); ++g)
      EXPECT_EQ(r->attention_calls[g], cc.calls) << cc.c.mesh << " B=" << cc.c.batch << " rank " << g << ": " << cc.why;
  }
}

TEST(LocalDiagonal, SegmentedTorusTransfersAreRefused) {
  const AttentionShape shape{1, 64, 8, 16, DType::kF32};
  Result<Plan> plan = make_plan(Scheme::kCustom, {4, 1}, shape, "T4", Transport::kOneSided);
  ASSERT_TRUE(plan.is_ok());
  plan->config.torus_chunks = 2;
  plan->config.local_diagonal = true;
  const LayerInputs in = make_random_inputs(shape, 5);
  Result<ThreadRunResult> r = run_layer_on_threads({4, 1}, in, reference_output(in), plan->config, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().to_string().find("torus_chunks must be 0 (automatic) or 1; got 2"), std::string::npos)
      << r.status().to_string();
}

// Device::merge_partials on CPU ranks: the merge of (Õ, m, l) over some keys and (O, lse) over the others equals
// attention over all keys, for rows where either side saw no keys too.
TEST(LocalDiagonal, CpuMergeOfTwoPartialsEqualsOneCall) {
  CpuDevice dev;
  const int64_t B = 2, n = 5, H = 3, D = 8, nk = 7;
  const AttentionShape shape{B, n + nk, H, D, DType::kF32};
  const LayerInputs in = make_random_inputs(shape, 7);
  const float* q = reinterpret_cast<const float*>(in.q.data());
  const float* k = reinterpret_cast<const float*>(in.k.data());
  const float* v = reinterpret_cast<const float*>(in.v.data());
  const int64_t S = n + nk, row = H * D;
  auto view = [&](const float* base, int64_t first, int64_t len) {
    return RowChunk{const_cast<float*>(base) + first * row, len, S * row, row, D};
  };
  std::vector<float> acc_o(B * n * H * D), acc_m(B * n * H), acc_l(B * n * H), part(B * n * H * D),
      lse(B * n * H), merged(B * n * H * D, std::nanf("")), whole(B * n * H * D);
  auto call = [&](int64_t k0, int64_t klen, bool finalize, float* out, float* lse_out) {
    QChunk qc;
    qc.q = view(q, 0, n);
    qc.acc_o = acc_o.data(), qc.acc_m = acc_m.data(), qc.acc_l = acc_l.data();
    qc.out = dense_rows(out, n, H, D);
    qc.lse = lse_out;
    KVChunk kv{view(k, k0, klen), view(v, k0, klen)};
    AttentionProblem p;
    p.dtype = DType::kF32, p.batch = B, p.heads = H, p.head_dim = D, p.scale = 0.25f;
    p.q = &qc, p.num_q = 1, p.kv = &kv, p.num_kv = klen > 0 ? 1 : 0, p.finalize = finalize;
    return dev.attention(p);
  };
  for (int64_t split : {int64_t{0}, int64_t{3}, S}) {
    ASSERT_TRUE(call(0, S, true, whole.data(), nullptr).is_ok());
    ASSERT_TRUE(call(split, S - split, true, part.data(), lse.data()).is_ok());  // the other side's partial
    ASSERT_TRUE(call(0, split, false, nullptr, nullptr).is_ok());               // our accumulator
    Device::PartialMerge m;
    m.acc_o = acc_o.data(), m.acc_m = acc_m.data(), m.acc_l = acc_l.data();
    m.part_o = dense_rows(part.data(), n, H, D);
    m.part_lse = lse.data();
    m.out = dense_rows(merged.data(), n, H, D);
    ASSERT_TRUE(dev.merge_partials({m}, B, H, D, DType::kF32).is_ok());
    for (size_t i = 0; i < whole.size(); ++i)
      ASSERT_NEAR(merged[i], whole[i], 1e-5) << "split " << split << " at " << i;
  }
}

}  // namespace
}  // namespace sf
