// The persistent-launch rule of the warp-specialized CUDA kernel (src/backends/cuda/persistent_launch.h): plain
// C++, so its decisions are checked here; the kernel's walk over several blocks of work is checked on the GPU
// (tests/gpu/kernel/attention_test.cpp, CudaAttention.PersistentFewThreadBlocks, PersistentEverySm and
// PersistentOff).
#include <gtest/gtest.h>

#include "backends/cuda/persistent_launch.h"

namespace sf::cuda::detail {
namespace {

TEST(PersistentLaunch, WorkQueueRunsOneThreadBlockPerSlotAtAnyLength) {
  // Flux S=4096 on one H100: 528 items of 32 K/V tiles on 132 SMs, one thread block each.
  EXPECT_EQ(launch_grid(528, 132, 32), 132);
  // A distributed layer's short call with a split last wave: the blocks of work include the pieces.
  EXPECT_EQ(launch_grid(300, 132, 8), 132);
  // Long blocks too: the queue balances the SMs as the hardware scheduler would.
  EXPECT_EQ(launch_grid(1032, 132, 64), 132);
  EXPECT_EQ(launch_grid(8208, 132, 512), 132);
}

TEST(PersistentLaunch, StaticOrderOnlyForShortBlocks) {
  EXPECT_EQ(launch_grid(528, 132, 32, -1, false), 132);
  EXPECT_EQ(launch_grid(528, 132, kPersistentMaxKvTiles + 1, -1, false), 528);
  EXPECT_EQ(launch_grid(8208, 132, 512, -1, false), 8208);
}

TEST(PersistentLaunch, NeverMoreThreadBlocksThanBlocksOfWork) {
  EXPECT_EQ(launch_grid(40, 132, 4), 40);
  EXPECT_EQ(launch_grid(40, 132, 400, -1, false), 40);
  EXPECT_EQ(launch_grid(1, 132, 1), 1);
  EXPECT_EQ(launch_grid(5, 132, 4, 7), 5);
}

TEST(PersistentLaunch, ExplicitLimits) {
  EXPECT_EQ(launch_grid(528, 132, 32, 0), 528);    // off
  EXPECT_EQ(launch_grid(528, 132, 512, 7), 7);     // tests: a few thread blocks walk everything
  EXPECT_EQ(launch_grid(528, 132, 512, 1, false), 1);
  EXPECT_EQ(launch_grid(528, 0, 32), 1);           // no slot reported: still a valid grid
}

// SF_CUDA_COMM_SMS leaves multiprocessors to communication kernels; the call keeps at least one.
TEST(PersistentLaunch, ReservedSmsLeaveSlotsToOtherStreams) {
  EXPECT_EQ(resident_slots(132, 1, 0), 132);
  EXPECT_EQ(resident_slots(132, 1, 2), 130);
  EXPECT_EQ(resident_slots(132, 2, 2), 260);
  EXPECT_EQ(resident_slots(132, 1, -3), 132);   // a negative reservation is none
  EXPECT_EQ(resident_slots(132, 1, 500), 1);    // never the whole device
  EXPECT_EQ(resident_slots(132, 0, 0), 132);    // occupancy not reported: one per SM
  EXPECT_EQ(launch_grid(528, resident_slots(132, 1, 2), 32), 130);
}

}  // namespace
}  // namespace sf::cuda::detail
