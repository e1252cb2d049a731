// The persistent-launch rule of the warp-specialized CUDA kernel (src/backends/cuda/persistent_launch.h): plain
// C++, so its decisions are checked here; the kernel's walk over several blocks of work is checked on the GPU
// (tests/gpu/kernel/attention_test.cpp, CudaAttention.PersistentFewThreadBlocks and PersistentOff).
#include <gtest/gtest.h>

#include "backends/cuda/persistent_launch.h"

namespace sf::cuda::detail {
namespace {

TEST(PersistentLaunch, ShortBlocksRunOneThreadBlockPerSlot) {
  // Flux S=4096 on one H100: 528 items of 32 K/V tiles on 132 SMs, one thread block each.
  EXPECT_EQ(launch_grid(528, 132, 32), 132);
  // A distributed layer's short call with a split last wave: the blocks of work include the pieces.
  EXPECT_EQ(launch_grid(300, 132, 8), 132);
}

TEST(PersistentLaunch, LongBlocksKeepOneThreadBlockEach) {
  // S=8192 and longer: 64+ K/V tiles per block, where the static order measured slower at D=128.
  EXPECT_EQ(launch_grid(1032, 132, 64), 1032);
  EXPECT_EQ(launch_grid(8208, 132, 512), 8208);
  EXPECT_EQ(launch_grid(528, 132, kPersistentMaxKvTiles + 1), 528);
}

TEST(PersistentLaunch, NeverMoreThreadBlocksThanBlocksOfWork) {
  EXPECT_EQ(launch_grid(40, 132, 4), 40);
  EXPECT_EQ(launch_grid(1, 132, 1), 1);
  EXPECT_EQ(launch_grid(5, 132, 4, 7), 5);
}

TEST(PersistentLaunch, ExplicitLimits) {
  EXPECT_EQ(launch_grid(528, 132, 32, 0), 528);    // off
  EXPECT_EQ(launch_grid(528, 132, 512, 7), 7);     // tests: a few thread blocks walk everything
  EXPECT_EQ(launch_grid(528, 132, 512, 1), 1);
  EXPECT_EQ(launch_grid(528, 0, 32), 1);           // no slot reported: still a valid grid
}

}  // namespace
}  // namespace sf::cuda::detail
