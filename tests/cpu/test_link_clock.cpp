// The host clock of the emulated inter-machine links (src/backends/gpu_runtime/link_clock.h): plain C++, so its
// bookings are checked here with a clock the test moves by hand; on a GPU the stream writes the reached flags
// and waits on the released ones (gpu-links checks the achieved bandwidth, also beside an attention call).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "backends/gpu_runtime/link_clock.h"

namespace sf::gpu {
namespace {

class LinkClockTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kSlots = LinkClock::kSlots;
  std::vector<uint32_t> flags_ = std::vector<uint32_t>(2 * kSlots, 0);
  uint64_t now_ = 1000;
  LinkClock clock_{flags_.data(), flags_.data() + kSlots, [this] { return now_; }};

  // The stream gets to a booking at the current time (and the clock's thread sees it then).
  void reach(uint32_t ticket) {
    flags_[ticket % kSlots] = ticket;
    clock_.poll();
  }
  bool released(uint32_t ticket) const { return flags_[kSlots + ticket % kSlots] == ticket; }
  // Moves the clock to `t` and polls; returns whether `ticket` is released.
  bool released_at(uint64_t t, uint32_t ticket) {
    now_ = t;
    clock_.poll();
    return released(ticket);
  }
};

TEST_F(LinkClockTest, TransferIsReleasedAfterItsDurationAndLatencyFromWhenTheStreamGotThere) {
  const uint32_t t = clock_.book(0, 500, 5);
  EXPECT_FALSE(released_at(2000, t));  // booked on the host but the stream is still behind other work
  now_ = 3000;
  reach(t);  // due at 3505
  EXPECT_FALSE(released_at(3000, t));
  EXPECT_FALSE(released_at(3504, t));
  EXPECT_TRUE(released_at(3505, t));
  EXPECT_EQ(clock_.outstanding(), 0u);
}

TEST_F(LinkClockTest, TransfersOnOneFifoQueueBehindEachOtherAndTheOtherFifoIsIndependent) {
  const uint32_t a = clock_.book(0, 1000, 5), b = clock_.book(0, 1000, 5), c = clock_.book(1, 1000, 5);
  reach(a), reach(b), reach(c);
  EXPECT_FALSE(released_at(1000, a));  // all reached at 1000: a due 2005, b 3005 (behind a), c 2005 (ingress)
  EXPECT_TRUE(released_at(2005, a));
  EXPECT_TRUE(released(c));
  EXPECT_FALSE(released(b));
  EXPECT_TRUE(released_at(3005, b));
}

TEST_F(LinkClockTest, FifoIdleBeforeTheStreamArrivesDoesNotCountAsSent) {
  const uint32_t a = clock_.book(0, 1000, 0);
  reach(a);
  EXPECT_TRUE(released_at(2000, a));  // tail 2000
  const uint32_t b = clock_.book(0, 1000, 0);
  now_ = 5000;  // the link sat idle from 2000 to 5000
  reach(b);
  EXPECT_FALSE(released_at(5000, b));
  EXPECT_FALSE(released_at(5999, b));
  EXPECT_TRUE(released_at(6000, b));
}

TEST_F(LinkClockTest, LatencyOnlyHoldsBookNoBandwidth) {
  const uint32_t a = clock_.book(0, 1000, 0);
  const uint32_t l = clock_.book(LinkClock::kNoFifo, 0, 5);
  reach(a), reach(l);
  EXPECT_TRUE(released_at(1005, l));
  EXPECT_FALSE(released(a));
  const uint32_t b = clock_.book(0, 1000, 0);  // still behind a: the latency hold took nothing from the FIFO
  reach(b);
  EXPECT_FALSE(released_at(2999, b));
  EXPECT_TRUE(released_at(3000, b));
  EXPECT_TRUE(released(a));
}

TEST_F(LinkClockTest, ResetEmptiesTheFifos) {
  const uint32_t a = clock_.book(0, 1'000'000, 0);
  reach(a);
  EXPECT_TRUE(released_at(1'001'000, a));
  clock_.reset();
  const uint32_t b = clock_.book(0, 10, 0);
  now_ = 2000;  // before the old tail: the reset forgot it
  reach(b);
  EXPECT_TRUE(released_at(2010, b));
}

TEST_F(LinkClockTest, SlotsAreReusedWithNewTicketsWithoutResettingFlags) {
  uint32_t last = 0;
  for (uint32_t i = 0; i < kSlots + 3; ++i) {
    last = clock_.book(1, 1, 0);
    reach(last);
    ASSERT_TRUE(released_at(now_ + 1, last)) << "ticket " << last;
  }
  EXPECT_EQ(last, kSlots + 3);
  // The first ticket's slot now holds a later ticket: a stream waiting for equality on it would wait on the new one.
  EXPECT_EQ(flags_[kSlots + 1], kSlots + 1);
}

TEST(LinkClockThread, ReleasesOnTheRealClockWithoutPolling) {
  std::vector<uint32_t> flags(2 * LinkClock::kSlots, 0);
  volatile uint32_t* reached = flags.data();
  volatile uint32_t* released = flags.data() + LinkClock::kSlots;
  LinkClock clock(reached, released);
  clock.start();
  const auto t0 = std::chrono::steady_clock::now();
  const uint32_t t = clock.book(0, 2'000'000, 0);  // 2 ms
  reached[t] = t;
  while (released[t] != t && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10))
    std::this_thread::yield();
  ASSERT_EQ(released[t], t);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2));  // not before it was due
}

}  // namespace
}  // namespace sf::gpu
