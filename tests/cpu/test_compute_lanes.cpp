// Two compute lanes (SpAttentionConfig::compute_lanes, Device::compute_lanes): the calls of foreign rows alone run
// beside our own rows' calls. On thread ranks each rank's device checks every pair of calls that a GPU may run at
// the same time (src/harness/lane_check.h), and the result is checked against the float64 reference.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness/lane_check.h"
#include "streamfusion/cpu_device.h"
#include "streamfusion/layer_check.h"
#include "streamfusion/planner.h"

namespace sf {
namespace {

// One fp32 call of `rows` query rows against 8 keys, accumulator `acc` (dense, 2 heads, D = 4), on `lane`.
struct TinyCall {
  std::vector<float> q = std::vector<float>(4 * 2 * 4, 0.5f), k = std::vector<float>(8 * 2 * 4, 0.25f),
                     v = std::vector<float>(8 * 2 * 4, 1.0f);
  QChunk qc;
  KVChunk kv;
  AttentionProblem p;
  TinyCall(float* acc, int lane) {
    qc.q = dense_rows(q.data(), 4, 2, 4);
    qc.acc_o = acc, qc.acc_m = acc + 32, qc.acc_l = acc + 40;
    kv.k = dense_rows(k.data(), 8, 2, 4);
    kv.v = dense_rows(v.data(), 8, 2, 4);
    p.dtype = DType::kF32, p.batch = 1, p.heads = 2, p.head_dim = 4, p.scale = 0.5f;
    p.q = &qc, p.num_q = 1, p.kv = &kv, p.num_kv = 1, p.lane = lane;
  }
};

// The check itself: calls on different lanes that share an accumulator fail unless something orders them; a
// lane-1 call follows every lane-0 call but the latest; a copy orders both lanes.
TEST(ComputeLanes, TheCheckFindsCallsThatMayOverlap) {
  CpuDevice cpu;
  std::vector<float> acc_a(48), acc_b(48);
  {
    LaneCheckingDevice dev(cpu);
    TinyCall a(acc_a.data(), 0), b(acc_a.data(), 1);
    ASSERT_TRUE(dev.attention(a.p).is_ok());
    const Status s = dev.attention(b.p);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.to_string().find("compute lanes: the lane 1 call of 4 rows x 8 keys"), std::string::npos)
        << s.to_string();
  }
  {
    LaneCheckingDevice dev(cpu);
    TinyCall a(acc_a.data(), 1), b(acc_a.data(), 0);  // lane 0 does not wait for lane 1 either
    ASSERT_TRUE(dev.attention(a.p).is_ok());
    EXPECT_FALSE(dev.attention(b.p).is_ok());
  }
  {
    LaneCheckingDevice dev(cpu);
    TinyCall a(acc_a.data(), 0), b(acc_a.data(), 1), other(acc_b.data(), 1);
    ASSERT_TRUE(dev.attention(a.p).is_ok());
    EXPECT_TRUE(dev.attention(other.p).is_ok());  // another accumulator, same (read-only) K/V: fine
    ASSERT_TRUE(dev.order_lanes().is_ok());
    EXPECT_TRUE(dev.attention(b.p).is_ok());
    EXPECT_EQ(dev.calls_on_lane(0), 1);
    EXPECT_EQ(dev.calls_on_lane(1), 2);
  }
  {
    LaneCheckingDevice dev(cpu);  // lane 1 follows lane 0's calls before its latest
    TinyCall a(acc_a.data(), 0), later(acc_b.data(), 0), b(acc_a.data(), 1);
    ASSERT_TRUE(dev.attention(a.p).is_ok());
    ASSERT_TRUE(dev.attention(later.p).is_ok());
    EXPECT_TRUE(dev.attention(b.p).is_ok());
  }
  {
    LaneCheckingDevice dev(cpu);  // any other device operation orders both lanes
    TinyCall a(acc_a.data(), 1), b(acc_a.data(), 0);
    ASSERT_TRUE(dev.attention(a.p).is_ok());
    ASSERT_TRUE(dev.fill(acc_b.data(), 0, 4).is_ok());
    EXPECT_TRUE(dev.attention(b.p).is_ok());
  }
}

struct LaneCase {
  const char* mesh;
  Topology topo;
  int64_t batch, seq, heads;
  bool diagonal;
  int chunks;  // row segments per Torus transfer (1 with the diagonal)
  bool stagger, by_block;
};

Result<ThreadRunResult> run_lanes(const LaneCase& c, Transport tr, int lanes, uint64_t seed, int* in_force) {
  const AttentionShape shape{c.batch, c.seq, c.heads, 16, DType::kF32};
  Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, tr);
  if (!plan.is_ok()) return plan.status();
  plan->config.torus_chunks = c.chunks;
  plan->config.local_diagonal = c.diagonal;
  plan->config.stagger_foreign_push = c.stagger;
  plan->config.foreign_rows_by_block = c.by_block;
  plan->config.compute_lanes = lanes;
  const LayerInputs in = make_random_inputs(shape, seed);
  ThreadRunOptions opt;
  opt.world.chaos_seed = seed + 1;
  opt.iterations = 2;  // the buffers are reused
  opt.check_two_lanes = true;
  Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
  if (r.is_ok()) *in_force = r->compute_lanes;
  return r;
}

// Every Torus schedule (local diagonal, merged calls, segments, foreign rows by block, staggered push, Ulysses
// inside the machines) on both transports: with two lanes no two calls that may overlap touch the same memory, the
// foreign rows' calls do take lane 1, and the result is exact with every output element written.
TEST(ComputeLanes, EveryTorusScheduleIsExactAndItsLanesNeverCollide) {
  const LaneCase cases[] = {
      {"T2R2", {2, 2}, 1, 61, 4, true, 1, false, false},  {"T4", {4, 1}, 1, 70, 8, true, 1, false, false},
      {"T4R2", {4, 2}, 2, 101, 4, true, 1, false, false}, {"T2R2", {2, 2}, 1, 64, 4, false, 1, false, true},
      {"T4", {4, 1}, 1, 53, 8, false, 1, true, false},     {"T4R2", {4, 2}, 1, 99, 4, false, 1, true, true},
      {"T2R2", {2, 2}, 2, 64, 4, false, 2, false, false}, {"T4", {4, 1}, 1, 80, 8, false, 3, false, false},
      {"T2U2", {2, 2}, 1, 64, 8, false, 1, false, false}, {"T2U2", {2, 2}, 1, 64, 8, false, 2, false, false},
      {"T3", {3, 1}, 1, 47, 6, true, 1, false, false},
  };
  for (const LaneCase& c : cases)
    for (Transport tr : {Transport::kTwoSided, Transport::kOneSided}) {
      const std::string what = std::string(c.mesh) + (c.diagonal ? " diagonal" : "") + " chunks " +
                               std::to_string(c.chunks) + " " + transport_name(tr);
      int lanes = 0;
      Result<ThreadRunResult> r = run_lanes(c, tr, 2, 91, &lanes);
      ASSERT_TRUE(r.is_ok()) << what << ": " << r.status().to_string();
      EXPECT_EQ(r->error.non_finite, 0) << what;
      EXPECT_LT(r->error.rel(), 1e-5) << what;
      EXPECT_EQ(lanes, 2) << what;
      for (int g = 0; g < c.topo.world_size(); ++g) EXPECT_GT(r->lane1_calls[g], 0) << what << " rank " << g;
    }
}

// One lane (asked, or the layer's choice) and meshes without Torus stages keep every call on lane 0; a lane count
// other than 0, 1 or 2 is refused.
TEST(ComputeLanes, OneLaneOrNoTorusStagesKeepEveryCallOnLaneZero) {
  const LaneCase torus{"T2R2", {2, 2}, 1, 64, 4, true, 1, false, false};
  const LaneCase ring{"R4", {1, 4}, 1, 64, 4, false, 1, false, false};
  const LaneCase usp{"R2U2", {2, 2}, 1, 64, 4, false, 1, false, false};
  for (const auto& [c, asked] : {std::pair{torus, 0}, std::pair{torus, 1}, std::pair{ring, 2}, std::pair{usp, 2}}) {
    int lanes = 0;
    Result<ThreadRunResult> r = run_lanes(c, Transport::kOneSided, asked, 93, &lanes);
    ASSERT_TRUE(r.is_ok()) << c.mesh << ": " << r.status().to_string();
    EXPECT_LT(r->error.rel(), 1e-5) << c.mesh;
    EXPECT_EQ(lanes, 1) << c.mesh << " asked " << asked;
    for (int g = 0; g < c.topo.world_size(); ++g) EXPECT_EQ(r->lane1_calls[g], 0) << c.mesh << " rank " << g;
  }
  int lanes = 0;
  Result<ThreadRunResult> r = run_lanes(torus, Transport::kOneSided, 3, 95, &lanes);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().to_string().find("compute_lanes must be 0 (the layer's choice), 1 or 2; got 3"),
            std::string::npos)
      << r.status().to_string();
}

}  // namespace
}  // namespace sf
