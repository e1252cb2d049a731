// The attention kernels' settings from the environment (README.md beside this file lists them): which kernel runs
// and how its launch is cut. Users need none of them; tests and benchmarks pick kernels and schedules with them.
// Read at every call (a test may change them between calls), all at once before anything is launched, so that a
// misspelt value fails the call with a message that names the variable instead of quietly running the default.
// Plain C++, so CPU tests reach it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "streamfusion/env_choice.h"
#include "streamfusion/status.h"

namespace sf::cuda {

// SF_CUDA_ATTENTION_PATH, in the order of its values below (kernel_path_names).
enum class KernelPath {
  kHopperWs,  // the default: picks three or two consumer warpgroups per call (attention_launch.cu)
  kAmpere,
  kHopper,
  kHopperTma,
  kHopperTmaPingPong,
  kHopperWs2,
  kHopperWs3,
  kHopperWs3Rotation,
  kHopperWs3Free,
  kHopperWsPingPong,
  kHopperWsSeqPingPong,
};

// How the warp-specialized kernel cuts its items along K/V (tail_split.h).
struct SplitSetting {
  enum class Mode { kAuto, kOff, kEvery, kLastWave } mode = Mode::kAuto;
  int pieces = 0;  // kEvery: 2..64; kLastWave: 1..16
};

struct KernelSettings {
  KernelPath path = KernelPath::kHopperWs;
  bool path_named = false;  // SF_CUDA_ATTENTION_PATH was set (the fallback to the cp.async kernel is then said)
  SplitSetting split;
  // SF_CUDA_PERSISTENT: kAuto (launch_grid decides), 0 (one thread block per block of work), kEverySlot ("all"), or
  // at most n thread blocks.
  static constexpr int64_t kAuto = -1, kEverySlot = -2;
  int64_t persistent = kAuto;
  bool queue = true;         // SF_CUDA_QUEUE: a persistent launch takes its blocks from the work queue
  bool stage_output = true;  // SF_CUDA_STAGE_OUTPUT: the finalized output through shared memory where it can
  int comm_sms = 0;          // SF_CUDA_COMM_SMS: multiprocessors a persistent launch leaves to other streams
  // SF_CUDA_SHARE_TAIL=W:N: a shared call (shared_work.h) runs its last items mod slots plus W waves in N pieces.
  int share_waves = 1, share_pieces = 4;
  // SF_CUDA_SHARE_RESERVE: how many of a shared call's last blocks of work helpers leave to its owner, in percent
  // of the owner's thread blocks (shared_work.h, `reserve`).
  int share_reserve_pct = 100;
  const char* block_trace = nullptr;  // SF_CUDA_BLOCK_TRACE: a file for the traced kernel's records, or null
};

// An on/off setting: unset or empty is `fallback`; "1" or "on", "0" or "off".
inline Result<bool> env_on_off(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  if (std::strcmp(v, "1") == 0 || std::strcmp(v, "on") == 0) return true;
  if (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0) return false;
  return invalid_argument(std::string(name) + " must be 1, on, 0 or off, found '" + v + "'");
}

inline Result<SplitSetting> split_setting() {
  const char* name = "SF_CUDA_SPLIT_TAIL";
  const char* v = std::getenv(name);
  SplitSetting s;
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return s;
  int64_t n = 0;
  if (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0 || std::strcmp(v, "1") == 0) {
    s.mode = SplitSetting::Mode::kOff;
  } else if (std::strncmp(v, "tail:", 5) == 0 && parse_count(v + 5, 1, 16, &n)) {
    s.mode = SplitSetting::Mode::kLastWave, s.pieces = static_cast<int>(n);
  } else if (parse_count(v, 2, 64, &n)) {
    s.mode = SplitSetting::Mode::kEvery, s.pieces = static_cast<int>(n);
  } else {
    return invalid_argument(std::string(name) +
                            " must be auto, off (or 0), a number of pieces from 2 to 64 for every item, or tail:N with "
                            "N from 1 to 16 for the last wave's items, found '" + v + "'");
  }
  return s;
}

inline Result<int64_t> persistent_setting() {
  const char* name = "SF_CUDA_PERSISTENT";
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return KernelSettings::kAuto;
  if (std::strcmp(v, "all") == 0) return KernelSettings::kEverySlot;
  if (std::strcmp(v, "off") == 0) return 0;
  int64_t n = 0;
  if (parse_count(v, 0, int64_t{1} << 30, &n)) return n;
  return invalid_argument(std::string(name) +
                          " must be auto, off (or 0), all, or a number of thread blocks from 1 to " +
                          std::to_string(int64_t{1} << 30) + ", found '" + v + "'");
}

// SF_CUDA_SHARE_TAIL: W:N, W from 0 to 8 whole waves (beyond the partly filled last one), N from 1 (no pieces) to 16.
inline Status share_tail_setting(KernelSettings* s) {
  const char* name = "SF_CUDA_SHARE_TAIL";
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return Status::ok();
  const char* colon = std::strchr(v, ':');
  int64_t w = 0, n = 0;
  if (colon != nullptr && parse_count(std::string(v, colon).c_str(), 0, 8, &w) && parse_count(colon + 1, 1, 16, &n)) {
    s->share_waves = static_cast<int>(w), s->share_pieces = static_cast<int>(n);
    return Status::ok();
  }
  return invalid_argument(std::string(name) +
                          " must be W:N with W from 0 to 8 waves and N from 1 to 16 pieces, found '" + v + "'");
}

inline Result<KernelSettings> read_kernel_settings() {
  KernelSettings s;
  const char* path = std::getenv("SF_CUDA_ATTENTION_PATH");
  s.path_named = path != nullptr;
  SF_ASSIGN_OR_RETURN(const int index,
                      env_choice("SF_CUDA_ATTENTION_PATH",
                                 {"hopper_ws", "ampere", "hopper", "hopper_tma", "hopper_tma_pp", "hopper_ws2",
                                  "hopper_ws3", "hopper_ws3_rot", "hopper_ws3_free", "hopper_ws_pp",
                                  "hopper_ws_seq_pp"}));
  s.path = static_cast<KernelPath>(index);
  SF_ASSIGN_OR_RETURN(s.split, split_setting());
  SF_ASSIGN_OR_RETURN(s.persistent, persistent_setting());
  SF_ASSIGN_OR_RETURN(s.queue, env_on_off("SF_CUDA_QUEUE", true));
  SF_ASSIGN_OR_RETURN(s.stage_output, env_on_off("SF_CUDA_STAGE_OUTPUT", true));
  SF_ASSIGN_OR_RETURN(const int64_t comm_sms, env_count("SF_CUDA_COMM_SMS", 0, 0, 1024));
  s.comm_sms = static_cast<int>(comm_sms);
  SF_RETURN_IF_ERROR(share_tail_setting(&s));
  SF_ASSIGN_OR_RETURN(const int64_t reserve, env_count("SF_CUDA_SHARE_RESERVE", 100, 0, 100));
  s.share_reserve_pct = static_cast<int>(reserve);
  const char* trace = std::getenv("SF_CUDA_BLOCK_TRACE");
  s.block_trace = trace != nullptr && *trace != '\0' ? trace : nullptr;
  return s;
}

}  // namespace sf::cuda
