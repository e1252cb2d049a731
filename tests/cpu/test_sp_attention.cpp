// Every algorithm × mesh × head dim × head count × batch × even/uneven sequence on thread ranks, against
// the single-rank float64 reference; counted bytes against the schedule's model.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "streamfusion/layer_check.h"
#include "streamfusion/planner.h"

namespace sf {
namespace {

// A head count that forces the gcd rule for TAS/SFU on M machines (H % M != 0).
int64_t gcd_forcing_heads(int machines) {
  switch (machines) {
    case 4: return 6;   // u = gcd(6, 4) = 2: the ring spans two machines
    case 3: return 4;   // u = 1
    case 2: return 3;   // u = 1
    default: return 5;  // one machine: Ulysses over 4 GPUs is infeasible
  }
}

struct Case {
  Scheme scheme;
  Topology topo;
  int64_t head_dim, heads, batch;
  bool divisible;
};

std::string case_name(const Case& c);
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

std::string case_name(const Case& c) {
  return std::string(scheme_name(c.scheme)) + "_" + c.topo.to_string() + "_D" + std::to_string(c.head_dim) + "_H" +
         std::to_string(c.heads) + "_B" + std::to_string(c.batch) + (c.divisible ? "_even" : "_uneven");
}

class SpAttentionSweep : public ::testing::TestWithParam<Case> {};

TEST_P(SpAttentionSweep, MatchesFloat64Reference) {
  const Case c = GetParam();
  const int P = c.topo.world_size();
  AttentionShape shape{c.batch, c.divisible ? 3 * P : 3 * P + P / 2 + 1, c.heads, c.head_dim, DType::kF32};
  Result<Plan> plan = make_plan(c.scheme, c.topo, shape);
  if (c.scheme == Scheme::kUlysses && c.heads % P != 0) {  // the only infeasible default in the sweep
    ASSERT_FALSE(plan.is_ok());
    EXPECT_EQ(plan.status().code(), ErrorCode::kInfeasible);
    EXPECT_NE(plan.status().message().find("heads"), std::string::npos) << plan.status().message();
    return;
  }
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const uint64_t seed = std::hash<std::string>{}(case_name(c));
  const LayerInputs in = make_random_inputs(shape, seed);
  const std::vector<double> ref = reference_output(in);
  ThreadRunOptions opt;
  opt.iterations = 2;  // the second forward reuses every workspace
  opt.world.chaos_seed = seed | 1;
  opt.world.timeout = std::chrono::milliseconds(20000);
  Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, ref, plan->config, opt);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->error.non_finite, 0) << "unwritten or NaN output elements";
  EXPECT_LT(r->error.rel(), 1e-5) << plan->explanation;
  if (c.divisible) {
    for (int g = 0; g < P; ++g) {
      const LinkBytes want =
          model_bytes(plan->config.mesh, plan->config.transport, c.topo, shape, g, plan->config.local_diagonal);
      EXPECT_EQ(r->bytes[g].intra(), want.intra()) << "rank " << g << " " << plan->explanation;
      EXPECT_EQ(r->bytes[g].inter(), want.inter()) << "rank " << g << " " << plan->explanation;
    }
  }
}

std::vector<Case> sweep() {
  std::vector<Case> cases;
  const Topology topologies[] = {{1, 4}, {2, 2}, {2, 4}, {4, 2}, {3, 2}, {4, 4}, {2, 3}};
  for (Scheme s : all_schemes())
    for (const Topology& t : topologies)
      for (int64_t d : {64, 128})
        for (int64_t h : {int64_t{24}, int64_t{48}, gcd_forcing_heads(t.machines)})
          for (int64_t b : {1, 2})
            for (bool even : {true, false}) cases.push_back({s, t, d, h, b, even});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, SpAttentionSweep, ::testing::ValuesIn(sweep()),
                         [](const ::testing::TestParamInfo<Case>& i) { return case_name(i.param); });

}  // namespace
}  // namespace sf

namespace sf {
namespace {

// Explicit meshes (any level order, T·U'·R splits) on both transports: the schedule does not depend on which
// level is contiguous, only on the groups.
struct MeshCase {
  Topology topo;
  const char* mesh;
  Transport transport;
  int64_t heads;
};

class ExplicitMeshes : public ::testing::TestWithParam<MeshCase> {};

TEST_P(ExplicitMeshes, MatchFloat64Reference) {
  const MeshCase c = GetParam();
  const int P = c.topo.world_size();
  for (bool even : {true, false}) {
    const AttentionShape shape{2, even ? 4 * P : 4 * P + 3, c.heads, 32, DType::kF32};
    Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, c.transport);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    const LayerInputs in = make_random_inputs(shape, 11 + even);
    ThreadRunOptions opt;
    opt.iterations = 2;
    opt.world.chaos_seed = 1234567 + even;
    Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->error.non_finite, 0);
    EXPECT_LT(r->error.rel(), 1e-5) << plan->explanation;
    if (even)
      for (int g = 0; g < P; ++g) {
        const LinkBytes want =
            model_bytes(plan->config.mesh, c.transport, c.topo, shape, g, plan->config.local_diagonal);
        EXPECT_EQ(r->bytes[g].intra(), want.intra()) << "rank " << g;
        EXPECT_EQ(r->bytes[g].inter(), want.inter()) << "rank " << g;
      }
  }
}

std::vector<MeshCase> mesh_cases() {
  std::vector<MeshCase> out;
  const std::pair<Topology, const char*> meshes[] = {
      {{2, 4}, "T2U2R2"}, {{2, 4}, "T2U4"}, {{4, 4}, "T4U2R2"}, {{4, 4}, "T2U2R4"}, {{2, 4}, "R2U2T2"},
      {{2, 4}, "U2T2R2"}, {{4, 2}, "U2R2T2"}, {{2, 3}, "T2U3"},   {{3, 2}, "T3R2"},   {{2, 2}, "U2R2"},
      {{2, 4}, "R2U4"},   {{1, 4}, "U2R2"},   {{1, 1}, "R1"},     {{3, 2}, "T3U2"},   {{4, 2}, "T2R4"}};
  for (const auto& [topo, mesh] : meshes)
    for (Transport t : {Transport::kTwoSided, Transport::kOneSided}) out.push_back({topo, mesh, t, 24});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AnyLayout, ExplicitMeshes, ::testing::ValuesIn(mesh_cases()),
                         [](const ::testing::TestParamInfo<MeshCase>& i) {
                           return std::string(i.param.mesh) + "_on_" + i.param.topo.to_string() + "_" +
                                  (i.param.transport == Transport::kOneSided ? "one_sided" : "two_sided");
                         });

}  // namespace
}  // namespace sf

namespace sf {
namespace {

// forward() checks every tensor at the edge: wrong local length, heads, dtype, density or a null pointer is a
// clear invalid_argument on every rank, never a crash or an out-of-bounds read.
TEST(SpAttentionInputs, MismatchedTensorsAreRefused) {
  const Topology topo{2, 2};
  const AttentionShape shape{1, 10, 8, 16, DType::kF32};  // ranks hold 3, 3, 2, 2 rows
  const Plan plan = make_plan(Scheme::kSfu, topo, shape).value();
  Status s = run_thread_ranks(topo, {}, [&](RankRuntime& rt) -> Status {
    SF_ASSIGN_OR_RETURN(std::unique_ptr<SpAttention> attn, SpAttention::create(rt.comm(), rt.device(), shape, plan.config));
    const auto want = attn->local_shape();
    EXPECT_EQ(want[1], rt.comm().rank() < 2 ? 3 : 2);
    std::vector<float> buf(4 * 16 * 8 * 16, 1.f), out(buf.size());
    const TensorView good = TensorView::dense(buf.data(), DType::kF32, want);
    const TensorView o = TensorView::dense(out.data(), DType::kF32, want);
    struct Bad {
      TensorView view;
      const char* says;
    };
    TensorView strided = good;
    strided.strides[2] = 32;
    for (const Bad& b : {Bad{TensorView::dense(buf.data(), DType::kF32, {1, want[1] + 1, 8, 16}), "q must be [1, "},
                         Bad{TensorView::dense(buf.data(), DType::kF32, {1, want[1], 4, 16}), "found [1, "},
                         Bad{TensorView::dense(buf.data(), DType::kBF16, want), "bf16"},
                         Bad{TensorView::dense(nullptr, DType::kF32, want), "no data pointer"},
                         Bad{strided, "dense row-major"}}) {
      Status st = attn->forward(b.view, good, good, o);
      EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.to_string();
      EXPECT_NE(st.message().find(b.says), std::string::npos) << st.message();
    }
    return attn->forward(good, good, good, o);  // and a good call still works afterwards
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST(SpAttentionInputs, CreateRefusesMeshesThatDoNotFit) {
  const Topology topo{2, 2};
  Status s = run_thread_ranks(topo, {}, [&](RankRuntime& rt) -> Status {
    const Mesh mesh = Mesh::parse("U4", 4).value();
    auto a = SpAttention::create(rt.comm(), rt.device(), AttentionShape{1, 16, 6, 16, DType::kF32}, {mesh, Transport::kTwoSided});
    EXPECT_EQ(a.status().code(), ErrorCode::kInfeasible);
    EXPECT_NE(a.status().message().find("6 heads do not divide by Ulysses x Torus degree 4"), std::string::npos)
        << a.status().message();
    auto b = SpAttention::create(rt.comm(), rt.device(), AttentionShape{1, 0, 8, 16, DType::kF32}, {mesh, Transport::kTwoSided});
    EXPECT_EQ(b.status().code(), ErrorCode::kInvalidArgument);
    auto c = SpAttention::create(rt.comm(), rt.device(), AttentionShape{1, 16, 8, 16, DType::kF32},
                                 {Mesh::parse("U8", 8).value(), Transport::kTwoSided});
    EXPECT_EQ(c.status().code(), ErrorCode::kInfeasible);
    // Fewer tokens than ranks: a rank without rows is refused on every rank alike (it once deadlocked the ranks
    // waiting for its pieces), whatever the mesh.
    for (const char* m : {"U4", "R4", "T2R2"}) {
      auto d = SpAttention::create(rt.comm(), rt.device(), AttentionShape{1, 3, 8, 16, DType::kF32},
                                   {Mesh::parse(m, 4).value(), Transport::kOneSided});
      EXPECT_EQ(d.status().code(), ErrorCode::kInfeasible) << m;
      EXPECT_NE(d.status().message().find("S=3 is shorter than the 4 GPUs"), std::string::npos) << d.status().message();
    }
    return Status::ok();
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

}  // namespace
}  // namespace sf

namespace sf {
namespace {

// Torus transfers cut into any number of row segments (more segments than rows included) give the same
// exact result and move the same bytes.
TEST(TorusChunks, AnySegmentCountIsExact) {
  for (const char* mesh : {"T2R2", "T4", "T2U2"})
    for (int chunks : {1, 2, 3, 7, 64})
      for (Transport tr : {Transport::kTwoSided, Transport::kOneSided}) {
        const Topology topo = std::string(mesh) == "T4" ? Topology{4, 1} : Topology{2, 2};
        const AttentionShape shape{2, 45, 8, 16, DType::kF32};
        Result<Plan> plan = make_plan(Scheme::kCustom, topo, shape, mesh, tr);
        ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
        plan->config.torus_chunks = chunks;
        plan->config.local_diagonal = false;  // its own tests: test_local_diagonal.cpp
        const LayerInputs in = make_random_inputs(shape, chunks * 31 + 1);
        ThreadRunOptions opt;
        opt.iterations = 2;
        opt.world.chaos_seed = 99 + chunks;
        Result<ThreadRunResult> r = run_layer_on_threads(topo, in, reference_output(in), plan->config, opt);
        ASSERT_TRUE(r.is_ok()) << r.status().to_string();
        EXPECT_EQ(r->error.non_finite, 0) << mesh << " chunks " << chunks;
        EXPECT_LT(r->error.rel(), 1e-5) << mesh << " chunks " << chunks << " " << transport_name(tr);
      }
}

// The automatic choice (torus_chunks = 0) on a device that asks for as many query tiles per call as a stage has:
// one segment, except where a one-sided ring inside the machines relays every pulled set (then two); a larger
// device need or a layer of more tiles give more, up to 4. Each choice is exact, and costs the calls it implies.
TEST(TorusChunks, AutomaticChoiceFollowsCallSizeAndTheRingRelay) {
  struct Choice {
    const char* mesh;
    Topology topo;
    Transport transport;
    int64_t busy;
    int segments;
  };
  // B=2, S=45, 8 heads: ranks hold 11 or 12 rows; a stage of Torus degree t has 8 / t heads, so 2 x 4 = 8 query
  // tiles per stage on 2 machines, 2 x 2 = 4 on 4.
  const Topology two{2, 2}, four{4, 1};
  const Transport one_sided = Transport::kOneSided, two_sided = Transport::kTwoSided;
  for (const Choice& c : {Choice{"T2R2", two, one_sided, 8, 2}, Choice{"T2R2", two, two_sided, 8, 1},
                          Choice{"T4", four, one_sided, 4, 1}, Choice{"T2R2", two, one_sided, 3, 2},
                          Choice{"T2R2", two, one_sided, 2, 4}, Choice{"T4", four, one_sided, 2, 2},
                          Choice{"T2R2", two, one_sided, 1, 4}}) {
    const AttentionShape shape{2, 45, 8, 16, DType::kF32};
    Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, c.transport);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    plan->config.torus_chunks = 0;
    plan->config.local_diagonal = false;  // its own tests: test_local_diagonal.cpp
    const LayerInputs in = make_random_inputs(shape, 5);
    ThreadRunOptions opt;
    opt.busy_query_tiles = c.busy;
    Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const std::string what =
        std::string(c.mesh) + " " + transport_name(c.transport) + " busy " + std::to_string(c.busy);
    EXPECT_EQ(r->torus_segments, c.segments) << what;
    EXPECT_LT(r->error.rel(), 1e-5) << what;
    // The same segments asked for explicitly: the same calls.
    plan->config.torus_chunks = c.segments;
    plan->config.local_diagonal = false;  // its own tests: test_local_diagonal.cpp
    Result<ThreadRunResult> same = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, {});
    ASSERT_TRUE(same.is_ok()) << same.status().to_string();
    EXPECT_EQ(same->torus_segments, c.segments) << what;
    EXPECT_EQ(same->attention_calls, r->attention_calls) << what;
  }
}

}  // namespace
}  // namespace sf

namespace sf {
namespace {

// Paper Appendix A: the one-sided SFU layer synchronizes across machines only twice (after the Ulysses
// scatter, and once all output pieces are pushed); every other wait is on a transfer this rank started or on
// a barrier inside its machine. With the local diagonal only once: each pushed partial is waited for by its
// arrival signal, and the next forward's buffers alternate, so the layer ends without a barrier. Counted by Comm
// on every rank, for one forward, on meshes with 2 to 4 machines (Torus degree 2 to 4, with and without a ring and
// a Ulysses level inside the machine).
TEST(Synchronizations, SfuCrossesMachinesTwicePerLayer) {
  for (const Topology topo : {Topology{2, 2}, Topology{2, 4}, Topology{4, 2}, Topology{3, 2}, Topology{4, 4},
                              Topology{4, 1}}) {
    const int P = topo.world_size();
    const AttentionShape shape{1, 4 * P + 1, 24, 64, DType::kF32};
    Result<Plan> plan = make_plan(Scheme::kSfu, topo, shape);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    ASSERT_EQ(plan->config.transport, Transport::kOneSided);
    const LayerInputs in = make_random_inputs(shape, 11);
    ThreadRunOptions opt;
    opt.iterations = 2;
    Result<ThreadRunResult> r = run_layer_on_threads(topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_LT(r->error.rel(), 1e-5);
    for (int g = 0; g < P; ++g)
      EXPECT_EQ(r->barriers[g].inter, plan->config.local_diagonal ? 1u : 2u)
          << topo.to_string() << " rank " << g << ", diagonal " << plan->config.local_diagonal << ", mesh "
                                           << plan->config.mesh.to_string() << " (" << r->barriers[g].intra
                                           << " barriers inside the machine)";
  }
}

}  // namespace
}  // namespace sf

namespace sf {
namespace {

// A schedule case: the attention calls every rank makes in one forward on `mesh` with `chunks` row segments per
// Torus transfer, and why that many.
struct ScheduleCase {
  const char* mesh;
  Topology topo;
  int chunks;
  int64_t calls;
  const char* why;
  // Comm::landed_flag calls per rank: a lone ring inside a machine lets its call on the peers' blocks start before
  // they have all landed (one per block); nothing else asks (beside Torus stages it did not pay on GPUs).
  uint64_t landed_flags = 0;
};

// Runs each case on both transports (thread ranks with chaotic timing) and checks the result and the call count.
void expect_schedule(const std::vector<ScheduleCase>& cases, uint64_t seed) {
  for (const ScheduleCase& c : cases)
    for (Transport tr : {Transport::kTwoSided, Transport::kOneSided}) {
      const AttentionShape shape{1, 64, 8, 16, DType::kF32};
      Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, tr);
      ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
      plan->config.torus_chunks = c.chunks;
      plan->config.local_diagonal = false;  // its own tests: test_local_diagonal.cpp
      plan->config.ring_heads_per_step = 0;  // a lone ring in one call: its own test
      plan->config.stagger_foreign_push = false;  // its own test below (the planner would stagger this tiny layer)
      plan->config.foreign_rows_by_block = false;  // its own test below
      const LayerInputs in = make_random_inputs(shape, seed);
      ThreadRunOptions opt;
      opt.world.chaos_seed = seed + 1;
      Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_LT(r->error.rel(), 1e-5) << c.mesh;
      for (int g = 0; g < c.topo.world_size(); ++g) {
        EXPECT_EQ(r->attention_calls[g], c.calls) << c.mesh << " rank " << g << " " << transport_name(tr) << ": " << c.why;
        EXPECT_EQ(r->landed_flags_asked[g], c.landed_flags) << c.mesh << " rank " << g << " " << transport_name(tr);
      }
    }
}

// Each attention call costs a GPU its tiles' set-up and a partly filled last wave (about 4 % of a call at
// 16k keys per tile, measured on H100 with `gpu-attention --trace`), so a compute-bound layer computes in as
// few calls as its data dependencies allow: a ring inside a machine takes every peer's block in one call, the
// Torus stages whose Q has arrived share one call, and so do the middle Pull KV stages. Counted per rank for
// one forward, with the result still exact.
TEST(MeshSchedule, ComputeBoundLayersUseFewCalls) {
  expect_schedule({
                      {"R4", {1, 4}, 1, 2, "own block, then the 3 ring peers' blocks together", 3},
                      {"T2R2", {2, 2}, 1, 5, "own; ring peer; stage 1 x both; last stage foreign rows; own rows"},
                      {"T4", {4, 1}, 1, 7, "own; stage 1; stages 2-3; foreign rows x K/V set 1, 2, 3; own rows x sets 1-3"},
                      {"T2U2", {2, 2}, 1, 4, "own; stage 1; last stage foreign rows; own rows"},
                      {"R2U2", {2, 2}, 1, 2, "USP: the ring crosses machines, so one call per arriving block"},
                  },
                  4);
}

// One segment per Torus stage with the given foreign-row options, on both transports (thread ranks with chaotic
// timing): the result is exact and every rank makes the given number of attention calls in one forward.
void expect_compute_bound_calls(const char* mesh, Topology topo, bool stagger, bool by_block, int64_t one_sided_calls,
                                int64_t two_sided_calls, uint64_t seed, bool merge_sets = false) {
  for (Transport tr : {Transport::kTwoSided, Transport::kOneSided}) {
    const AttentionShape shape{1, 64, 8, 16, DType::kF32};
    Result<Plan> plan = make_plan(Scheme::kCustom, topo, shape, mesh, tr);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    plan->config.torus_chunks = 1;
    plan->config.local_diagonal = false;
    plan->config.ring_heads_per_step = 0;  // our rows' own and ring peers' blocks in two calls, as counted below
    plan->config.stagger_foreign_push = stagger;
    plan->config.foreign_rows_by_block = by_block;
    plan->config.merge_kv_sets = merge_sets;
    const LayerInputs in = make_random_inputs(shape, seed);
    ThreadRunOptions opt;
    opt.world.chaos_seed = seed + 1;
    Result<ThreadRunResult> r = run_layer_on_threads(topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_LT(r->error.rel(), 1e-5) << mesh << " " << transport_name(tr);
    const int64_t want = tr == Transport::kOneSided ? one_sided_calls : two_sided_calls;
    for (int g = 0; g < topo.world_size(); ++g)
      EXPECT_EQ(r->attention_calls[g], want) << mesh << " rank " << g << " " << transport_name(tr);
  }
}

// Staggered foreign push (SpAttentionConfig::stagger_foreign_push): once the last K/V set has landed, each foreign
// stage finalizes in its own call and its output is pushed at once, so the first pushes cross the link while the
// other stages compute. One-sided only: the two-sided pushes' receives are posted as one batch, so the flag leaves
// that schedule as it was. Exact either way.
TEST(MeshSchedule, StaggeredForeignPushFinalizesOneStageAtATime) {
  struct StaggerCase {
    const char* mesh;
    Topology topo;
    int64_t one_sided_calls, two_sided_calls;
  };
  const StaggerCase cases[] = {
      {"T4", {4, 1}, 9, 7},    // own; stage 1; stages 2-3; sets 1, 2; set 3 stage by stage (3); own rows
      {"T8", {8, 1}, 18, 12},  // own; {1}, {2,3}, {4..7}; sets 1..6; set 7 stage by stage (7); own rows
  };
  for (const StaggerCase& c : cases)
    expect_compute_bound_calls(c.mesh, c.topo, true, false, c.one_sided_calls, c.two_sided_calls, 21);
}

// Foreign rows by block (SpAttentionConfig::foreign_rows_by_block): with the ring inside each machine, the foreign
// rows take a pulled K/V set's Torus block in one call as soon as it lands and the ring peers' blocks of the set in
// a second, on both transports, staggered push or not. Exact either way; one more call per pulled set.
TEST(MeshSchedule, ForeignRowsTakeTheTorusBlockBeforeTheRingCopies) {
  struct ByBlockCase {
    const char* mesh;
    Topology topo;
    bool stagger;
    int64_t one_sided_calls, two_sided_calls;
  };
  const ByBlockCase cases[] = {
      {"T2R2", {2, 2}, false, 6, 6},  // own; ring peer; stage 1 x both; foreign x Torus block, x ring peer's; own rows
      {"T4R2", {4, 2}, false, 11, 11},  // own; ring peer; {1}, {2,3}; sets 1-3 x (Torus block, ring peer's); own rows
      {"T4R2", {4, 2}, true, 13, 11},   // the last set's ring blocks stage by stage (one-sided only)
      {"T4", {4, 1}, false, 7, 7},      // no ring: nothing to split
  };
  for (const ByBlockCase& c : cases)
    expect_compute_bound_calls(c.mesh, c.topo, c.stagger, true, c.one_sided_calls, c.two_sided_calls, 31);
}

// Merged K/V sets (SpAttentionConfig::merge_kv_sets): the foreign rows take the pulled sets in groups of doubling
// size, {1}, {2, 3}, {4..7}, one call per group, staggered push or not; with foreign rows by block and a ring
// inside the machines each set keeps its own two calls. Exact either way.
TEST(MeshSchedule, MergedKvSetsTakeGroupsOfDoublingSize) {
  struct MergeCase {
    const char* mesh;
    Topology topo;
    bool stagger, by_block;
    int64_t one_sided_calls, two_sided_calls;
  };
  const MergeCase cases[] = {
      {"T4", {4, 1}, false, false, 6, 6},     // own; stage 1; stages 2-3; sets {1}, {2,3}; own rows
      {"T8", {8, 1}, false, false, 8, 8},     // own; {1}, {2,3}, {4..7}; sets {1}, {2,3}, {4..7}; own rows
      {"T4", {4, 1}, true, false, 8, 6},      // the last group stage by stage (3, one-sided only)
      {"T4R2", {4, 2}, false, false, 7, 7},   // own; ring peer; {1}, {2,3}; sets {1}, {2,3}; own rows
      {"T4R2", {4, 2}, false, true, 11, 11},  // by block: as without merging
      {"T2R2", {2, 2}, false, false, 5, 5},   // one pulled set: nothing to merge
  };
  for (const MergeCase& c : cases)
    expect_compute_bound_calls(c.mesh, c.topo, c.stagger, c.by_block, c.one_sided_calls, c.two_sided_calls, 51, true);
}

// Merged K/V sets with a batch of two, an uneven sequence split and uneven heads per stage group, on both transports
// with thread ranks in chaotic timing: exact against the float64 reference.
TEST(MeshSchedule, MergedKvSetsAreExactOnUnevenShapes) {
  struct UnevenCase {
    const char* mesh;
    Topology topo;
    int64_t seq, heads;
  };
  const UnevenCase cases[] = {{"T4", {4, 1}, 70, 8}, {"T8", {8, 1}, 203, 8}, {"T4R2", {4, 2}, 101, 4},
                              {"T4U2", {4, 2}, 93, 8}};
  for (const UnevenCase& c : cases)
    for (Transport tr : {Transport::kTwoSided, Transport::kOneSided})
      for (bool stagger : {false, true}) {
        const AttentionShape shape{2, c.seq, c.heads, 16, DType::kF32};
        Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, tr);
        ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
        plan->config.torus_chunks = 1;
        plan->config.local_diagonal = false;  // its own tests: test_local_diagonal.cpp
        plan->config.stagger_foreign_push = stagger;
        plan->config.foreign_rows_by_block = false;
        plan->config.merge_kv_sets = true;
        const LayerInputs in = make_random_inputs(shape, 61);
        ThreadRunOptions opt;
        opt.world.chaos_seed = 62;
        Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
        ASSERT_TRUE(r.is_ok()) << c.mesh << ": " << r.status().to_string();
        EXPECT_LT(r->error.rel(), 1e-5) << c.mesh << " S=" << c.seq << " " << transport_name(tr) << " stagger "
                                        << stagger;
      }
}

// The shared ring (SpAttentionConfig::ring_share): a lone one-sided ring inside one machine issues its two calls and
// one helper call per ring peer (AttentionProblem::shared), every helper call building its owner's problem (the
// owner's Q rows, accumulator and output, our copies of its K/V blocks in its order). On CPU devices the call's
// (batch, head) pairs go to whoever takes them first; with rank 0 pausing once armed its helpers take its pairs, so
// a wrong helper problem shows in the result. Two forwards each (the queue re-armed). Elsewhere it is refused.
// The shared ring in both of its schedules: our own block, then the pulled ones in a shared call (whole blocks,
// ring_heads_per_step 0), or every block in one shared call (pulled by heads). Exact either way, one helper call
// toward every ring peer, and a paused rank's call helped: paused once armed, and also before arming, so that the
// helpers come first and must wait for it in the layer's first forward (the layer zeroes the shared workspace, which
// symmetric memory is not: on rank threads it is poisoned, and a helper took the poison for an armed call and
// helped nobody).
TEST(MeshSchedule, RingShareAddsHelperCallsAndStaysExact) {
  for (const int heads_per_step : {0, 1}) {
    for (const int64_t seq : {64, 70, 1100}) {
      for (const Topology topo : {Topology{1, 4}, Topology{1, 2}}) {
        for (const int pause : {0, 1, 2}) {  // none, 200 ms once armed, and 200 ms before arming too
          const int pause_ms = pause > 0 ? 200 : 0, arm_delay_ms = pause == 2 ? 200 : 0;
          const AttentionShape shape{2, seq, 4, 16, DType::kF32};
          const std::string mesh = "R" + std::to_string(topo.world_size());
          const std::string what = mesh + " S=" + std::to_string(seq) + " pause " + std::to_string(pause_ms) +
                                   " arm delay " + std::to_string(arm_delay_ms) + " heads per step " +
                                   std::to_string(heads_per_step);
          Result<Plan> plan = make_plan(Scheme::kCustom, topo, shape, mesh, Transport::kOneSided);
          ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
          plan->config.ring_share = true;
          plan->config.ring_heads_per_step = heads_per_step;
          const LayerInputs in = make_random_inputs(shape, 47);
          ThreadRunOptions opt;
          opt.world.chaos_seed = 48;
          opt.warmup = pause == 2 ? 0 : 1;  // the arm delay in the layer's first forward, its first epoch
          if (pause > 0) opt.share_pause_rank = 0, opt.share_pause_ms = pause_ms, opt.share_arm_delay_ms = arm_delay_ms;
          Result<ThreadRunResult> r = run_layer_on_threads(topo, in, reference_output(in), plan->config, opt);
          ASSERT_TRUE(r.is_ok()) << r.status().to_string();
          EXPECT_LT(r->error.rel(), 1e-5) << what;
          const int64_t own_calls = heads_per_step > 0 ? 1 : 2;
          for (int g = 0; g < topo.world_size(); ++g)
            EXPECT_EQ(r->attention_calls[g], own_calls + topo.world_size() - 1) << what << " rank " << g;
          if (pause > 0) {
            EXPECT_GT(r->helped_blocks[0], 0) << what << ": rank 0 paused, not helped";
          }
        }
      }
    }
  }
  const AttentionShape shape{1, 64, 4, 16, DType::kF32};
  const LayerInputs in = make_random_inputs(shape, 5);
  const struct {
    Topology topo;
    const char* mesh;
    Transport transport;
    double loans;
    const char* message;
  } bad[] = {
      {{2, 2}, "T2R2", Transport::kOneSided, 0, "ring_share needs a ring inside one machine and nothing else"},
      {{1, 4}, "U2R2", Transport::kOneSided, 0, "ring_share needs a ring inside one machine and nothing else"},
      {{1, 4}, "R4", Transport::kTwoSided, 0, "ring_share needs a ring inside one machine and nothing else"},
      {{1, 4}, "R4", Transport::kOneSided, 0.2, "it excludes row_loan_limit > 0"},
  };
  for (const auto& b : bad) {
    Result<Plan> plan = make_plan(Scheme::kCustom, b.topo, shape, b.mesh, b.transport);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    plan->config.ring_share = true;
    plan->config.ring_heads_per_step = 0;  // a lone ring in one call: its own test
    plan->config.row_loan_limit = b.loans;
    Result<ThreadRunResult> r = run_layer_on_threads(b.topo, in, reference_output(in), plan->config, {});
    ASSERT_FALSE(r.is_ok()) << b.mesh;
    EXPECT_NE(r.status().to_string().find(b.message), std::string::npos) << r.status().to_string();
  }
}

// A lone ring pulled by heads (SpAttentionConfig::ring_heads_per_step): one-sided inside one machine, the ring
// peers' K/V come in strided pulls of a few heads' columns each and our rows take every block in one call (one
// call for the step flags, one flag per ring block); exact for any step, whether or not it divides the heads, for
// any heads pulled peer by peer first (ring_first_wave_heads: asked, rounded up to whole steps, or about the first
// wave of a device that reports busy_query_tiles), uneven rows and two batch entries, and the same bytes as whole
// blocks; beside Torus stages (T·R meshes without the local diagonal) the same holds for the home K/V, our rows'
// first call taking every home block. Elsewhere (two-sided, a ring across machines, a Ulysses level) the schedule
// stays as it was.
// Negative steps, negative first waves, and steps beside loans or ring_share, are refused.
TEST(MeshSchedule, RingByHeadsTakesEveryBlockInOneCall) {
  struct HeadsCase {
    const char* mesh;
    Topology topo;
    Transport transport;
    int64_t seq;
    int step;
    int64_t calls, flags;
    int first = 0;         // ring_first_wave_heads asked
    int64_t busy = 0;      // busy_query_tiles the ranks' devices report
    int64_t expect_first;  // ring_first_wave_heads in force
  };
  const HeadsCase cases[] = {
      {"R4", {1, 4}, Transport::kOneSided, 64, 1, 1, 1, 0, 0, 1},
      {"R4", {1, 4}, Transport::kOneSided, 70, 3, 1, 1, 0, 0, 3},
      {"R4", {1, 4}, Transport::kOneSided, 1100, 2, 1, 1, 0, 0, 2},
      {"R4", {1, 4}, Transport::kOneSided, 64, 8, 1, 1, 0, 0, 4},
      {"R2", {1, 2}, Transport::kOneSided, 70, 1, 1, 1, 0, 0, 1},
      {"R4", {1, 4}, Transport::kOneSided, 64, 0, 2, 3, 0, 0, 0},
      {"R4", {1, 4}, Transport::kTwoSided, 64, 2, 2, 3, 0, 0, 0},
      {"R4", {2, 2}, Transport::kOneSided, 64, 2, 4, 0, 0, 0, 0},
      // Beside Torus stages (no local diagonal) the home K/V: our rows' first call takes every home block.
      {"T2R2", {2, 2}, Transport::kOneSided, 64, 2, 4, 1, 0, 0, 2},
      {"T2R2", {2, 2}, Transport::kOneSided, 64, 0, 5, 0, 0, 0, 0},
      {"T2R4", {2, 4}, Transport::kOneSided, 70, 1, 4, 1, 2, 0, 2},
      {"T2R4", {2, 4}, Transport::kOneSided, 70, 0, 5, 0, 0, 0, 0},
      {"T2R4", {2, 4}, Transport::kTwoSided, 70, 1, 5, 0, 0, 0, 0},
      {"U2R2", {1, 4}, Transport::kOneSided, 64, 1, 2, 1, 0, 0, 0},
      // First waves asked: as asked, rounded up to whole steps, at most every head.
      {"R4", {1, 4}, Transport::kOneSided, 1100, 1, 1, 1, 3, 0, 3},
      {"R4", {1, 4}, Transport::kOneSided, 1100, 2, 1, 1, 3, 0, 4},
      {"R3", {1, 3}, Transport::kOneSided, 70, 3, 1, 1, 5, 0, 4},
      // About the first wave: busy/2 tiles of 128 rows over 275 rows a head (S=1100 on 4 ranks) is 3 heads at busy
      // 12, rounded up to a step of 2; every head at busy 1000.
      {"R4", {1, 4}, Transport::kOneSided, 1100, 1, 1, 1, 0, 12, 3},
      {"R4", {1, 4}, Transport::kOneSided, 1100, 2, 1, 1, 0, 12, 4},
      {"R4", {1, 4}, Transport::kOneSided, 1100, 1, 1, 1, 0, 1000, 4},
  };
  for (const HeadsCase& c : cases) {
    const std::string what = std::string(c.mesh) + " " + c.topo.to_string() + " " + transport_name(c.transport) +
                             " S=" + std::to_string(c.seq) + " step " + std::to_string(c.step) + " first " +
                             std::to_string(c.first) + " busy " + std::to_string(c.busy);
    const AttentionShape shape{2, c.seq, 4, 16, DType::kF32};
    Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, c.transport);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    plan->config.torus_chunks = 1;
    plan->config.local_diagonal = false;
    plan->config.stagger_foreign_push = false;
    plan->config.foreign_rows_by_block = false;
    const LayerInputs in = make_random_inputs(shape, 51);
    ThreadRunOptions opt;
    opt.world.chaos_seed = 52;
    opt.warmup = 1;
    opt.busy_query_tiles = c.busy;
    plan->config.ring_first_wave_heads = c.first;
    plan->config.ring_heads_per_step = 0;  // whole blocks first (the planner pulls a lone one-sided ring by heads)
    Result<ThreadRunResult> whole = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
    plan->config.ring_heads_per_step = c.step;
    Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(r.is_ok()) << what << ": " << r.status().to_string();
    EXPECT_LT(r->error.rel(), 1e-5) << what;
    for (int g = 0; g < c.topo.world_size(); ++g) {
      EXPECT_EQ(r->attention_calls[g], c.calls) << what << " rank " << g;
      EXPECT_EQ(r->landed_flags_asked[g], c.flags) << what << " rank " << g;
      EXPECT_EQ(r->ring_first_wave_heads[g], c.expect_first) << what << " rank " << g;
      EXPECT_EQ(r->bytes[g].intra(), whole->bytes[g].intra()) << what << " rank " << g;
      EXPECT_EQ(r->bytes[g].inter(), whole->bytes[g].inter()) << what << " rank " << g;
    }
  }
  const AttentionShape shape{1, 64, 4, 16, DType::kF32};
  const LayerInputs in = make_random_inputs(shape, 5);
  const struct {
    int step;
    double loans;
    int first;
    const char* message;
  } bad[] = {
      {-1, 0, 0, "ring_heads_per_step must be 0 (whole K/V blocks) or a number of heads; got -1"},
      {2, 0, -2, "ring_first_wave_heads must be 0 (about the first wave's heads) or a number of heads; got -2"},
      {2, 0.2, 0, "it excludes row_loan_limit > 0"},
  };
  for (const auto& b : bad) {
    Result<Plan> plan = make_plan(Scheme::kCustom, {1, 4}, shape, "R4", Transport::kOneSided);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    plan->config.ring_heads_per_step = b.step;
    plan->config.row_loan_limit = b.loans;
    plan->config.ring_first_wave_heads = b.first;
    Result<ThreadRunResult> r = run_layer_on_threads({1, 4}, in, reference_output(in), plan->config, {});
    ASSERT_FALSE(r.is_ok()) << "step " << b.step;
    EXPECT_NE(r.status().to_string().find(b.message), std::string::npos) << r.status().to_string();
  }
}

// Transfer-bound layers (Torus transfers cut into segments) compute each segment as it lands. The ring peers'
// rows of a pulled set move segment by segment beside ours (a ring inside a machine: in the same call), so the
// foreign rows of the last stage wait for the last segment only, not for whole ring blocks; our own rows then
// take that set whole in one call while the foreign output is pushed. Counted per rank for one forward.
TEST(MeshSchedule, TransferBoundLayersComputeEachSegmentAsItLands) {
  expect_schedule({
                      {"T2R2", {2, 2}, 4, 11, "own; ring peer; 4 Q segments x both; 4 segments x (ours + ring peer's); own rows"},
                      {"T4", {4, 1}, 4, 26, "own; 3 stages x 4 Q segments; 2 middle sets x 4 segments; 4 last segments; own rows"},
                      {"T2R4", {4, 2}, 2, 21,
                       "ring across machines, one call per block: own + 3 ring blocks; 2 Q segments x 4 blocks; 2 "
                       "segments x 4 blocks; own rows"},
                  },
                  8);
}

}  // namespace
}  // namespace sf

namespace sf {
namespace {

// A one-sided ring without a Ulysses or Torus level offers its symmetric K/V buffers as inputs; K/V written
// there give the same exact result without the copy (and every other layer offers none).
TEST(KvInputBuffers, OneSidedRingTakesKVInPlace) {
  struct BufferCase {
    const char* mesh;
    Topology topo;
    Transport transport;
    bool offers;
  };
  const BufferCase cases[] = {
      {"R4", {1, 4}, Transport::kOneSided, true},   {"R4", {2, 2}, Transport::kOneSided, true},
      {"R4", {1, 4}, Transport::kTwoSided, false},  {"T2R2", {2, 2}, Transport::kOneSided, false},
      {"U4", {1, 4}, Transport::kOneSided, false},
  };
  for (const BufferCase& c : cases) {
    const AttentionShape shape{2, 37, 4, 16, DType::kF32};
    Result<Plan> plan = make_plan(Scheme::kCustom, c.topo, shape, c.mesh, c.transport);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    Status offered = run_thread_ranks(c.topo, {}, [&](RankRuntime& rt) -> Status {
      SF_ASSIGN_OR_RETURN(std::unique_ptr<SpAttention> a, SpAttention::create(rt.comm(), rt.device(), shape, plan->config));
      const std::array<void*, 2> b = a->kv_input_buffers();
      if ((b[0] != nullptr) != c.offers || (b[1] != nullptr) != c.offers)
        return internal_error(std::string(c.mesh) + " offers K/V buffers: " + (b[0] ? "yes" : "no"));
      return Status::ok();
    });
    EXPECT_TRUE(offered.is_ok()) << offered.to_string();
    const LayerInputs in = make_random_inputs(shape, 17);
    ThreadRunOptions opt;
    opt.iterations = 2;  // the first forward runs on sign-flipped inputs: stale K/V would show
    opt.kv_in_layer_buffers = true;
    opt.world.chaos_seed = 11;
    Result<ThreadRunResult> r = run_layer_on_threads(c.topo, in, reference_output(in), plan->config, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->error.non_finite, 0) << c.mesh;
    EXPECT_LT(r->error.rel(), 1e-5) << c.mesh << " " << transport_name(c.transport);
  }
}

}  // namespace
}  // namespace sf
