// The host clock of the emulated inter-machine links (src/backends/gpu_runtime/link_clock.h): plain C++, so its
// bookings are checked here with a clock the test moves by hand; on a GPU the stream writes the reached flags
// and waits on the released ones (gpu-links checks the achieved bandwidth, also beside an attention call).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "backends/gpu_runtime/link_clock.h"

namespace sf::gpu {
namespace {

class LinkClockTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kSlots = LinkClock::kSlots;
  std::vector<uint32_t> flags_ = std::vector<uint32_t>(2 * kSlots, 0);
  uint64_t now_ = 1000;
  LinkClock clock_{flags_.data(), flags_.data() + kSlots, nullptr, 0, [this] { return now_; }};

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

// A stalled clock (fault tests: a link that died) releases nothing more, however long the stream waits, while
// what it released before stays released.
TEST_F(LinkClockTest, StalledClockReleasesNothingMore) {
  const uint32_t before = clock_.book(0, 500, 5);
  reach(before);
  EXPECT_TRUE(released_at(1505, before));
  const uint32_t t = clock_.book(0, 500, 5);
  reach(t);  // due at 2010
  clock_.stall();
  EXPECT_FALSE(released_at(2010, t));
  EXPECT_FALSE(released_at(1000000000, t));
  EXPECT_TRUE(released(before));
  EXPECT_EQ(clock_.outstanding(), 1u);
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

TEST_F(LinkClockTest, RecordsSayWhenEachTransferWasReachedBookedReleasedAndResumed) {
  std::vector<uint32_t> resumed(kSlots, 0);
  clock_.keep_records(2, resumed.data());
  EXPECT_TRUE(clock_.keeping_records());
  const uint32_t a = clock_.book(0, 1000, 5), b = clock_.book(0, 1000, 5), c = clock_.book(1, 10, 0);
  reach(a);            // at 1000: a runs 1000-2000, due 2005
  now_ = 1500;
  reach(b);            // behind a: 2000-3000, due 3005
  EXPECT_TRUE(released_at(2010, a));  // the clock's thread came 5 ns late
  resumed[a] = a;      // the stream got past its hold
  now_ = 2040;
  clock_.poll();
  EXPECT_TRUE(released_at(3005, b));
  reach(c);
  EXPECT_TRUE(released_at(3015, c));  // only two records kept: c leaves none
  auto records = clock_.take_records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].ticket, a);
  EXPECT_EQ(records[0].reached_ns, 1000u);
  EXPECT_EQ(records[0].start_ns, 1000u);
  EXPECT_EQ(records[0].due_ns, 2005u);
  EXPECT_EQ(records[0].released_ns, 2010u);
  EXPECT_EQ(records[0].resumed_ns, 2040u);
  EXPECT_EQ(records[1].ticket, b);
  EXPECT_EQ(records[1].reached_ns, 1500u);
  EXPECT_EQ(records[1].start_ns, 2000u);
  EXPECT_EQ(records[1].due_ns, 3005u);
  EXPECT_EQ(records[1].resumed_ns, 0u);  // not yet past its hold
  const std::string table = format_link_records(records);
  // a: late 0.005 us, resume 0.03 us; b reached 0.5 us in, before a resumed: its `next` column is a's
  EXPECT_NE(table.find("| " + std::to_string(a) + " | 0 | 0.0 | 0.0 | 1.0 | 1.0 | 1.0 | 0.0 | 0.0 | -0.5 |"),
            std::string::npos)
      << table;
  EXPECT_TRUE(clock_.take_records().empty());  // handed over
  clock_.keep_records(0);
  EXPECT_FALSE(clock_.keeping_records());
}

TEST(LinkClockFormat, NoRecordsSaysTheClockKeptNone) {
  EXPECT_NE(format_link_records({}).find("no link records"), std::string::npos);
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

// Three GPUs' clocks on one board, as three rank processes on one host: a one-sided transfer books the peer's
// side as well, so two ranks pulling from one GPU share its egress instead of each getting the whole of it.
class NicBoardTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kSlots = LinkClock::kSlots;
  static constexpr int kEgress = 0, kIngress = 1;
  std::unique_ptr<NicBoard> board_ = std::move(NicBoard::create_private(3).value());
  std::vector<std::vector<uint32_t>> flags_ = std::vector<std::vector<uint32_t>>(3, std::vector<uint32_t>(2 * kSlots));
  uint64_t now_ = 1000;
  std::vector<std::unique_ptr<LinkClock>> clocks_;
  void SetUp() override {
    for (int r = 0; r < 3; ++r)
      clocks_.push_back(std::make_unique<LinkClock>(flags_[r].data(), flags_[r].data() + kSlots, board_.get(), r,
                                                    [this] { return now_; }));
  }
  void reach(int r, uint32_t ticket) {
    flags_[r][ticket % kSlots] = ticket;
    clocks_[r]->poll();
  }
  // Moves the time to `t`, polls every clock; returns whether rank r's `ticket` is released.
  bool released_at(uint64_t t, int r, uint32_t ticket) {
    now_ = t;
    for (auto& c : clocks_) c->poll();
    return flags_[r][kSlots + ticket % kSlots] == ticket;
  }
};

TEST_F(NicBoardTest, TwoGetsFromOneGpuShareItsEgress) {
  // Ranks 1 and 2 each pull 1000 ns worth from rank 0 at once: the second starts when the first has left.
  const uint32_t a = clocks_[1]->book(kIngress, 1000, 0, 0, kEgress);
  const uint32_t b = clocks_[2]->book(kIngress, 1000, 0, 0, kEgress);
  reach(1, a), reach(2, b);
  EXPECT_TRUE(released_at(2000, 1, a));
  EXPECT_FALSE(released_at(2999, 2, b));
  EXPECT_TRUE(released_at(3000, 2, b));
}

TEST_F(NicBoardTest, GetsFromDifferentGpusRunTogether) {
  const uint32_t a = clocks_[1]->book(kIngress, 1000, 0, 0, kEgress);
  const uint32_t b = clocks_[2]->book(kIngress, 1000, 0, 1, kEgress);
  reach(1, a), reach(2, b);
  EXPECT_TRUE(released_at(2000, 1, a));
  EXPECT_TRUE(released_at(2000, 2, b));
}

TEST_F(NicBoardTest, APutWaitsForThePeersIngressAndHoldsIt) {
  // Rank 0 pulls from rank 2 (rank 0's ingress busy until 2000); rank 1 then puts into rank 0: it starts at
  // 2000, and a later pull by rank 0 queues behind it.
  const uint32_t pull = clocks_[0]->book(kIngress, 1000, 0, 2, kEgress);
  reach(0, pull);
  const uint32_t put = clocks_[1]->book(kEgress, 500, 0, 0, kIngress);
  reach(1, put);
  EXPECT_FALSE(released_at(2499, 1, put));
  EXPECT_TRUE(released_at(2500, 1, put));
  EXPECT_TRUE(released_at(2500, 0, pull));
  const uint32_t next = clocks_[0]->book(kIngress, 100, 0, 2, kEgress);
  now_ = 2100;
  reach(0, next);  // rank 0's ingress is free at 2500
  EXPECT_FALSE(released_at(2599, 0, next));
  EXPECT_TRUE(released_at(2600, 0, next));
}

TEST_F(NicBoardTest, TwoSidedBookingsStayOnTheirOwnSide) {
  // Without a far end (each side of a send/recv books its own queue) rank 1's ingress is not rank 0's egress.
  const uint32_t a = clocks_[0]->book(kEgress, 1000, 0);
  const uint32_t b = clocks_[1]->book(kIngress, 1000, 0);
  reach(0, a), reach(1, b);
  EXPECT_TRUE(released_at(2000, 0, a));
  EXPECT_TRUE(released_at(2000, 1, b));
}

// A flow that waits for its peer's queue holds nothing on its own: a later flow through our queue moves
// meanwhile. (Reserving the time on both queues at booking left ours idle, and the order in which ranks book is
// arbitrary.)
TEST_F(NicBoardTest, AFlowWaitingForItsPeerLeavesItsOwnQueueToLaterFlows) {
  const uint32_t first = clocks_[2]->book(kIngress, 1000, 0, 0, kEgress);  // rank 0's egress until 2000
  reach(2, first);
  const uint32_t waits = clocks_[1]->book(kIngress, 1000, 0, 0, kEgress);  // behind it on rank 0's egress
  reach(1, waits);
  const uint32_t later = clocks_[1]->book(kIngress, 1000, 0, 2, kEgress);  // rank 1's ingress is free now
  reach(1, later);
  EXPECT_TRUE(released_at(2000, 1, later));
  EXPECT_TRUE(released_at(2000, 2, first));
  EXPECT_FALSE(released_at(2999, 1, waits));
  EXPECT_TRUE(released_at(3000, 1, waits));
}

// Flows of one queue after one another, whoever books them: rank 0's egress serves three ranks' pulls in
// booking order, each at the full setting, and the records say when each started moving.
TEST_F(NicBoardTest, OneQueueServesItsFlowsInBookingOrder) {
  clocks_[1]->keep_records(8);
  const uint32_t a = clocks_[1]->book(kIngress, 300, 5, 0, kEgress);
  const uint32_t b = clocks_[2]->book(kIngress, 200, 5, 0, kEgress);
  const uint32_t c = clocks_[1]->book(kIngress, 100, 5, 0, kEgress);
  reach(1, a), reach(2, b), reach(1, c);
  EXPECT_TRUE(released_at(1305, 1, a));
  EXPECT_FALSE(released_at(1504, 2, b));
  EXPECT_TRUE(released_at(1505, 2, b));
  EXPECT_FALSE(released_at(1604, 1, c));
  EXPECT_TRUE(released_at(1605, 1, c));
  const std::vector<LinkClock::Record> r = clocks_[1]->take_records();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].start_ns, 1000u);
  EXPECT_EQ(r[1].start_ns, 1500u);
  EXPECT_EQ(r[1].due_ns, 1605u);
}

TEST(NicBoard, SharedBoardIsSeenByEveryMapping) {
  const std::string name = "/sf-test-nics-" + std::to_string(::getpid());
  auto made = NicBoard::create_shared(name, 2);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  auto opened = NicBoard::open_shared(name, 2);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  NicBoard::unlink(name);
  // A flow started through one mapping holds rank 1's ingress for a flow started through the other.
  const int a = (*made)->start(100, 0, 0, 1, 1, 50);
  const int b = (*opened)->start(100, 1, 1, NicBoard::kNone, 0, 50);
  ASSERT_NE(a, NicBoard::kNone);
  ASSERT_NE(b, NicBoard::kNone);
  (*opened)->advance_to(200);
  uint64_t started = 0, done = 0;
  ASSERT_TRUE((*made)->finished(b, &started, &done));
  EXPECT_EQ(started, 150u);
  EXPECT_EQ(done, 200u);
  ASSERT_TRUE((*opened)->finished(a, &started, &done));
  EXPECT_EQ(done, 150u);
  EXPECT_FALSE(NicBoard::open_shared(name, 2).is_ok());                      // the name is gone
  auto wrong = NicBoard::open_shared(name + "-x", 2);
  EXPECT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().message().find("shm_open"), std::string::npos) << wrong.status().to_string();
  EXPECT_FALSE(NicBoard::create_private(0).is_ok());
  EXPECT_FALSE(NicBoard::create_private(NicBoard::kMaxRanks + 1).is_ok());
}

// SF_EMULATED_NIC=fair: queues share their bandwidth, max-min fair across both ends of each flow.
constexpr int kOut = 0, kIn = 1;

// When `flow` finished (it must have, as far as the board was brought).
uint64_t done_at(NicBoard& b, int flow) {
  uint64_t started = 0, done = 0;
  EXPECT_TRUE(b.finished(flow, &started, &done)) << "flow " << flow << " still moving";
  return done;
}

TEST(NicBoardFair, TwoPullsFromOneGpuMoveTogetherAtHalfRate) {
  auto board = std::move(NicBoard::create_private(3, NicSharing::kFair).value());
  const int a = board->start(1000, 1, kIn, 0, kOut, 1000);
  const int b = board->start(1000, 2, kIn, 0, kOut, 1000);
  board->advance_to(2999);
  uint64_t started = 0, done = 0;
  EXPECT_FALSE(board->finished(a, &started, &done));  // under FIFO a would be done at 2000
  board->advance_to(3000);
  EXPECT_EQ(done_at(*board, a), 3000u);
  EXPECT_EQ(done_at(*board, b), 3000u);
}

TEST(NicBoardFair, AFlowTakesWhatItsTighterQueueLeaves) {
  // Rank 0's egress carries three pulls (a third each); rank 1's ingress carries one of them and flow d, which
  // gets the two thirds left there. When d finishes the others keep their third: rank 0's egress still binds them.
  auto board = std::move(NicBoard::create_private(4, NicSharing::kFair).value());
  const int a = board->start(0, 1, kIn, 0, kOut, 600);
  const int b = board->start(0, 2, kIn, 0, kOut, 600);
  const int c = board->start(0, 3, kIn, 0, kOut, 600);
  const int d = board->start(0, 1, kIn, 2, kOut, 600);
  board->advance_to(900);
  EXPECT_EQ(done_at(*board, d), 900u);
  board->advance_to(1800);
  for (int f : {a, b, c}) EXPECT_EQ(done_at(*board, f), 1800u);
}

TEST(NicBoardFair, ALaterFlowSlowsAnEarlierOneInsteadOfWaiting) {
  auto board = std::move(NicBoard::create_private(3, NicSharing::kFair).value());
  const int a = board->start(0, 0, kIn, 1, kOut, 1000);
  const int b = board->start(500, 0, kIn, 2, kOut, 500);  // from 500 on both share rank 0's ingress
  board->advance_to(2000);
  EXPECT_EQ(done_at(*board, b), 1500u);
  EXPECT_EQ(done_at(*board, a), 1500u);
}

TEST(NicBoardFair, OneConnectionServesItsFlowsInOrder) {
  // Two pulls by rank 1 from rank 0 go one after the other at the full rate; a pull by rank 1 from rank 2 shares
  // rank 1's ingress with whichever of them moves.
  auto board = std::move(NicBoard::create_private(3, NicSharing::kFair).value());
  const int first = board->start(0, 1, kIn, 0, kOut, 500);
  const int second = board->start(0, 1, kIn, 0, kOut, 500);
  board->advance_to(1000);
  EXPECT_EQ(done_at(*board, first), 500u);
  EXPECT_EQ(done_at(*board, second), 1000u);
  const int a = board->start(1000, 1, kIn, 0, kOut, 500);
  const int b = board->start(1000, 1, kIn, 2, kOut, 500);
  board->advance_to(2000);
  EXPECT_EQ(done_at(*board, a), 2000u);
  EXPECT_EQ(done_at(*board, b), 2000u);
}

// Neither model idles a queue that has work: flows booked at once through one GPU's ingress from three peers end,
// all of them, after the sum of their durations; under sharing none ends before its own duration at full rate.
TEST(NicBoardFair, BothModelsKeepABusyQueueBusy) {
  const uint64_t durations[] = {300, 700, 200, 500, 100, 400};
  for (NicSharing sharing : {NicSharing::kFifo, NicSharing::kFair}) {
    auto board = std::move(NicBoard::create_private(4, sharing).value());
    std::vector<int> flows;
    uint64_t total = 0;
    for (int i = 0; i < 6; ++i) {
      flows.push_back(board->start(1000, 0, kIn, 1 + i % 3, kOut, durations[i]));
      total += durations[i];
    }
    board->advance_to(1000 + total);
    uint64_t last = 0;
    for (int i = 0; i < 6; ++i) {
      const uint64_t done = done_at(*board, flows[i]);
      EXPECT_GE(done, 1000 + durations[i]) << "flow " << i;
      last = std::max(last, done);
    }
    EXPECT_EQ(last, 1000 + total) << (sharing == NicSharing::kFair ? "fair" : "fifo");
  }
}

TEST(NicBoardFair, TheModelComesFromTheEnvironmentAndEveryRankMustAgree) {
  const char* old = std::getenv("SF_EMULATED_NIC");
  const std::string saved = old ? old : "";
  ::unsetenv("SF_EMULATED_NIC");
  EXPECT_EQ(NicBoard::sharing_from_env().value(), NicSharing::kFifo);
  ::setenv("SF_EMULATED_NIC", "fair", 1);
  EXPECT_EQ(NicBoard::sharing_from_env().value(), NicSharing::kFair);
  ::setenv("SF_EMULATED_NIC", "shared", 1);
  const Result<NicSharing> bad = NicBoard::sharing_from_env();
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("fifo or fair, found 'shared'"), std::string::npos) << bad.status().to_string();
  if (old) ::setenv("SF_EMULATED_NIC", saved.c_str(), 1);
  else ::unsetenv("SF_EMULATED_NIC");

  const std::string name = "/sf-test-nics-fair-" + std::to_string(::getpid());
  auto made = NicBoard::create_shared(name, 2, NicSharing::kFair);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  auto fifo = NicBoard::open_shared(name, 2, NicSharing::kFifo);
  NicBoard::unlink(name);
  ASSERT_FALSE(fifo.is_ok());
  EXPECT_NE(fifo.status().message().find("SF_EMULATED_NIC must be the same on every rank"), std::string::npos)
      << fifo.status().to_string();
}

}  // namespace
}  // namespace sf::gpu
