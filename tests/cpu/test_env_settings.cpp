// Settings read from the environment (include/streamfusion/env_choice.h) and the CUDA kernels' settings built on
// them (src/backends/cuda/kernel_settings.h): unset means the default, and a value that is not one the setting
// takes is an error naming the variable, what it takes and what it found. Plain C++: no GPU needed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "../scoped_env.h"
#include "backends/cuda/kernel_settings.h"
#include "backends/gpu_runtime/nvshmem_heap.h"
#include "streamfusion/env_choice.h"

namespace sf {
namespace {

using test::ScopedEnv;

// The message of a failed result, or a note that it did not fail.
template <typename T>
std::string error_of(const Result<T>& r) {
  return r.is_ok() ? std::string("(no error)") : r.status().message();
}

TEST(EnvChoice, UnsetIsTheFirstValueAndAnythingElseNamesTheValues) {
  const char* name = "SF_TEST_ENV_CHOICE";
  ::unsetenv(name);
  EXPECT_EQ(env_choice(name, {"a", "b", "c"}).value(), 0);
  ::setenv(name, "", 1);
  EXPECT_EQ(env_choice(name, {"a", "b", "c"}).value(), 0);
  ::setenv(name, "c", 1);
  EXPECT_EQ(env_choice(name, {"a", "b", "c"}).value(), 2);
  ::setenv(name, "d", 1);
  const Result<int> bad = env_choice(name, {"a", "b", "c"});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("SF_TEST_ENV_CHOICE must be a, b or c, found 'd'"), std::string::npos)
      << bad.status().to_string();
  ::unsetenv(name);
}

TEST(EnvSeconds, UnsetIsTheFallbackAndOnlyAPositiveNumberIsTaken) {
  const char* name = "SF_TEST_ENV_SECONDS";
  ::unsetenv(name);
  EXPECT_EQ(env_seconds(name, 300.0).value(), 300.0);
  ::setenv(name, "", 1);
  EXPECT_EQ(env_seconds(name, 300.0).value(), 300.0);
  ::setenv(name, "90", 1);
  EXPECT_EQ(env_seconds(name, 300.0).value(), 90.0);
  ::setenv(name, "0.5", 1);
  EXPECT_EQ(env_seconds(name, 300.0).value(), 0.5);
  for (const char* bad : {"0", "-5", "90s", "abc", "inf", "nan", " "}) {
    ::setenv(name, bad, 1);
    const Result<double> r = env_seconds(name, 300.0);
    ASSERT_FALSE(r.is_ok()) << "'" << bad << "' was taken";
    EXPECT_NE(r.status().message().find(std::string("SF_TEST_ENV_SECONDS must be a number of seconds greater than 0") +
                                        " (e.g. 90 or 0.5), found '" + bad + "'"),
              std::string::npos)
        << r.status().to_string();
  }
  ::unsetenv(name);
}

TEST(EnvCount, UnsetIsTheFallbackAndOnlyAWholeNumberInRangeIsTaken) {
  const char* name = "SF_TEST_ENV_COUNT";
  ScopedEnv unset(name, nullptr);
  EXPECT_EQ(env_count(name, 7, 0, 100).value(), 7);
  for (const auto& [text, value] : {std::pair{"0", 0}, {"42", 42}, {"100", 100}}) {
    ScopedEnv set(name, text);
    EXPECT_EQ(env_count(name, 7, 0, 100).value(), value) << text;
  }
  for (const char* bad : {"101", "-1", "+3", "3.5", "12x", "x", " 4", "99999999999999999999999"}) {
    ScopedEnv set(name, bad);
    const Result<int64_t> r = env_count(name, 7, 0, 100);
    EXPECT_NE(error_of(r).find(std::string("SF_TEST_ENV_COUNT must be a whole number from 0 to 100, found '") + bad +
                               "'"),
              std::string::npos)
        << error_of(r);
  }
}

// Every kernel setting unset: the library's defaults.
class KernelSettingsTest : public ::testing::Test {
 protected:
  ScopedEnv path_{"SF_CUDA_ATTENTION_PATH", nullptr}, split_{"SF_CUDA_SPLIT_TAIL", nullptr},
      persistent_{"SF_CUDA_PERSISTENT", nullptr}, queue_{"SF_CUDA_QUEUE", nullptr},
      stage_{"SF_CUDA_STAGE_OUTPUT", nullptr}, sms_{"SF_CUDA_COMM_SMS", nullptr},
      trace_{"SF_CUDA_BLOCK_TRACE", nullptr}, share_{"SF_CUDA_SHARE_TAIL", nullptr},
      reserve_{"SF_CUDA_SHARE_RESERVE", nullptr};
};

TEST_F(KernelSettingsTest, UnsetIsTheDefaultSchedule) {
  const cuda::KernelSettings s = cuda::read_kernel_settings().value();
  EXPECT_EQ(s.path, cuda::KernelPath::kHopperWs);
  EXPECT_FALSE(s.path_named);
  EXPECT_EQ(s.split.mode, cuda::SplitSetting::Mode::kAuto);
  EXPECT_EQ(s.persistent, cuda::KernelSettings::kAuto);
  EXPECT_TRUE(s.queue);
  EXPECT_TRUE(s.stage_output);
  EXPECT_EQ(s.comm_sms, 0);
  EXPECT_EQ(s.block_trace, nullptr);
}

TEST_F(KernelSettingsTest, EveryKernelPathByName) {
  const std::pair<const char*, cuda::KernelPath> paths[] = {
      {"hopper_ws", cuda::KernelPath::kHopperWs},
      {"ampere", cuda::KernelPath::kAmpere},
      {"hopper", cuda::KernelPath::kHopper},
      {"hopper_tma", cuda::KernelPath::kHopperTma},
      {"hopper_tma_pp", cuda::KernelPath::kHopperTmaPingPong},
      {"hopper_ws2", cuda::KernelPath::kHopperWs2},
      {"hopper_ws3", cuda::KernelPath::kHopperWs3},
      {"hopper_ws3_rot", cuda::KernelPath::kHopperWs3Rotation},
      {"hopper_ws3_free", cuda::KernelPath::kHopperWs3Free},
      {"hopper_ws_pp", cuda::KernelPath::kHopperWsPingPong},
      {"hopper_ws_seq_pp", cuda::KernelPath::kHopperWsSeqPingPong}};
  for (const auto& [name, path] : paths) {
    ScopedEnv set("SF_CUDA_ATTENTION_PATH", name);
    const Result<cuda::KernelSettings> s = cuda::read_kernel_settings();
    ASSERT_TRUE(s.is_ok()) << name << ": " << error_of(s);
    EXPECT_EQ(s.value().path, path) << name;
    EXPECT_TRUE(s.value().path_named);
  }
  ScopedEnv typo("SF_CUDA_ATTENTION_PATH", "hoper_ws3");
  const std::string e = error_of(cuda::read_kernel_settings());
  EXPECT_NE(e.find("SF_CUDA_ATTENTION_PATH must be hopper_ws, ampere, hopper, "), std::string::npos) << e;
  EXPECT_NE(e.find("hopper_ws_pp or hopper_ws_seq_pp, found 'hoper_ws3'"), std::string::npos) << e;
}

TEST_F(KernelSettingsTest, TailSplitTakesAutoOffPiecesOrTheLastWave) {
  using Mode = cuda::SplitSetting::Mode;
  const struct {
    const char* text;
    Mode mode;
    int pieces;
  } good[] = {{"auto", Mode::kAuto, 0},      {"", Mode::kAuto, 0},         {"off", Mode::kOff, 0},
              {"0", Mode::kOff, 0},          {"1", Mode::kOff, 0},         {"2", Mode::kEvery, 2},
              {"64", Mode::kEvery, 64},      {"tail:1", Mode::kLastWave, 1}, {"tail:16", Mode::kLastWave, 16}};
  for (const auto& g : good) {
    ScopedEnv set("SF_CUDA_SPLIT_TAIL", g.text);
    const Result<cuda::KernelSettings> s = cuda::read_kernel_settings();
    ASSERT_TRUE(s.is_ok()) << g.text << ": " << error_of(s);
    EXPECT_EQ(s.value().split.mode, g.mode) << g.text;
    EXPECT_EQ(s.value().split.pieces, g.pieces) << g.text;
  }
  for (const char* bad : {"65", "tail:0", "tail:17", "tail:", "tail:x", "-2", "3x", "yes", "Auto"}) {
    ScopedEnv set("SF_CUDA_SPLIT_TAIL", bad);
    const std::string e = error_of(cuda::read_kernel_settings());
    EXPECT_NE(e.find("SF_CUDA_SPLIT_TAIL must be auto, off (or 0), a number of pieces from 2 to 64"), std::string::npos)
        << bad << ": " << e;
    EXPECT_NE(e.find(std::string("found '") + bad + "'"), std::string::npos) << e;
  }
}

TEST_F(KernelSettingsTest, PersistentTakesAutoOffAllOrACount) {
  const std::pair<const char*, int64_t> good[] = {{"auto", cuda::KernelSettings::kAuto},
                                                  {"all", cuda::KernelSettings::kEverySlot},
                                                  {"off", 0},
                                                  {"0", 0},
                                                  {"7", 7}};
  for (const auto& [text, value] : good) {
    ScopedEnv set("SF_CUDA_PERSISTENT", text);
    EXPECT_EQ(cuda::read_kernel_settings().value().persistent, value) << text;
  }
  for (const char* bad : {"-1", "many", "7 "}) {
    ScopedEnv set("SF_CUDA_PERSISTENT", bad);
    const std::string e = error_of(cuda::read_kernel_settings());
    EXPECT_NE(e.find(std::string("SF_CUDA_PERSISTENT must be auto, off (or 0), all, or a number of thread blocks")),
              std::string::npos)
        << bad << ": " << e;
  }
}

TEST_F(KernelSettingsTest, OnOffSettingsAndTheCommunicationSms) {
  for (const char* name : {"SF_CUDA_QUEUE", "SF_CUDA_STAGE_OUTPUT"}) {
    for (const auto& [text, on] : {std::pair{"1", true}, {"on", true}, {"0", false}, {"off", false}}) {
      ScopedEnv set(name, text);
      const cuda::KernelSettings s = cuda::read_kernel_settings().value();
      EXPECT_EQ(std::string(name) == "SF_CUDA_QUEUE" ? s.queue : s.stage_output, on) << name << "=" << text;
    }
    for (const char* bad : {"yes", "2", "true"}) {
      ScopedEnv set(name, bad);
      const std::string e = error_of(cuda::read_kernel_settings());
      EXPECT_NE(e.find(std::string(name) + " must be 1, on, 0 or off, found '" + bad + "'"), std::string::npos) << e;
    }
  }
  {
    ScopedEnv set("SF_CUDA_COMM_SMS", "8");
    EXPECT_EQ(cuda::read_kernel_settings().value().comm_sms, 8);
  }
  ScopedEnv bad("SF_CUDA_COMM_SMS", "-1");
  const std::string e = error_of(cuda::read_kernel_settings());
  EXPECT_NE(e.find("SF_CUDA_COMM_SMS must be a whole number from 0 to 1024, found '-1'"), std::string::npos) << e;
}

TEST_F(KernelSettingsTest, ShareTailIsWavesAndPieces) {
  const cuda::KernelSettings d = cuda::read_kernel_settings().value();
  EXPECT_EQ(d.share_waves, 1);
  EXPECT_EQ(d.share_pieces, 4);
  {
    ScopedEnv set("SF_CUDA_SHARE_TAIL", "2:8");
    const cuda::KernelSettings s = cuda::read_kernel_settings().value();
    EXPECT_EQ(s.share_waves, 2);
    EXPECT_EQ(s.share_pieces, 8);
  }
  for (const char* bad : {"2", "9:4", "1:0", "1:17", "a:b", ":4", "1:"}) {
    ScopedEnv set("SF_CUDA_SHARE_TAIL", bad);
    const std::string e = error_of(cuda::read_kernel_settings());
    EXPECT_NE(e.find("SF_CUDA_SHARE_TAIL must be W:N with W from 0 to 8 waves and N from 1 to 16 pieces, found '" +
                     std::string(bad) + "'"),
              std::string::npos)
        << e;
  }
}

TEST_F(KernelSettingsTest, ShareReserveIsAPercentOfTheOwnersThreadBlocks) {
  EXPECT_EQ(cuda::read_kernel_settings().value().share_reserve_pct, 100);
  {
    ScopedEnv set("SF_CUDA_SHARE_RESERVE", "25");
    EXPECT_EQ(cuda::read_kernel_settings().value().share_reserve_pct, 25);
  }
  for (const char* bad : {"101", "-1", "half"}) {
    ScopedEnv set("SF_CUDA_SHARE_RESERVE", bad);
    const std::string e = error_of(cuda::read_kernel_settings());
    EXPECT_NE(e.find("SF_CUDA_SHARE_RESERVE must be a whole number from 0 to 100, found '" + std::string(bad) + "'"),
              std::string::npos)
        << e;
  }
}

TEST_F(KernelSettingsTest, BlockTraceIsAFileName) {
  ScopedEnv set("SF_CUDA_BLOCK_TRACE", "/tmp/trace.csv");
  const char* path = cuda::read_kernel_settings().value().block_trace;
  ASSERT_NE(path, nullptr);
  EXPECT_EQ(std::string(path), "/tmp/trace.csv");
  ScopedEnv empty("SF_CUDA_BLOCK_TRACE", "");
  EXPECT_EQ(cuda::read_kernel_settings().value().block_trace, nullptr);
}

}  // namespace
// NVSHMEM_SYMMETRIC_SIZE as NVSHMEM reads it, and the fixed heap that cannot fit (src/backends/gpu_runtime/
// nvshmem_heap.h): refused before NVSHMEM starts, which would exit the process itself.
TEST(NvshmemHeap, SizesReadAsNvshmemReadsThem) {
  using gpu::nvshmem_size_bytes;
  EXPECT_EQ(nvshmem_size_bytes("1024"), size_t{1024});
  EXPECT_EQ(nvshmem_size_bytes("20m"), size_t{20971520});
  EXPECT_EQ(nvshmem_size_bytes("3.1M"), size_t{3250586});
  EXPECT_EQ(nvshmem_size_bytes(".5m"), size_t{524288});
  EXPECT_EQ(nvshmem_size_bytes("20kk"), size_t{20480});  // one multiplier; what follows it is ignored
  EXPECT_EQ(nvshmem_size_bytes("4096G"), size_t{4096} << 30);
  EXPECT_EQ(nvshmem_size_bytes("2t"), size_t{2} << 40);
  EXPECT_EQ(nvshmem_size_bytes("1G"), size_t{1} << 30);
  for (const char* bad : {"", "G", "-1G", "12x", "abc"}) EXPECT_FALSE(nvshmem_size_bytes(bad).has_value()) << bad;
  EXPECT_FALSE(nvshmem_size_bytes(nullptr).has_value());
}

TEST(NvshmemHeap, AFixedHeapBeyondTheFreeMemoryIsRefusedNamingBoth) {
  const size_t free_b = size_t{40} << 30, total_b = size_t{140} << 30;
  {
    test::ScopedEnv vmm("NVSHMEM_DISABLE_CUDA_VMM", nullptr);  // the heap grows on demand: any size starts
    EXPECT_EQ(gpu::fixed_heap_misfit("4096G", free_b, total_b), "");
  }
  test::ScopedEnv vmm("NVSHMEM_DISABLE_CUDA_VMM", "1");
  EXPECT_EQ(gpu::fixed_heap_misfit("24G", free_b, total_b), "");
  EXPECT_EQ(gpu::fixed_heap_misfit("nonsense", free_b, total_b), "");  // NVSHMEM reports that itself
  const std::string e = gpu::fixed_heap_misfit("4096G", free_b, total_b);
  EXPECT_NE(e.find("fixed symmetric heap (NVSHMEM_DISABLE_CUDA_VMM) of NVSHMEM_SYMMETRIC_SIZE=4096G (4194304 MiB) "
                   "does not fit in the GPU's 40960 MiB free of 143360 MiB"),
            std::string::npos)
      << e;
  test::ScopedEnv off("NVSHMEM_DISABLE_CUDA_VMM", "0");
  EXPECT_EQ(gpu::fixed_heap_misfit("4096G", free_b, total_b), "");
}

}  // namespace sf
