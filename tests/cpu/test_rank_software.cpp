// Ranks that run different software are refused at start-up (src/backends/gpu_runtime/rank_software.h), naming what
// differs, the versions, their ranks and hosts; ranks that agree pass. Over the bootstrap store too: four rank
// threads gather their software as the GPU runtime does and every one of them gets the same refusal.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "backends/gpu_runtime/rank_software.h"
#include "backends/gpu_runtime/tcp_store.h"

namespace sf::gpu {
namespace {

RankSoftware ours(const std::string& nccl = "2.28.9") {
  return {{"StreamFusion", "0.1.0 git 1e0a419"}, {"NCCL", nccl}, {"NVSHMEM", "3.4.5"}};
}

TEST(RankSoftware, EncodesAndDecodesInOrder) {
  const RankSoftware s = ours();
  EXPECT_EQ(encode_software(s), "StreamFusion=0.1.0 git 1e0a419\nNCCL=2.28.9\nNVSHMEM=3.4.5\n");
  EXPECT_EQ(decode_software(encode_software(s)), s);
  EXPECT_EQ(decode_software("a=1=2\nno equals sign\nb=\n"), (RankSoftware{{"a", "1=2"}, {"b", ""}}));
}

TEST(RankSoftware, RankListsAreRanges) {
  EXPECT_EQ(rank_list({3}), "rank 3");
  EXPECT_EQ(rank_list({0, 1, 2, 5, 7, 8}), "ranks 0-2, 5, 7-8");
}

TEST(RankSoftware, TheSameEverywherePasses) {
  EXPECT_TRUE(check_same_software({ours(), ours(), ours(), ours()}, {"a", "a", "b", "b"}).is_ok());
  EXPECT_TRUE(check_same_software({ours()}, {"a"}).is_ok());
}

TEST(RankSoftware, ADifferentLibraryNamesVersionsRanksAndHosts) {
  const Status s = check_same_software({ours(), ours(), ours(), ours("2.27.3")}, {"a", "a", "b", "b"});
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(),
            "the job's ranks run different NCCL versions: 2.28.9 on ranks 0-2 (hosts a, b); 2.27.3 on rank 3 (host b); "
            "every rank must load the same NCCL library (LD_LIBRARY_PATH on each host)");
}

TEST(RankSoftware, ADifferentBuildIsRefusedFirst) {
  RankSoftware other = ours("2.27.3");
  other[0].second = "0.1.0 git 3fe0952";
  const Status s = check_same_software({ours(), other}, {"a", "b"});
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("different StreamFusion versions: 0.1.0 git 1e0a419 on rank 0 (host a); 0.1.0 git "
                             "3fe0952 on rank 1 (host b); every rank must run the same build of streamfusion-gpu"),
            std::string::npos)
      << s.message();
}

TEST(RankSoftware, APartOneRankLacksReadsNone) {
  RankSoftware without = ours();
  without.pop_back();  // built without NVSHMEM
  const Status s = check_same_software({ours(), without}, {"a", "a"});
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("NVSHMEM versions: 3.4.5 on rank 0 (host a); none on rank 1 (host a)"),
            std::string::npos)
      << s.message();
}

// As GpuContext::create does: every rank's software through the store's gather, then the check on every rank.
TEST(RankSoftware, EveryRankOfAGatherGetsTheSameRefusal) {
  constexpr int kWorld = 4;
  std::vector<int> ports;  // the store takes the first free one
  for (int i = 0; i < 8; ++i) ports.push_back(31000 + static_cast<int>(::getpid() % 1000) * 8 + i);
  std::vector<std::string> errors(kWorld);
  std::vector<std::thread> ranks;
  for (int r = 0; r < kWorld; ++r)
    ranks.emplace_back([&, r] {
      auto store = TcpStore::create(r, kWorld, "127.0.0.1", ports, std::chrono::seconds(20), "software");
      if (!store.is_ok()) {
        errors[r] = "store: " + store.status().message();
        return;
      }
      auto all = store.value()->all_gather("software", encode_software(ours(r == 2 ? "2.19.3" : "2.28.9")));
      if (!all.is_ok()) {
        errors[r] = "gather: " + all.status().message();
        return;
      }
      std::vector<RankSoftware> software;
      for (const std::string& s : all.value()) software.push_back(decode_software(s));
      errors[r] = check_same_software(software, {"h", "h", "h", "h"}).message();
    });
  for (std::thread& t : ranks) t.join();
  for (int r = 0; r < kWorld; ++r)
    EXPECT_EQ(errors[r], "the job's ranks run different NCCL versions: 2.28.9 on ranks 0-1, 3 (host h); 2.19.3 on "
                         "rank 2 (host h); every rank must load the same NCCL library (LD_LIBRARY_PATH on each host)")
        << "rank " << r;
}

}  // namespace
}  // namespace sf::gpu
