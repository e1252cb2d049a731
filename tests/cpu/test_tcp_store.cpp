// The bootstrap store (src/backends/gpu_runtime/tcp_store.cpp) that carries the NCCL and NVSHMEM unique ids, the
// barriers and the results between the processes of a job, on one host or several: ranks that start before rank 0's
// server, binary values, gathers in rank order, and the failures a user meets (no server, a key nobody sets, a port
// that is taken) as errors that say what to check. Plain C++ over loopback sockets: no GPU needed.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "backends/gpu_runtime/tcp_store.h"

namespace sf::gpu {
namespace {

using std::chrono::milliseconds;

// A listening socket on a port the kernel picked (held until closed), or -1.
int listen_on_free_port(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// A port free right now (picked by the kernel, then released).
int free_port() {
  int port = 0;
  const int fd = listen_on_free_port(&port);
  if (fd >= 0) ::close(fd);
  return port;
}

// A value like an NCCL unique id: binary, zero bytes inside, different per rank.
std::string id_of(int rank) {
  std::string v(128, '\0');
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>((i * 7 + static_cast<size_t>(rank) * 31) % 256);
  v[5] = '\0';
  return v;
}

// One rank of a world of kWorld: its store, a gather of every rank's id, a key that rank 1 sets late and rank 2
// waits for, a barrier. Returns what went wrong, or nothing.
constexpr int kWorld = 4;
std::string run_rank(int rank, int port) {
  // Rank 0's server comes up last: the others retry their connection until it does.
  if (rank == 0) std::this_thread::sleep_for(milliseconds(300));
  auto store = TcpStore::create(rank, kWorld, "127.0.0.1", port, milliseconds(10000));
  if (!store.is_ok()) return store.status().to_string();
  auto all = (*store)->all_gather("ids", id_of(rank));
  if (!all.is_ok()) return all.status().to_string();
  std::string errors;
  for (int s = 0; s < kWorld; ++s)
    if ((*all)[static_cast<size_t>(s)] != id_of(s)) errors += "value of rank " + std::to_string(s) + " differs; ";
  if (rank == 1) {
    std::this_thread::sleep_for(milliseconds(100));
    const Status st = (*store)->set("late", "here");
    if (!st.is_ok()) errors += st.to_string();
  } else if (rank == 2) {
    auto v = (*store)->get("late");
    if (!v.is_ok() || *v != "here") errors += "late key: " + (v.is_ok() ? *v : v.status().to_string());
  }
  const Status b = (*store)->barrier("end");
  if (!b.is_ok()) errors += b.to_string();
  return errors;
}

TEST(TcpStore, RanksStartingBeforeRankZeroGatherEveryValueInRankOrder) {
  const int port = free_port();
  if (port == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  std::vector<std::string> errors(kWorld);
  std::vector<std::thread> ranks;
  for (int r = 0; r < kWorld; ++r) ranks.emplace_back([&errors, r, port] { errors[r] = run_rank(r, port); });
  for (std::thread& t : ranks) t.join();
  for (int r = 0; r < kWorld; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(TcpStore, AKeyNobodySetsTimesOutNamingIt) {
  const int port = free_port();
  if (port == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto store = TcpStore::create(0, 1, "127.0.0.1", port, milliseconds(300));
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  auto v = (*store)->get("nccl_id");
  ASSERT_FALSE(v.is_ok());
  EXPECT_EQ(v.status().code(), ErrorCode::kTimeout);
  EXPECT_NE(v.status().message().find("for key 'nccl_id' that no rank set"), std::string::npos)
      << v.status().to_string();
}

TEST(TcpStore, NoServerIsATimeoutThatNamesWhereItLooked) {
  const int port = free_port();
  if (port == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto store = TcpStore::create(1, 2, "127.0.0.1", port, milliseconds(300));
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kTimeout);
  EXPECT_NE(store.status().message().find("could not reach rank 0 at 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << store.status().to_string();
  EXPECT_NE(store.status().message().find("check MASTER_ADDR/MASTER_PORT"), std::string::npos);
}

TEST(TcpStore, ATakenPortIsAClearError) {
  int port = 0;
  const int taken = listen_on_free_port(&port);
  if (taken < 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto store = TcpStore::create(0, 2, "127.0.0.1", port, milliseconds(300));
  ::close(taken);
  ASSERT_FALSE(store.is_ok());
  EXPECT_NE(store.status().message().find("rank 0 cannot listen on port " + std::to_string(port)), std::string::npos)
      << store.status().to_string();
}

// A world of kWorld on `ports` under `job`: what each rank found wrong, or nothing.
std::vector<std::string> run_world(const std::vector<int>& ports, const std::string& job) {
  std::vector<std::string> errors(kWorld);
  std::vector<std::thread> ranks;
  for (int r = 0; r < kWorld; ++r)
    ranks.emplace_back([&errors, &ports, &job, r] {
      auto store = TcpStore::create(r, kWorld, "127.0.0.1", ports, milliseconds(10000), job);
      if (!store.is_ok()) {
        errors[r] = store.status().to_string();
        return;
      }
      auto all = (*store)->all_gather("ids", id_of(r));
      if (!all.is_ok()) errors[r] = all.status().to_string();
      else if ((*all)[3] != id_of(3)) errors[r] = "rank 3's value differs";
    });
  for (std::thread& t : ranks) t.join();
  return errors;
}

// Beside torchrun's store our port is a guess (launch_env.h): a port that some other socket holds passes to the
// next, and the ranks find rank 0 there, though the first port accepts their connections and never answers.
TEST(TcpStore, AFirstPortTakenMovesTheStoreToTheNext) {
  int taken_port = 0;
  const int taken = listen_on_free_port(&taken_port);
  const int next = free_port();
  if (taken < 0 || next == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  const std::vector<std::string> errors = run_world({taken_port, next}, "job-1");
  ::close(taken);
  for (int r = 0; r < kWorld; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

// Another job's store on the first port (two torchrun jobs on one host whose ports sit close): its greeting names
// another job, so the ranks pass over it, and it does not count them as its own ranks lost.
TEST(TcpStore, AnotherJobsStoreIsPassedOver) {
  const int first = free_port();
  if (first == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto other = TcpStore::create(0, 1, "127.0.0.1", std::vector<int>{first}, milliseconds(10000), "other-job");
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  const int next = free_port();
  const std::vector<std::string> errors = run_world({first, next}, "our-job");
  for (int r = 0; r < kWorld; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  EXPECT_TRUE((*other)->lost_ranks().empty());
}

TEST(TcpStore, ARankThatFindsOnlyOtherStoresSaysWhatAnswered) {
  const int port = free_port();
  if (port == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto other = TcpStore::create(0, 1, "127.0.0.1", std::vector<int>{port}, milliseconds(10000), "other-job");
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  auto store = TcpStore::create(1, 2, "127.0.0.1", std::vector<int>{port}, milliseconds(500), "our-job");
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kTimeout);
  EXPECT_NE(store.status().message().find("a store of another job answered"), std::string::npos)
      << store.status().to_string();
  EXPECT_NE(store.status().message().find("job 'other-job'"), std::string::npos) << store.status().to_string();
}

TEST(TcpStore, EveryPortTakenIsAClearError) {
  int a = 0, b = 0;
  const int fa = listen_on_free_port(&a), fb = listen_on_free_port(&b);
  if (fa < 0 || fb < 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto store = TcpStore::create(0, 2, "127.0.0.1", std::vector<int>{a, b}, milliseconds(300));
  ::close(fa);
  ::close(fb);
  ASSERT_FALSE(store.is_ok());
  EXPECT_NE(store.status().message().find("rank 0 cannot listen on port any of " + std::to_string(a) + ", " +
                                          std::to_string(b)),
            std::string::npos)
      << store.status().to_string();
}

}  // namespace
}  // namespace sf::gpu

namespace sf::gpu {
namespace {

// A rank that cannot start says why (abort), and every rank waiting on the store stops at once with that reason
// instead of waiting out the store's timeout (minutes) or the launcher's grace.
TEST(TcpStore, ARankThatGivesUpEndsEveryWaitWithItsReason) {
  const int port = free_port();
  if (port == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  constexpr int kRanks = 4;
  std::vector<std::string> got(kRanks);
  std::vector<double> waited_s(kRanks);
  std::vector<std::thread> ranks;
  for (int r = 0; r < kRanks; ++r)
    ranks.emplace_back([&, r] {
      auto store = TcpStore::create(r, kRanks, "127.0.0.1", port, milliseconds(30000));
      if (!store.is_ok()) {
        got[r] = "create: " + store.status().to_string();
        return;
      }
      const auto t0 = std::chrono::steady_clock::now();
      if (r == 2) {
        std::this_thread::sleep_for(milliseconds(200));  // the others are waiting by now
        const Status st = (*store)->abort("rank 2 (vm): local rank 2 but only 1 GPUs are visible on this host");
        got[r] = st.is_ok() ? "aborted" : st.to_string();
      } else {
        auto all = (*store)->all_gather("start", "x");
        got[r] = all.is_ok() ? "gathered" : all.status().message();
      }
      waited_s[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
  for (std::thread& t : ranks) t.join();
  EXPECT_EQ(got[2], "aborted");
  for (int r : {0, 1, 3}) {
    EXPECT_NE(got[r].find("stopped waiting for 'start/2': rank 2 (vm): local rank 2 but only 1 GPUs"),
              std::string::npos)
        << "rank " << r << ": " << got[r];
    EXPECT_LT(waited_s[r], 10.0) << "rank " << r << " waited out a timeout";
  }
}

// A rank that leaves without a goodbye (killed, or ended by a library that exits the process) ends the others'
// waits at once, naming it. The rank is a child process that connects and exits without closing its store.
TEST(TcpStore, ARankThatLeavesWithoutAGoodbyeEndsEveryWait) {
  const int port = free_port();
  if (port == 0) GTEST_SKIP() << "no TCP socket on loopback in this environment";
  auto server = TcpStore::create(0, 2, "127.0.0.1", port, milliseconds(30000));
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = TcpStore::create(1, 2, "127.0.0.1", port, milliseconds(10000));
    std::this_thread::sleep_for(milliseconds(200));
    std::_Exit(store.is_ok() ? 0 : 3);  // no destructor: no goodbye
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto v = (*server)->get("never");
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child could not reach the store";
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("stopped waiting for 'never': rank 1 left the job without a goodbye"),
            std::string::npos)
      << v.status().to_string();
  EXPECT_LT(waited, 10.0);
}

}  // namespace
}  // namespace sf::gpu
