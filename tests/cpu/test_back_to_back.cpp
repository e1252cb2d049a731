// Forwards back to back: no barrier between them, one rank's transfers landing late, every forward's output checked.
// A layer may leave buffers to its next forward only where no peer can still read or write them; here a rank whose
// transfers complete 2 ms after it waits for them (ThreadWorldOptions::lagging_rank) keeps its peers a forward
// ahead of it, and every forward but the last runs on sign-flipped inputs, so that a buffer reused too soon shows
// in some forward's output (ThreadRunOptions::check_every_forward). Every scheme on both transports where the
// planner gives it, on one, two and four machines (4 and 8 GPUs), the local diagonal both ways where it applies.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "streamfusion/layer_check.h"
#include "streamfusion/planner.h"

namespace sf {
namespace {

TEST(BackToBack, EveryLayerSurvivesALaggingRankWithoutBarriersBetweenForwards) {
  const AttentionShape shape{1, 61, 8, 16, DType::kF32};
  const LayerInputs in = make_random_inputs(shape, 151);
  const std::vector<double> ref = reference_output(in);
  int runs = 0;
  for (const Topology topo : {Topology{1, 4}, Topology{2, 2}, Topology{4, 1}, Topology{2, 4}, Topology{4, 2}})
    for (Scheme scheme : all_schemes())
      for (Transport tr : {Transport::kTwoSided, Transport::kOneSided}) {
        Result<Plan> plan = make_plan(scheme, topo, shape, "", tr);
        if (!plan.is_ok()) continue;  // e.g. Ulysses where the heads do not divide
        std::vector<SpAttentionConfig> configs{plan->config};
        const Mesh& m = plan->config.mesh;
        if (tr == Transport::kOneSided && m.degree(LevelKind::kTorus) > 1 && m.degree(LevelKind::kUlysses) == 1) {
          configs.push_back(plan->config);
          configs.back().local_diagonal = !plan->config.local_diagonal;
        }
        for (const SpAttentionConfig& config : configs) {
          const std::string what = std::string(scheme_name(scheme)) + " " + transport_name(tr) + " on " +
                                   topo.to_string() + ", mesh " + config.mesh.to_string() + ", diagonal " +
                                   (config.local_diagonal ? "on" : "off");
          ThreadRunOptions opt;
          opt.world.chaos_seed = 160 + runs;
          opt.world.lagging_rank = runs % topo.world_size();
          opt.world.lag = std::chrono::microseconds(2000);
          opt.iterations = 3;
          opt.barrier_between_forwards = false;
          opt.check_every_forward = true;
          Result<ThreadRunResult> r = run_layer_on_threads(topo, in, ref, config, opt);
          ASSERT_TRUE(r.is_ok()) << what << ": " << r.status().to_string();
          EXPECT_EQ(r->error.non_finite, 0) << what;
          EXPECT_LT(r->error.rel(), 1e-5) << what;
          ++runs;
        }
      }
  EXPECT_GE(runs, 30);
}

}  // namespace
}  // namespace sf
