// The tail-split planner of the warp-specialized CUDA kernel (src/backends/cuda/tail_split.h): plain C++, so its
// decisions are checked here; the kernel's split pieces themselves are checked on the GPU
// (tests/gpu/kernel/attention_test.cpp, CudaAttention.TailSplitPieces*).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/cuda/shared_work.h"
#include "backends/cuda/tail_split.h"
#include "backends/cuda/work_items.h"

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

TEST(SharedTail, TakesTheLastWaveAndWholeWavesInPiecesWithinTheWorkspace) {
  // Flux S=65536 on 1x4, the ring's second call: 2064 items on 132 SMs (84 in the last wave), 384 K/V tiles.
  TailSplit t = plan_shared_tail(2064, 384, 132, 100000, 1, 4);
  EXPECT_EQ(t.split_from, 2064 - (84 + 132));
  EXPECT_EQ(t.splits, 4);
  EXPECT_EQ(t.pieces(2064), 4 * 216);
  EXPECT_EQ(plan_shared_tail(2064, 384, 132, 100000, 0, 4).split_from, 2064 - 84);
  EXPECT_EQ(plan_shared_tail(2064, 384, 132, 100000, 8, 16).split_from, 2064 - (84 + 8 * 132));
  EXPECT_EQ(plan_shared_tail(2064, 384, 132, 400, 1, 4).split_from, 2064 - 100);  // what the workspace holds
  EXPECT_EQ(plan_shared_tail(100, 384, 132, 100000, 2, 4).split_from, 0);          // fewer items than the tail
  EXPECT_EQ(plan_shared_tail(2064, 3, 132, 100000, 1, 4).splits, 3);               // a K/V tile per piece at least
  EXPECT_EQ(plan_shared_tail(2064, 384, 132, 100000, 1, 1).splits, 1);             // N = 1: no pieces
  EXPECT_EQ(plan_shared_tail(2064, 384, 132, 3, 1, 4).splits, 1);                  // no room for one item's pieces
  EXPECT_EQ(plan_shared_tail(0, 384, 132, 100000, 1, 4).splits, 1);
  EXPECT_EQ(plan_shared_tail(2064, 1, 132, 100000, 1, 4).splits, 1);
}

TEST(SharedTail, TheWorkspaceLayoutFitsItsBytes) {
  for (const size_t bytes : {size_t{4096}, size_t{1} << 20, size_t{64} << 20, size_t{256} << 20})
    for (const int rows_m : {128, 192})
      for (const int d : {64, 128}) {
        const SharedLayout l = shared_layout(bytes, rows_m, d);
        ASSERT_GE(l.max_pieces, 0);
        const size_t end = l.o + static_cast<size_t>(l.max_pieces) * rows_m * d * sizeof(float);
        EXPECT_LE(end, bytes) << bytes << " " << rows_m << " " << d;
        EXPECT_GE(l.counts, kSharedHeaderBytes);
        EXPECT_GE(l.ml, l.counts + l.max_pieces * sizeof(unsigned));
        EXPECT_GE(l.o, l.ml + l.max_pieces * rows_m * 2 * sizeof(float));
        EXPECT_EQ(l.ml % 256, 0u);
        EXPECT_EQ(l.o % 256, 0u);
      }
  EXPECT_GT(shared_layout(size_t{256} << 20, 192, 128).max_pieces, 2500);  // ~100 KB per piece
  EXPECT_EQ(shared_layout(512, 192, 128).max_pieces, 0);
}

// The fields of AttentionArgs that work_item reads.
struct GridArgs {
  int blocks = 0, heads = 1;
  int split_from = 0x7fffffff, splits = 1;
};

// Walks every block of a launch as the kernel maps it (work_items.h) and checks that each K/V tile of each item is
// computed exactly once, that an item's pieces share one set of workspace slots and one arrival count inside the
// workspace the launch sizes (pieces, counters), and that (tile, head, batch) is the item's.
void check_grid(const GridArgs& a, int q_tiles, int batch, int kv_tiles, int64_t pieces, int64_t counters) {
  const int items = q_tiles * a.heads * batch;
  std::vector<int> covered(static_cast<size_t>(items) * kv_tiles, 0), slot0(items, -1), seen(items, 0);
  for (int bx = 0; bx < a.blocks; ++bx) {
    const WorkItem w = work_item(a, q_tiles, bx);
    const int item = (w.b * a.heads + w.h) * q_tiles + w.tile;
    ASSERT_GE(item, 0);
    ASSERT_LT(item, items) << "block " << bx;
    ASSERT_TRUE(w.tile >= 0 && w.tile < q_tiles && w.h >= 0 && w.h < a.heads && w.b >= 0 && w.b < batch);
    ++seen[item];
    int count = 0;
    const int t0 = piece_tiles(w, kv_tiles, count);
    ASSERT_GE(count, 0) << "block " << bx;
    for (int t = t0; t < t0 + count; ++t) ++covered[static_cast<size_t>(item) * kv_tiles + t];
    if (w.pieces > 1) {
      ASSERT_TRUE(w.piece >= 0 && w.piece < w.pieces);
      ASSERT_LT(w.slot0 + w.piece, pieces) << "block " << bx;
      ASSERT_LT(w.slot0 / w.pieces, counters) << "block " << bx;
      if (slot0[item] < 0) slot0[item] = w.slot0;
      EXPECT_EQ(slot0[item], w.slot0) << "item " << item;
    }
  }
  for (int item = 0; item < items; ++item) {
    for (int t = 0; t < kv_tiles; ++t)
      ASSERT_EQ(covered[static_cast<size_t>(item) * kv_tiles + t], 1) << "item " << item << " K/V tile " << t;
    ASSERT_GE(seen[item], 1);
  }
  // Distinct items never share a slot.
  std::vector<int> owner(static_cast<size_t>(pieces), -1);
  for (int item = 0; item < items; ++item) {
    if (slot0[item] < 0) continue;
    for (int k = 0; k < seen[item]; ++k) {
      int& o = owner[static_cast<size_t>(slot0[item] + k)];
      EXPECT_EQ(o, -1) << "slot " << slot0[item] + k << " of items " << o << " and " << item;
      o = item;
    }
  }
}

TEST(WorkItems, EveryTileOfEveryItemOnceWholeOrSplit) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    GridArgs a;
    const int q_tiles = 1 + static_cast<int>(rng() % 9), batch = 1 + static_cast<int>(rng() % 2);
    a.heads = 1 + static_cast<int>(rng() % 5);
    const int kv_tiles = 1 + static_cast<int>(rng() % 40);
    const int items = q_tiles * a.heads * batch;
    SCOPED_TRACE("trial " + std::to_string(trial));
    // Whole items only.
    a.blocks = items;
    check_grid(a, q_tiles, batch, kv_tiles, 0, 0);
    // A tail split as plan_tail_split / forced_*_split give it.
    const TailSplit t{static_cast<int64_t>(rng() % (items + 1)), 2 + static_cast<int>(rng() % 7)};
    if (t.splits <= kv_tiles) {
      GridArgs s = a;
      s.split_from = static_cast<int>(t.split_from), s.splits = t.splits;
      s.blocks = static_cast<int>(t.split_from + t.pieces(items));
      check_grid(s, q_tiles, batch, kv_tiles, t.pieces(items), t.pieces(items) / t.splits);
    }
  }
}

}  // namespace
}  // namespace sf::cuda::detail
