// The threads backend (sf::run_thread_ranks, ThreadComm) exercised through the sf::Comm interface.
//
// Every payload encodes (sender, receiver, message index, word index, generation), DeepEP style, so any
// mis-routing, reordering or stale read shows as a wrong word, not just a wrong checksum. Checks inside rank
// threads return a failed Status (turned into a test failure by the main thread) instead of asserting.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "streamfusion/comm.h"
#include "streamfusion/runtime.h"
#include "streamfusion/status.h"
#include "streamfusion/thread_backend.h"
#include "streamfusion/topology.h"

namespace sf {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Word `word` of message `index` from `src` to `dst` in generation `gen`: unique across the whole test.
uint64_t tag(int src, int dst, int index, int word, int gen = 0) {
  return (uint64_t{0xA5} << 56) | (static_cast<uint64_t>(gen) << 48) | (static_cast<uint64_t>(src) << 40) |
         (static_cast<uint64_t>(dst) << 32) | (static_cast<uint64_t>(index) << 16) | static_cast<uint64_t>(word);
}

Status check(bool ok, const std::string& what) { return ok ? Status::ok() : internal_error(what); }

std::string describe(int rank, const std::string& what) { return "rank " + std::to_string(rank) + ": " + what; }

// Checks buf[0..n) == tag(src, dst, index, j, gen).
Status check_words(const uint64_t* buf, size_t n, int src, int dst, int index, int gen, int me, const char* where) {
  for (size_t j = 0; j < n; ++j)
    if (buf[j] != tag(src, dst, index, static_cast<int>(j), gen))
      return internal_error(describe(me, std::string(where) + ": word " + std::to_string(j) + " of message " +
                                             std::to_string(index) + " from rank " + std::to_string(src) + " to rank " +
                                             std::to_string(dst) + " is wrong"));
  return Status::ok();
}

ThreadWorldOptions options(uint64_t chaos_seed = 0, milliseconds timeout = milliseconds(20000)) {
  ThreadWorldOptions o;
  o.chaos_seed = chaos_seed;
  o.timeout = timeout;
  return o;
}

std::vector<int> all_ranks(int p) {
  std::vector<int> v(static_cast<size_t>(p));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// ---------------------------------------------------------------- two-sided

// Number of 8-byte words of message i from src to dst: different per pair and per index, so a mismatched
// receive shows as a size error as well as wrong words.
size_t msg_words(int src, int dst, int i, int P) { return static_cast<size_t>(1 + (src * P + dst) % 5 + 3 * i); }

struct SendRecvCase {
  Topology topo;
  bool recv_first;  // post the receives before the peers send
};

void PrintTo(const SendRecvCase& c, std::ostream* os) {
  *os << c.topo.machines << "x" << c.topo.gpus_per_machine << (c.recv_first ? " recv first" : " send first");
}

class SendRecv : public ::testing::TestWithParam<SendRecvCase> {};

TEST_P(SendRecv, AllPairsFifoWaitedInAnyOrderCountedAtSender) {
  const Topology topo = GetParam().topo;
  const bool recv_first = GetParam().recv_first;
  const int P = topo.world_size();
  constexpr int kMsgs = 4;
  std::vector<LinkBytes> counted(static_cast<size_t>(P));
  const Status st = run_thread_ranks(topo, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank();
    SF_RETURN_IF_ERROR(check(comm.world_size() == P && comm.topology().world_size() == P, "world size"));
    std::vector<std::vector<uint64_t>> out(static_cast<size_t>(P * kMsgs)), in(static_cast<size_t>(P * kMsgs));
    std::vector<Handle> recvs;
    std::vector<std::pair<int, int>> recv_of;  // (src, index) of each receive handle
    auto post_recvs = [&]() -> Status {
      for (int src = 0; src < P; ++src)
        for (int i = 0; i < kMsgs; ++i) {
          auto& buf = in[static_cast<size_t>(src * kMsgs + i)];
          buf.assign(msg_words(src, me, i, P), ~uint64_t{0});
          SF_ASSIGN_OR_RETURN(Handle h, comm.recv(src, buf.data(), buf.size() * 8));
          recvs.push_back(h);
          recv_of.emplace_back(src, i);
        }
      return Status::ok();
    };
    auto post_sends = [&]() -> Status {
      for (int dst = 0; dst < P; ++dst)
        for (int i = 0; i < kMsgs; ++i) {
          auto& buf = out[static_cast<size_t>(dst * kMsgs + i)];
          buf.resize(msg_words(me, dst, i, P));
          for (size_t j = 0; j < buf.size(); ++j) buf[j] = tag(me, dst, i, static_cast<int>(j));
          SF_ASSIGN_OR_RETURN(Handle h, comm.send(dst, buf.data(), buf.size() * 8));
          SF_RETURN_IF_ERROR(comm.wait(h));
        }
      return Status::ok();
    };
    SF_RETURN_IF_ERROR(comm.begin_batch());
    if (recv_first) {
      SF_RETURN_IF_ERROR(post_recvs());
      SF_RETURN_IF_ERROR(post_sends());
    } else {
      SF_RETURN_IF_ERROR(post_sends());
      SF_RETURN_IF_ERROR(post_recvs());
    }
    SF_RETURN_IF_ERROR(comm.end_batch());
    // Wait in a random order: later messages of a pair before earlier ones.
    std::vector<size_t> order(recvs.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937(1234 + me));
    for (size_t k : order) SF_RETURN_IF_ERROR(comm.wait(recvs[k]));
    for (size_t k : order) SF_RETURN_IF_ERROR(comm.wait(recvs[k]));  // waiting twice is harmless
    for (size_t k = 0; k < recvs.size(); ++k) {
      const auto [src, i] = recv_of[k];
      const auto& buf = in[static_cast<size_t>(src * kMsgs + i)];
      SF_RETURN_IF_ERROR(check_words(buf.data(), buf.size(), src, me, i, 0, me, "recv"));
    }
    counted[static_cast<size_t>(me)] = comm.bytes_moved();
    return Status::ok();
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  for (int r = 0; r < P; ++r) {
    uint64_t intra = 0, inter = 0;
    for (int dst = 0; dst < P; ++dst) {
      if (dst == r) continue;  // a message to oneself crosses no link
      for (int i = 0; i < kMsgs; ++i)
        (topo.machine_of(r) == topo.machine_of(dst) ? intra : inter) += msg_words(r, dst, i, P) * 8;
    }
    EXPECT_EQ(counted[static_cast<size_t>(r)].intra(), intra) << "rank " << r;
    EXPECT_EQ(counted[static_cast<size_t>(r)].inter(), inter) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Topologies, SendRecv,
                         ::testing::Values(SendRecvCase{{2, 2}, false}, SendRecvCase{{2, 2}, true},
                                           SendRecvCase{{1, 3}, true}, SendRecvCase{{3, 2}, false}),
                         [](const ::testing::TestParamInfo<SendRecvCase>& i) {
                           std::string n = std::to_string(i.param.topo.machines);
                           n.append("x").append(std::to_string(i.param.topo.gpus_per_machine));
                           n.append(i.param.recv_first ? "_recv_first" : "_send_first");
                           return n;
                         });

// Byte counting by hand on 2x2 (ranks 0,1 on machine 0; 2,3 on machine 1): one message 0→1 (intra) and one
// 0→2 (inter); only rank 0 counts them; receivers count nothing.
TEST(SendRecvCounters, IntraInterAtSenderOnly) {
  std::array<LinkBytes, 4> counted{};
  const Status st = run_thread_ranks({2, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank();
    std::vector<char> a(100, 'a'), b(36, 'b'), ra(100), rb(36);
    if (me == 0) {
      SF_ASSIGN_OR_RETURN(Handle h1, comm.send(1, a.data(), a.size()));
      SF_ASSIGN_OR_RETURN(Handle h2, comm.send(2, b.data(), b.size()));
      SF_RETURN_IF_ERROR(comm.wait_all({h1, h2}));
    } else if (me == 1) {
      SF_ASSIGN_OR_RETURN(Handle h, comm.recv(0, ra.data(), ra.size()));
      SF_RETURN_IF_ERROR(comm.wait(h));
      SF_RETURN_IF_ERROR(check(ra == a, "rank 1 payload"));
    } else if (me == 2) {
      SF_ASSIGN_OR_RETURN(Handle h, comm.recv(0, rb.data(), rb.size()));
      SF_RETURN_IF_ERROR(comm.wait(h));
      SF_RETURN_IF_ERROR(check(rb == b, "rank 2 payload"));
    }
    counted[static_cast<size_t>(me)] = comm.bytes_moved();
    comm.reset_counters();
    SF_RETURN_IF_ERROR(check(comm.bytes_moved().intra() == 0 && comm.bytes_moved().inter() == 0, "reset"));
    return Status::ok();
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(counted[0].intra(), 100u);
  EXPECT_EQ(counted[0].inter(), 36u);
  for (int r = 1; r < 4; ++r) {
    EXPECT_EQ(counted[static_cast<size_t>(r)].intra(), 0u) << "rank " << r;
    EXPECT_EQ(counted[static_cast<size_t>(r)].inter(), 0u) << "rank " << r;
  }
}

// Zero-byte messages still travel and keep their place in the FIFO.
TEST(SendRecvCounters, ZeroByteMessagesKeepOrder) {
  const Status st = run_thread_ranks({1, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), peer = 1 - me;
    uint64_t x = tag(me, peer, 1, 0), y = 0;
    SF_ASSIGN_OR_RETURN(Handle s0, comm.send(peer, nullptr, 0));
    SF_ASSIGN_OR_RETURN(Handle s1, comm.send(peer, &x, 8));
    SF_ASSIGN_OR_RETURN(Handle r0, comm.recv(peer, nullptr, 0));
    SF_ASSIGN_OR_RETURN(Handle r1, comm.recv(peer, &y, 8));
    SF_RETURN_IF_ERROR(comm.wait_all({r1, r0, s1, s0}));
    SF_RETURN_IF_ERROR(check_words(&y, 1, peer, me, 1, 0, me, "recv after an empty message"));
    return check(comm.bytes_moved().intra() == 8, describe(me, "8 bytes counted"));
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

// A receive of the wrong size fails cleanly (no overflow of the receive buffer), naming both sizes.
TEST(SendRecvCounters, SizeMismatchIsAnError) {
  std::array<uint64_t, 2> guard{0, 0};
  const Status st = run_thread_ranks({1, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    if (comm.rank() == 0) {
      const std::array<uint64_t, 2> x{tag(0, 1, 0, 0), tag(0, 1, 0, 1)};
      SF_ASSIGN_OR_RETURN(Handle h, comm.send(1, x.data(), 16));
      return comm.wait(h);
    }
    std::array<uint64_t, 2> y{0, 0x5EA1};
    SF_ASSIGN_OR_RETURN(Handle h, comm.recv(0, y.data(), 8));
    const Status w = comm.wait(h);
    guard = y;
    return w;
  });
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message().rfind("rank 1", 0), 0u) << st.message();
  EXPECT_NE(st.message().find("8-byte"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("16"), std::string::npos) << st.message();
  EXPECT_EQ(guard[1], 0x5EA1u) << "wrote past the receive buffer";
}

// ---------------------------------------------------------------- one-sided

class OneSided : public ::testing::TestWithParam<uint64_t> {};

// Every rank puts into slot `me` of every rank's buffer (itself included), barrier, and everyone reads its own
// buffer; then every rank gets every slot of every peer. Three generations reuse the same buffer.
TEST_P(OneSided, PutGetAllToAllAcrossBarriers) {
  const Topology topo{2, 2};
  const int P = topo.world_size();
  constexpr size_t kWords = 9;
  std::vector<LinkBytes> counted(static_cast<size_t>(P));
  const Status st = run_thread_ranks(topo, options(GetParam()), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank();
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(P * kWords * 8));
    SF_RETURN_IF_ERROR(check(buf.local != nullptr && buf.bytes == P * kWords * 8, "buffer"));
    auto* mine = static_cast<uint64_t*>(buf.local);
    for (int gen = 0; gen < 3; ++gen) {
      const Lane lane = gen == 1 ? Lane::kRing : Lane::kMain;
      std::vector<std::vector<uint64_t>> src(static_cast<size_t>(P), std::vector<uint64_t>(kWords));
      std::vector<Handle> puts;
      for (int dst = 0; dst < P; ++dst) {
        for (size_t j = 0; j < kWords; ++j)
          src[static_cast<size_t>(dst)][j] = tag(me, dst, 0, static_cast<int>(j), gen);
        SF_ASSIGN_OR_RETURN(
            Handle h, comm.put(buf, me * kWords * 8, dst, src[static_cast<size_t>(dst)].data(), kWords * 8, lane));
        puts.push_back(h);
      }
      // The sources stay untouched until the barrier has completed the puts.
      SF_RETURN_IF_ERROR(comm.barrier(all_ranks(P), lane));
      for (int s = 0; s < P; ++s)
        SF_RETURN_IF_ERROR(check_words(mine + s * kWords, kWords, s, me, 0, gen, me, "after put + barrier"));
      SF_RETURN_IF_ERROR(comm.wait_all(puts));  // already complete: fine to wait again

      std::vector<uint64_t> got(P * P * kWords, 0);
      std::vector<Handle> gets;
      for (int peer = 0; peer < P; ++peer)
        for (int s = 0; s < P; ++s) {
          SF_ASSIGN_OR_RETURN(
              Handle h, comm.get(got.data() + (peer * P + s) * kWords, buf, s * kWords * 8, peer, kWords * 8, lane));
          gets.push_back(h);
        }
      SF_RETURN_IF_ERROR(comm.wait_all(gets));
      for (int peer = 0; peer < P; ++peer)
        for (int s = 0; s < P; ++s)
          SF_RETURN_IF_ERROR(
              check_words(got.data() + (peer * P + s) * kWords, kWords, s, peer, 0, gen, me, "after get + wait"));
      // Nobody overwrites a slot (next generation) while a peer may still be reading it.
      SF_RETURN_IF_ERROR(comm.barrier(all_ranks(P), lane));
    }
    counted[static_cast<size_t>(me)] = comm.bytes_moved();
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  // Per generation each rank initiates P puts and P·P gets of kWords words; to itself nothing is counted.
  for (int r = 0; r < P; ++r) {
    uint64_t intra = 0, inter = 0;
    for (int peer = 0; peer < P; ++peer) {
      if (peer == r) continue;
      (topo.machine_of(peer) == topo.machine_of(r) ? intra : inter) += 3 * (1 + P) * kWords * 8;
    }
    EXPECT_EQ(counted[static_cast<size_t>(r)].intra(), intra) << "rank " << r;
    EXPECT_EQ(counted[static_cast<size_t>(r)].inter(), inter) << "rank " << r;
  }
}

// Barriers on sub-groups: even and odd ranks each exchange among themselves with their own group barrier.
// A shared arrival counter checks that nobody leaves a barrier before every member has arrived.
TEST_P(OneSided, SubGroupBarriers) {
  const Topology topo{2, 3};
  const int P = topo.world_size();
  constexpr int kRounds = 5;
  std::array<std::array<std::atomic<int>, kRounds>, 2> arrived{};
  const Status st = run_thread_ranks(topo, options(GetParam()), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), parity = me % 2;
    std::vector<int> group, groups[2];
    for (int r = 0; r < P; ++r) groups[r % 2].push_back(r);
    group = groups[parity];
    // Every rank names both groups (collective), as a layer prepares its ring groups' barriers.
    SF_RETURN_IF_ERROR(comm.prepare_barriers({groups[0], groups[1]}));
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(P * 8));
    auto* mine = static_cast<uint64_t*>(buf.local);
    for (int round = 0; round < kRounds; ++round) {
      // Stagger arrivals so an early leaver would see a short count.
      std::this_thread::sleep_for(std::chrono::microseconds(200 * ((me + round) % 3)));
      std::vector<uint64_t> src(static_cast<size_t>(P));
      for (int peer : group) {
        src[static_cast<size_t>(peer)] = tag(me, peer, round, 0, 1);
        SF_ASSIGN_OR_RETURN(Handle h, comm.put(buf, me * 8, peer, &src[static_cast<size_t>(peer)], 8));
        (void)h;
      }
      arrived[static_cast<size_t>(parity)][static_cast<size_t>(round)].fetch_add(1);
      SF_RETURN_IF_ERROR(comm.barrier(group));
      const int n = arrived[static_cast<size_t>(parity)][static_cast<size_t>(round)].load();
      SF_RETURN_IF_ERROR(check(
          n == static_cast<int>(group.size()),
          describe(me, "left barrier round " + std::to_string(round) + " after " + std::to_string(n) + " arrivals")));
      for (int s : group) SF_RETURN_IF_ERROR(check_words(mine + s, 1, s, me, round, 1, me, "sub-group put"));
      SF_RETURN_IF_ERROR(comm.barrier(group));  // slots are rewritten next round
    }
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

INSTANTIATE_TEST_SUITE_P(Chaos, OneSided, ::testing::Values(uint64_t{0}, uint64_t{1}, uint64_t{987654321}),
                         [](const ::testing::TestParamInfo<uint64_t>& i) {
                           std::string n = std::to_string(i.param);
                           return n.insert(0, "seed");
                         });

// A fresh symmetric buffer is poisoned (not silently zero), and a rank's own instance is what peers write.
TEST(OneSidedBasics, PutToSelfAndFreshBufferIsPoisoned) {
  const Status st = run_thread_ranks({1, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank();
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(16));
    auto* w = static_cast<uint64_t*>(buf.local);
    SF_RETURN_IF_ERROR(check(w[0] != 0 && w[1] != 0, describe(me, "fresh buffer reads as zeros")));
    const uint64_t x = tag(me, me, 0, 0);
    SF_ASSIGN_OR_RETURN(Handle h, comm.put(buf, 8, me, &x, 8));
    SF_RETURN_IF_ERROR(comm.wait(h));
    SF_RETURN_IF_ERROR(check_words(w + 1, 1, me, me, 0, 0, me, "put to self"));
    SF_RETURN_IF_ERROR(check(comm.bytes_moved().intra() == 0 && comm.bytes_moved().inter() == 0,
                             describe(me, "a put to oneself counts no bytes")));
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

// Comm::landed_flag's default: no flag, and the transfer is complete for what follows, as after wait_all.
TEST(OneSidedBasics, LandedFlagWaitsAndReturnsNoFlag) {
  const Status st = run_thread_ranks({1, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), peer = 1 - me;
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(8));
    *static_cast<uint64_t*>(buf.local) = tag(me, me, 0, 0);
    SF_RETURN_IF_ERROR(comm.barrier_all());
    uint64_t got = 0;
    SF_ASSIGN_OR_RETURN(Handle h, comm.get(&got, buf, 0, peer, 8));
    SF_ASSIGN_OR_RETURN(LandedFlag f, comm.landed_flag({h}));
    SF_RETURN_IF_ERROR(check(!f.pending(), describe(me, "a CPU rank handed out a landed flag")));
    SF_RETURN_IF_ERROR(check_words(&got, 1, peer, peer, 0, 0, me, "get before landed_flag returned"));
    SF_RETURN_IF_ERROR(comm.barrier_all());
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

// ThreadWorldOptions::lagging_rank: that rank's one-sided operations never complete at issue; each reads its
// source only when waited on, `lag` after the wait began. Here rank 1's get is issued, rank 0 then overwrites the
// source (ordered by messages, not a barrier, which would complete the get), and the wait sees the new value.
TEST(OneSidedBasics, ALaggingRankReadsWhenItWaitsAndLate) {
  ThreadWorldOptions o = options(7);
  o.lagging_rank = 1;
  o.lag = std::chrono::microseconds(20000);
  const Status st = run_thread_ranks({1, 2}, o, [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank();
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(8));
    *static_cast<uint64_t*>(buf.local) = 1;
    SF_RETURN_IF_ERROR(comm.barrier_all());
    uint64_t token = 0;
    if (me == 1) {
      uint64_t got = 0;
      SF_ASSIGN_OR_RETURN(Handle h, comm.get(&got, buf, 0, 0, 8));
      SF_RETURN_IF_ERROR(comm.send(0, &token, 8).status());
      SF_ASSIGN_OR_RETURN(Handle done, comm.recv(0, &token, 8));
      SF_RETURN_IF_ERROR(comm.wait(done));
      const auto t0 = Clock::now();
      SF_RETURN_IF_ERROR(comm.wait(h));
      SF_RETURN_IF_ERROR(check(Clock::now() - t0 >= milliseconds(20), "the lagging rank's get landed without its lag"));
      SF_RETURN_IF_ERROR(check(got == 2, "the lagging rank's get read its source before the wait: " +
                                             std::to_string(got)));
    } else {
      SF_ASSIGN_OR_RETURN(Handle go, comm.recv(1, &token, 8));
      SF_RETURN_IF_ERROR(comm.wait(go));
      *static_cast<uint64_t*>(buf.local) = 2;
      SF_RETURN_IF_ERROR(comm.send(1, &token, 8).status());
    }
    SF_RETURN_IF_ERROR(comm.barrier_all());
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

TEST(ThreadCommErrors, ALaggingRankOutsideTheWorldOrWithoutChaosIsRefused) {
  ThreadWorldOptions o = options(7);
  o.lagging_rank = 2;
  o.lag = std::chrono::microseconds(1000);
  Status st = run_thread_ranks({1, 2}, o, [](RankRuntime&) { return Status::ok(); });
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("a rank below 2; got 2"), std::string::npos) << st.message();
  o.lagging_rank = 1;
  o.chaos_seed = 0;
  st = run_thread_ranks({1, 2}, o, [](RankRuntime&) { return Status::ok(); });
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("needs chaos_seed != 0"), std::string::npos) << st.message();
}

// Comm::peer_address: a rank thread reaches the instances of ranks on its (emulated) machine, at the address
// where their own writes land, and not those of another machine's ranks or of no rank.
TEST(OneSidedBasics, PeerAddressReachesOnlyOurMachine) {
  const Status st = run_thread_ranks({2, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), mate = me ^ 1, far = me ^ 2;
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(8));
    *static_cast<uint64_t*>(buf.local) = tag(me, me, 0, 0);
    SF_RETURN_IF_ERROR(comm.barrier_all());
    const auto* there = static_cast<const uint64_t*>(comm.peer_address(buf, mate));
    SF_RETURN_IF_ERROR(check(there != nullptr, describe(me, "no address for a rank of our machine")));
    SF_RETURN_IF_ERROR(check_words(there, 1, mate, mate, 0, 0, me, "read through peer_address"));
    SF_RETURN_IF_ERROR(check(comm.peer_address(buf, me) == buf.local, describe(me, "our own address differs")));
    SF_RETURN_IF_ERROR(check(comm.peer_address(buf, far) == nullptr, describe(me, "an address on another machine")));
    SF_RETURN_IF_ERROR(check(comm.peer_address(buf, 7) == nullptr, describe(me, "an address for no rank")));
    SF_RETURN_IF_ERROR(comm.barrier_all());
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

// Comm::get_strided: runs of a mate's rows land at our pitch and nothing between them is written; landed_steps
// waits and hands out empty flags on CPU ranks, one per flag asked. A rank of another machine, runs wider than a
// pitch and a span past the buffer are refused with what was expected and found, and so are step flags of no heads,
// too few or too many flags, a write to a flag out of range, steps that do not rise and a flag never written.
TEST(OneSidedBasics, StridedGetReadsRunsFromOurMachineOnly) {
  const Status st = run_thread_ranks({2, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), mate = me ^ 1, far = me ^ 2;
    constexpr size_t kRows = 5, kWords = 6;  // [5 rows, 6 words]; we read words 2..3 of each row
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(kRows * kWords * 8));
    auto* mine = static_cast<uint64_t*>(buf.local);
    for (size_t i = 0; i < kRows * kWords; ++i) mine[i] = tag(me, me, 0, i);
    SF_RETURN_IF_ERROR(comm.barrier_all());
    std::vector<uint64_t> got(kRows * 3, 0);  // pitch 3 words: the third of each row stays 0
    SF_ASSIGN_OR_RETURN(Handle h, comm.get_strided(got.data(), 24, buf, 16, kWords * 8, 16, kRows, mate));
    SF_ASSIGN_OR_RETURN(const std::vector<LandedFlag> flags, comm.landed_steps({{1, 0, {h}}, {0, 2, {}}}, 2, 2));
    SF_RETURN_IF_ERROR(check(flags.size() == 2, describe(me, std::to_string(flags.size()) + " flags for 2")));
    for (const LandedFlag& f : flags)
      SF_RETURN_IF_ERROR(check(!f.pending(), describe(me, "a CPU rank handed out a step flag")));
    for (size_t r = 0; r < kRows; ++r) {
      for (size_t w = 0; w < 2; ++w)
        SF_RETURN_IF_ERROR(check(got[r * 3 + w] == tag(mate, mate, 0, static_cast<int>(r * kWords + 2 + w)),
                                 describe(me, "row " + std::to_string(r) + " word " + std::to_string(w) + " wrong")));
      SF_RETURN_IF_ERROR(check(got[r * 3 + 2] == 0, describe(me, "get_strided wrote between its runs")));
    }
    const struct {
      Result<Handle> r;
      const char* message;
    } bad[] = {
        {comm.get_strided(got.data(), 24, buf, 0, 48, 16, 2, far), "is on another machine than rank"},
        {comm.get_strided(got.data(), 8, buf, 0, 48, 16, 2, mate), "runs of 16 bytes overlap"},
        {comm.get_strided(got.data(), 24, buf, 16, 48, 16, 6, mate), "outside"},
    };
    for (const auto& b : bad) {
      SF_RETURN_IF_ERROR(check(!b.r.is_ok(), describe(me, std::string("no error for: ") + b.message)));
      SF_RETURN_IF_ERROR(check(b.r.status().to_string().find(b.message) != std::string::npos,
                               describe(me, "unexpected message: " + b.r.status().to_string())));
    }
    const struct {
      std::vector<LandedStep> order;
      int flags;
      int32_t heads;
      const char* message;
    } bad_steps[] = {
        {{{0, 0, {}}}, 1, 0, "heads_per_step must be at least 1, found 0"},
        {{}, 0, 1, "between 1 and 64 flags, found 0"},
        {{}, 65, 1, "between 1 and 64 flags, found 65"},
        {{{2, 0, {}}}, 2, 1, "a write to flag 2 of 2"},
        {{{0, 1, {}}, {0, 1, {}}}, 1, 1, "flag 0's steps must rise, found step 1 after step 1"},
        {{{1, 0, {}}}, 2, 1, "flag 0 is never written"},
    };
    for (const auto& b : bad_steps) {
      Result<std::vector<LandedFlag>> r = comm.landed_steps(b.order, b.flags, b.heads);
      SF_RETURN_IF_ERROR(check(!r.is_ok() && r.status().to_string().find(b.message) != std::string::npos,
                               describe(me, std::string("landed_steps: expected '") + b.message + "', got " +
                                                (r.is_ok() ? std::string("no error") : r.status().to_string()))));
    }
    SF_RETURN_IF_ERROR(comm.barrier_all());
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

// ---------------------------------------------------------------- errors

TEST(ThreadCommErrors, MismatchedSymmetricSizesAreAnError) {
  const auto t0 = Clock::now();
  std::array<Status, 3> seen;
  const Status st = run_thread_ranks({1, 3}, options(0, milliseconds(30000)), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    Result<SymmetricBuffer> b = comm.alloc_symmetric(comm.rank() == 2 ? 128 : 64);
    seen[static_cast<size_t>(comm.rank())] = b.status();
    return b.status();
  });
  const auto elapsed = Clock::now() - t0;
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("same size"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().rfind("rank ", 0), 0u) << st.message();
  int invalid = 0;
  for (const Status& s : seen) {
    EXPECT_FALSE(s.is_ok()) << "every rank's alloc_symmetric must fail";
    invalid += s.code() == ErrorCode::kInvalidArgument;
  }
  EXPECT_GE(invalid, 1);
  EXPECT_LT(elapsed, milliseconds(5000)) << "ranks waiting in the collective were not released";
}

TEST(ThreadCommErrors, OutOfRangeOffsetsAndBadPeersAreInvalidArgument) {
  const int P = 4;
  const Status st = run_thread_ranks({2, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), peer = (me + 1) % P;
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(64));
    std::vector<char> local(128, 'x');
    auto expect_invalid = [&](const Result<Handle>& r, const char* what, const char* word) -> Status {
      if (r.is_ok()) return internal_error(describe(me, std::string(what) + " was accepted"));
      if (r.status().code() != ErrorCode::kInvalidArgument)
        return internal_error(describe(me, std::string(what) + ": wrong code: " + r.status().to_string()));
      if (r.status().message().find(word) == std::string::npos)
        return internal_error(
            describe(me, std::string(what) + ": message lacks '" + word + "': " + r.status().message()));
      return Status::ok();
    };
    const size_t kHuge = std::numeric_limits<size_t>::max();
    SF_RETURN_IF_ERROR(expect_invalid(comm.put(buf, 60, peer, local.data(), 8), "put past the end", "outside"));
    SF_RETURN_IF_ERROR(expect_invalid(comm.put(buf, 0, peer, local.data(), 65), "put longer than buffer", "outside"));
    SF_RETURN_IF_ERROR(expect_invalid(comm.put(buf, 65, peer, local.data(), 0), "put offset past end", "outside"));
    SF_RETURN_IF_ERROR(expect_invalid(comm.put(buf, kHuge, peer, local.data(), 2), "put offset overflow", "outside"));
    SF_RETURN_IF_ERROR(expect_invalid(comm.put(buf, 8, peer, local.data(), kHuge), "put size overflow", "outside"));
    SF_RETURN_IF_ERROR(expect_invalid(comm.get(local.data(), buf, 57, peer, 8), "get past the end", "outside"));
    SF_RETURN_IF_ERROR(expect_invalid(comm.get(local.data(), buf, kHuge - 3, peer, 8), "get overflow", "outside"));
    SF_RETURN_IF_ERROR(
        expect_invalid(comm.get(local.data(), SymmetricBuffer{}, 0, peer, 8), "get of no buffer", "symmetric buffer"));
    for (int bad : {-1, P, P + 7}) {
      SF_RETURN_IF_ERROR(
          expect_invalid(comm.put(buf, 0, bad, local.data(), 8), "put to bad peer", "outside the world"));
      SF_RETURN_IF_ERROR(
          expect_invalid(comm.get(local.data(), buf, 0, bad, 8), "get from bad peer", "outside the world"));
      SF_RETURN_IF_ERROR(expect_invalid(comm.send(bad, local.data(), 8), "send to bad peer", "outside the world"));
      SF_RETURN_IF_ERROR(expect_invalid(comm.recv(bad, local.data(), 8), "recv from bad peer", "outside the world"));
    }
    // Rejected operations move and count nothing.
    SF_RETURN_IF_ERROR(check(comm.bytes_moved().intra() == 0 && comm.bytes_moved().inter() == 0,
                             describe(me, "rejected operations were counted")));
    // The exact end is fine.
    SF_ASSIGN_OR_RETURN(Handle h, comm.put(buf, 56, peer, local.data(), 8));
    SF_RETURN_IF_ERROR(comm.wait(h));
    // A barrier with a group that leaves out the caller is an error (no other rank is involved).
    std::vector<int> others;
    for (int r = 0; r < P; ++r)
      if (r != me) others.push_back(r);
    const Status b = comm.barrier(others);
    SF_RETURN_IF_ERROR(check(!b.is_ok(), describe(me, "barrier without the caller was accepted")));
    SF_RETURN_IF_ERROR(check(b.code() == ErrorCode::kInvalidArgument, describe(me, b.to_string())));
    // prepare_barriers checks its groups: each names ranks of the world, none twice, and at least one.
    const std::vector<std::pair<std::vector<std::vector<int>>, const char*>> bad_groups = {
        {{{0, 1}, {}}, "group 1 is empty"},
        {{{0, P}}, "outside the world"},
        {{{2, -1}}, "rank -1"},
        {{{0, 1}, {3, 2, 3}}, "rank 3 twice"}};
    for (const auto& [groups, word] : bad_groups) {
      const Status g = comm.prepare_barriers(groups);
      SF_RETURN_IF_ERROR(check(g.code() == ErrorCode::kInvalidArgument && g.message().find(word) != std::string::npos,
                               describe(me, std::string("prepare_barriers without '") + word + "': " + g.to_string())));
    }
    SF_RETURN_IF_ERROR(comm.prepare_barriers({{0, 1}, {2, 3}, {0, 1, 2, 3}}));
    SF_RETURN_IF_ERROR(comm.barrier_all());
    return comm.free_symmetric(buf);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

TEST(ThreadCommErrors, RecvWithoutSendTimesOut) {
  const auto t0 = Clock::now();
  const Status st = run_thread_ranks({1, 2}, options(0, milliseconds(300)), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    if (comm.rank() == 1) {
      // Rank 1 sends nothing; it reaches the final barrier late enough that rank 0's recv times out first.
      std::this_thread::sleep_for(milliseconds(200));
      return Status::ok();
    }
    uint64_t x = 0;
    SF_ASSIGN_OR_RETURN(Handle h, comm.recv(1, &x, 8));
    return comm.wait(h);
  });
  const auto elapsed = Clock::now() - t0;
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kTimeout) << st.to_string();
  EXPECT_EQ(st.message().rfind("rank 0", 0), 0u) << st.message();
  EXPECT_NE(st.message().find("recv"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("rank 1"), std::string::npos) << "should name the peer: " << st.message();
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(3000));
}

// Arrival signals: each rank puts a payload to the next with a signal and waits, without a barrier, for the one
// from the previous rank, over several rounds (values rise, words never reset); the data is there once the word
// is. Rank 2 starts late, so its successor really waits; with chaos every put_signal lands late, from a thread of
// its own, so a read before the wait would find the poison.
class ArrivalSignals : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ArrivalSignals, WaitSignalSeesThePutsDataWithoutABarrier) {
  const Topology topo{2, 2};
  const int P = topo.world_size();
  constexpr int kWords = 64, kRounds = 4;
  const Status st = run_thread_ranks(topo, options(GetParam()), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank(), next = (me + 1) % P, prev = (me + P - 1) % P;
    SF_ASSIGN_OR_RETURN(SymmetricBuffer box, comm.alloc_symmetric(kRounds * kWords * 8));
    SF_ASSIGN_OR_RETURN(SymmetricBuffer sig, comm.alloc_signals(P));
    for (size_t w = 0; w < static_cast<size_t>(P); ++w)
      SF_RETURN_IF_ERROR(check(static_cast<const uint64_t*>(sig.local)[w] == 0, describe(me, "a fresh signal word")));
    SF_RETURN_IF_ERROR(comm.barrier_all());  // nobody signals before everyone has looked
    // A put's source stays as it is until the put is waited for (here: the barrier after the rounds).
    std::vector<std::vector<uint64_t>> sources(kRounds, std::vector<uint64_t>(kWords));
    for (int round = 0; round < kRounds; ++round) {
      if (me == 2) std::this_thread::sleep_for(milliseconds(30));
      std::vector<uint64_t>& src = sources[static_cast<size_t>(round)];
      for (int w = 0; w < kWords; ++w) src[static_cast<size_t>(w)] = tag(me, next, round, w);
      SF_RETURN_IF_ERROR(comm.put_signal(box, static_cast<size_t>(round) * kWords * 8, next, src.data(), kWords * 8,
                                         sig, static_cast<size_t>(me), static_cast<uint64_t>(round + 1))
                             .status());
      SF_RETURN_IF_ERROR(comm.wait_signal(sig, static_cast<size_t>(prev), static_cast<uint64_t>(round + 1)));
      const auto* got = static_cast<const uint64_t*>(box.local) + static_cast<size_t>(round) * kWords;
      SF_RETURN_IF_ERROR(check_words(got, kWords, prev, me, round, 0, me, "after wait_signal"));
    }
    // A word outside the buffer is refused on both sides.
    uint64_t x = 0;
    const Status bad_put = comm.put_signal(box, 0, next, &x, 8, sig, static_cast<size_t>(P), 1).status();
    const Status bad_wait = comm.wait_signal(sig, static_cast<size_t>(P) + 3, 1);
    SF_RETURN_IF_ERROR(check(bad_put.code() == ErrorCode::kInvalidArgument &&
                                 bad_put.message().find("outside") != std::string::npos,
                             describe(me, "put_signal to a word past the end: " + bad_put.to_string())));
    SF_RETURN_IF_ERROR(check(bad_wait.code() == ErrorCode::kInvalidArgument,
                             describe(me, "wait_signal on a word past the end: " + bad_wait.to_string())));
    SF_RETURN_IF_ERROR(comm.barrier_all());
    SF_RETURN_IF_ERROR(comm.free_symmetric(sig));
    return comm.free_symmetric(box);
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

INSTANTIATE_TEST_SUITE_P(Chaos, ArrivalSignals, ::testing::Values(uint64_t{0}, uint64_t{3}, uint64_t{123457}),
                         [](const ::testing::TestParamInfo<uint64_t>& i) { return "seed" + std::to_string(i.param); });

// One lane's put_signals land in the order they were issued, as a GPU stream's transfers do, also when chaos
// delays each by its own random time: a receiver that sees the word at v finds messages 1..v all there. Rank 0
// issues eight to one word back to back; landing out of order (as the chaos threads once did) fails in almost
// every run.
TEST(ArrivalSignalOrder, ALanesPutSignalsLandInIssueOrder) {
  constexpr int kWords = 16, kMessages = 8;
  for (const uint64_t seed : {uint64_t{11}, uint64_t{12}, uint64_t{13}}) {
    const Status st = run_thread_ranks({1, 2}, options(seed), [&](RankRuntime& rt) -> Status {
      Comm& comm = rt.comm();
      const int me = comm.rank();
      SF_ASSIGN_OR_RETURN(SymmetricBuffer box, comm.alloc_symmetric(kMessages * kWords * 8));
      SF_ASSIGN_OR_RETURN(SymmetricBuffer sig, comm.alloc_signals(1));
      SF_RETURN_IF_ERROR(comm.barrier_all());
      std::vector<std::vector<uint64_t>> sources(kMessages, std::vector<uint64_t>(kWords));
      if (me == 0) {
        std::vector<Handle> puts;
        for (int m = 0; m < kMessages; ++m) {
          for (int w = 0; w < kWords; ++w) sources[m][static_cast<size_t>(w)] = tag(0, 1, m, w);
          SF_ASSIGN_OR_RETURN(Handle h, comm.put_signal(box, static_cast<size_t>(m) * kWords * 8, 1,
                                                        sources[m].data(), kWords * 8, sig, 0,
                                                        static_cast<uint64_t>(m + 1)));
          puts.push_back(h);
        }
        SF_RETURN_IF_ERROR(comm.wait_all(puts));
      } else {
        for (int m = 0; m < kMessages; ++m) {
          SF_RETURN_IF_ERROR(comm.wait_signal(sig, 0, static_cast<uint64_t>(m + 1)));
          for (int seen = 0; seen <= m; ++seen)
            SF_RETURN_IF_ERROR(check_words(static_cast<const uint64_t*>(box.local) + seen * kWords, kWords, 0, 1,
                                           seen, 0, me, "after wait_signal"));
        }
      }
      SF_RETURN_IF_ERROR(comm.barrier_all());
      SF_RETURN_IF_ERROR(comm.free_symmetric(sig));
      return comm.free_symmetric(box);
    });
    EXPECT_TRUE(st.is_ok()) << "seed " << seed << ": " << st.to_string();
  }
}

// A signal that never comes is a timeout that names the rank, the word and the value, not a hang.
TEST(ArrivalSignalErrors, ASignalThatNeverComesTimesOut) {
  const Status st = run_thread_ranks({1, 2}, options(0, milliseconds(300)), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    SF_ASSIGN_OR_RETURN(SymmetricBuffer sig, comm.alloc_signals(2));
    if (comm.rank() == 0) return comm.wait_signal(sig, 1, 7);  // rank 1 never signals
    std::this_thread::sleep_for(milliseconds(150));  // and its closing barrier times out after rank 0's wait
    return Status::ok();
  });
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kTimeout) << st.to_string();
  EXPECT_NE(st.message().find("rank 0"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("word 1 to reach 7"), std::string::npos) << st.message();
}

TEST(ThreadCommErrors, BarrierMissingAMemberTimesOut) {
  const Status st = run_thread_ranks({1, 3}, options(0, milliseconds(300)), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    if (comm.rank() == 0) return comm.barrier({0, 1});  // rank 1 never comes to this barrier
    std::this_thread::sleep_for(milliseconds(200));
    return Status::ok();
  });
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kTimeout) << st.to_string();
  EXPECT_EQ(st.message().rfind("rank 0", 0), 0u) << st.message();
  EXPECT_NE(st.message().find("barrier"), std::string::npos) << st.message();
}

// One rank fails; the others are blocked in a world barrier, a sub-group barrier and a receive from the failed
// rank. They must be released at once with an error, and the failure reported is the failed rank's own.
TEST(ThreadCommErrors, FailingRankReleasesBlockedPeers) {
  const auto t0 = Clock::now();
  std::array<Status, 4> released;
  const Status st = run_thread_ranks({2, 2}, options(1, milliseconds(30000)), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    const int me = comm.rank();
    Status s;
    switch (me) {
      case 2:
        std::this_thread::sleep_for(milliseconds(100));  // let the others block first
        return invalid_argument("deliberate failure on purpose");
      case 0:
        s = comm.barrier_all();
        break;
      case 1:
        s = comm.barrier({1, 2});
        break;
      case 3: {
        uint64_t x = 0;
        Result<Handle> h = comm.recv(2, &x, 8);
        s = h.is_ok() ? comm.wait(*h) : h.status();
        break;
      }
    }
    released[static_cast<size_t>(me)] = s;
    return s;
  });
  const auto elapsed = Clock::now() - t0;
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.to_string();
  EXPECT_EQ(st.message().rfind("rank 2", 0), 0u) << st.message();
  EXPECT_NE(st.message().find("deliberate failure on purpose"), std::string::npos) << st.message();
  for (int r : {0, 1, 3}) {
    EXPECT_FALSE(released[static_cast<size_t>(r)].is_ok()) << "rank " << r << " was not told of the failure";
    EXPECT_NE(released[static_cast<size_t>(r)].code(), ErrorCode::kTimeout)
        << released[static_cast<size_t>(r)].to_string();
  }
  EXPECT_LT(elapsed, milliseconds(5000)) << "blocked ranks waited for the 30 s timeout";
}

// A rank that fails after every other rank finished: those are in run_thread_ranks' closing barrier.
TEST(ThreadCommErrors, FailureAfterOthersFinishedIsReportedQuickly) {
  const auto t0 = Clock::now();
  const Status st = run_thread_ranks({3, 1}, options(0, milliseconds(30000)), [&](RankRuntime& rt) -> Status {
    if (rt.comm().rank() != 1) return Status::ok();
    std::this_thread::sleep_for(milliseconds(50));
    return Status(ErrorCode::kInfeasible, "late failure");
  });
  const auto elapsed = Clock::now() - t0;
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kInfeasible);
  EXPECT_EQ(st.message(), "rank 1: late failure");
  EXPECT_LT(elapsed, milliseconds(5000));
}

TEST(ThreadCommErrors, InvalidTopologyIsRejected) {
  bool ran = false;
  const Status st = run_thread_ranks({0, 2}, options(), [&](RankRuntime&) -> Status {
    ran = true;
    return Status::ok();
  });
  EXPECT_FALSE(st.is_ok());
  EXPECT_FALSE(ran);
}

TEST(ThreadRuntime, RanksSeeTheirRankAndTopology) {
  std::array<std::atomic<int>, 6> seen{};
  const Status st = run_thread_ranks({3, 2}, options(), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    seen[static_cast<size_t>(comm.rank())].fetch_add(1);
    SF_RETURN_IF_ERROR(check(std::string(rt.backend_name()) == "threads", "backend name"));
    return check(comm.topology().machines == 3 && comm.topology().gpus_per_machine == 2, "topology");
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  for (const auto& n : seen) EXPECT_EQ(n.load(), 1);
}

// Regression: a rank that failed used to free its symmetric buffers before the world was aborted, while a peer
// still held a deferred one-sided operation on them (heap-use-after-free under ASan, and a wait that returned
// OK). Now runtimes outlive every rank thread and a late one-sided completion after an abort is an error.
TEST(ThreadCommErrors, DeferredGetFromAFailedRankDoesNotTouchFreedMemory) {
  Status waited;
  const size_t n = size_t{1} << 20;
  const Status st = run_thread_ranks({1, 2}, options(1, milliseconds(5000)), [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, comm.alloc_symmetric(n));
    if (comm.rank() == 1) {
      std::this_thread::sleep_for(milliseconds(50));
      return invalid_argument("rank 1 gives up");
    }
    std::vector<char> dst(n);
    std::vector<Handle> hs;
    for (int i = 0; i < 8; ++i) {  // with chaos, about half are deferred to wait()
      SF_ASSIGN_OR_RETURN(Handle h, comm.get(dst.data(), buf, 0, 1, n));
      hs.push_back(h);
    }
    std::this_thread::sleep_for(milliseconds(300));  // rank 1 has failed by now
    waited = comm.wait_all(hs);
    return waited;
  });
  EXPECT_EQ(st.message(), "rank 1: rank 1 gives up");
  EXPECT_FALSE(waited.is_ok()) << "wait completed a get from the freed buffer of a failed rank";
}

}  // namespace
}  // namespace sf
