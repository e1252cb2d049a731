// The tail-split planner of the warp-specialized CUDA kernel (src/backends/cuda/tail_split.h): plain C++, so its
// decisions are checked here; the kernel's split pieces themselves are checked on the GPU
// (tests/gpu/kernel/attention_test.cpp, CudaAttention.TailSplitPieces*).
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cuda/tail_split.h"

namespace sf::cuda::detail {
namespace {

TEST(TailSplit, FullWavesAreNotSplit) {
  EXPECT_EQ(plan_tail_split(528, 32, 132, 528).splits, 1);   // 4 full waves (Flux S=4096, one GPU)
  EXPECT_EQ(plan_tail_split(132, 512, 132, 528).splits, 1);
}

TEST(TailSplit, NearlyEmptyLastWaveIsSplit) {
  // Flux S=32768 on one H100: 171 tiles of 192 rows × 24 heads = 31 waves and 12 blocks.
  const TailSplit t = plan_tail_split(4104, 256, 132, 528);
  EXPECT_GT(t.splits, 1);
  EXPECT_EQ(4104 - t.split_from, 12);   // only the last wave's items
  EXPECT_LE(t.pieces(4104), 132);       // which then run side by side in one wave
  EXPECT_LT(modeled_launch_time(4104, 256, 132, t), 0.98 * modeled_launch_time(4104, 256, 132, TailSplit{}));
}

TEST(TailSplit, ShortCallWithFewWavesIsSplit) {
  // A distributed layer's call: 288 items = 2.2 waves (bench/sp/TRACES.md, 4x1 at S=36864).
  const TailSplit t = plan_tail_split(288, 288, 132, 528);
  ASSERT_GT(t.splits, 1);
  EXPECT_LT(modeled_launch_time(288, 288, 132, t), 0.8 * modeled_launch_time(288, 288, 132, TailSplit{}));
}

TEST(TailSplit, PlansStayWithinTheirLimits) {
  for (int64_t items : {1, 5, 66, 67, 131, 133, 200, 1000, 2064, 4104, 8208})
    for (int64_t kv : {1, 2, 3, 16, 128, 512})
      for (int64_t max_pieces : {0, 64, 528}) {
        const TailSplit t = plan_tail_split(items, kv, 132, max_pieces);
        SCOPED_TRACE(std::to_string(items) + " items, " + std::to_string(kv) + " kv tiles");
        if (t.splits == 1) continue;
        EXPECT_LE(t.splits, 16);
        EXPECT_LE(t.splits, kv);             // every piece has at least one K/V tile
        EXPECT_GE(t.split_from, 0);
        EXPECT_LT(t.split_from, items);
        EXPECT_LE(t.pieces(items), max_pieces);
        EXPECT_LT(modeled_launch_time(items, kv, 132, t), modeled_launch_time(items, kv, 132, TailSplit{}));
      }
}

TEST(TailSplit, ForcedLastWaveSplit) {
  TailSplit t = forced_last_wave_split(528, 32, 132, 2);  // 4 full waves: the fourth in pieces
  EXPECT_EQ(t.split_from, 396);
  EXPECT_EQ(t.splits, 2);
  EXPECT_EQ(t.pieces(528), 264);
  t = forced_last_wave_split(4104, 256, 132, 3);  // 31 waves and 12 items: those 12
  EXPECT_EQ(t.split_from, 4092);
  EXPECT_EQ(t.pieces(4104), 36);
  EXPECT_EQ(forced_last_wave_split(50, 8, 132, 2).split_from, 0);  // less than a wave: all of it
  EXPECT_EQ(forced_last_wave_split(50, 1, 132, 2).splits, 1);      // one K/V tile: nothing to split
  EXPECT_EQ(forced_last_wave_split(0, 8, 132, 2).splits, 1);
}

TEST(TailSplit, ForcedSplitKeepsAKvTilePerPiece) {
  EXPECT_EQ(forced_tail_split(10, 3).splits, 3);
  EXPECT_EQ(forced_tail_split(2, 5).splits, 2);
  EXPECT_EQ(forced_tail_split(1, 5).splits, 1);
  EXPECT_EQ(forced_tail_split(0, 5).splits, 1);
  EXPECT_EQ(forced_tail_split(10, 3).split_from, 0);
}

// Lead pieces (AttentionProblem::lead_share): ceil(share · items) items, at least one, cut where the leading chunks
// end; nothing where those chunks hold no K/V tile or all of them, or where the share is not positive.
TEST(LeadSplit, TakesTheShareOfItemsCutAtTheLeadingChunks) {
  // Flux S=65536 on 1x4: 2064 items (86 tiles of 192 rows x 24 heads), 4 K/V blocks of 128 tiles.
  LeadSplit l = plan_lead_split(2064, 512, 128, 0.34);
  EXPECT_EQ(l.items, 702);  // ceil(701.76)
  EXPECT_EQ(l.tiles, 128);
  EXPECT_EQ(plan_lead_split(2064, 512, 128, 1.0).items, 2064);
  EXPECT_EQ(plan_lead_split(2064, 512, 128, 2.0).items, 2064);
  EXPECT_EQ(plan_lead_split(10, 512, 128, 1e-9).items, 1);
  EXPECT_EQ(plan_lead_split(2064, 512, 128, 0.0).items, 0);
  EXPECT_EQ(plan_lead_split(2064, 512, 128, -0.5).items, 0);
  EXPECT_EQ(plan_lead_split(2064, 512, 128, std::nan("")).items, 0);
  EXPECT_EQ(plan_lead_split(2064, 512, 0, 0.3).items, 0);    // the leading chunks hold no tile
  EXPECT_EQ(plan_lead_split(2064, 512, 512, 0.3).items, 0);  // ... or all of them
  EXPECT_EQ(plan_lead_split(0, 512, 128, 0.3).items, 0);
}

}  // namespace
}  // namespace sf::cuda::detail
