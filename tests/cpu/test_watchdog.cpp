// The watchdog (src/backends/gpu_runtime/watchdog.cpp): a rank blocked on a peer, or told of an asynchronous error
// by a backend, leaves with a message naming the rank and the operation, never hangs. Death tests: each case runs
// in a child process, whose exit code and standard error are checked. Plain C++: no GPU needed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "backends/gpu_runtime/watchdog.h"

namespace sf::gpu {
namespace {

using std::chrono::milliseconds;

class WatchdogDeath : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }  // the watchdog runs a thread
};

TEST_F(WatchdogDeath, ABlockedOperationEndsTheProcessNamingRankAndOperation) {
  EXPECT_EXIT(
      {
        Watchdog w(3, 0.3);
        { Watchdog::ScopedOp done(&w, "NCCL send to rank 1"); }
        Watchdog::ScopedOp op(&w, "stream synchronize (waiting for the main lane)");
        std::this_thread::sleep_for(milliseconds(5000));
      },
      ::testing::ExitedWithCode(124),
      "\\[streamfusion rank 3\\] FATAL: stream synchronize \\(waiting for the main lane\\) did not finish within 0 s "
      "\\(watchdog\\); a peer has probably died or hung; last operation issued before it: NCCL send to rank 1");
}

TEST_F(WatchdogDeath, ABackendsAsynchronousErrorEndsTheProcessAfterItsAborts) {
  EXPECT_EXIT(
      {
        Watchdog w(1, 60.0);
        w.add_error_poll([] { return std::string("NCCL: remote process exited (ncclRemoteError)"); });
        w.add_abort([] { std::fprintf(stderr, "abort hook ran\n"); });
        Watchdog::ScopedOp op(&w, "NCCL group end");
        std::this_thread::sleep_for(milliseconds(5000));
      },
      ::testing::ExitedWithCode(1),
      "\\[streamfusion rank 1\\] FATAL: NCCL: remote process exited \\(ncclRemoteError\\) \\(while in: NCCL group "
      "end\\)\nabort hook ran");
}

// Operations that end in time, nested ones included, never fire it; the outer operation is the one it would name.
TEST(Watchdog, OperationsThatEndInTimeNeverFireIt) {
  // Ten operations of 0.1 s, 1 s in all, against a timeout of 0.5 s: each ends well in time (a loaded machine would
  // have to stretch one fivefold), while a watchdog that counted from its start or summed them would fire.
  Watchdog w(0, 0.5);
  for (int i = 0; i < 10; ++i) {
    Watchdog::ScopedOp outer(&w, "NVSHMEM barrier of 4 ranks");
    {
      Watchdog::ScopedOp inner(&w, "inner");
      EXPECT_EQ(w.current_op(), "NVSHMEM barrier of 4 ranks");
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(w.current_op(), "(idle; last: NVSHMEM barrier of 4 ranks)");
}

}  // namespace
}  // namespace sf::gpu
