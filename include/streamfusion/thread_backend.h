// The threads backend: P ranks as threads of one process, each with its own ThreadComm and CpuDevice.
// One-sided operations really read and write the peer's symmetric buffer, and two-sided messages really
// travel through per-pair FIFO mailboxes, so an algorithm's exchange pattern and synchronization are
// exercised exactly as on GPUs — a missing barrier or wait shows up as wrong data or a reported deadlock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "streamfusion/runtime.h"
#include "streamfusion/topology.h"

namespace sf {

struct ThreadWorldOptions {
  // 0: one-sided operations complete when issued. Otherwise each completes, at random (seeded), either
  // when issued or only when waited on / quieted by a barrier — both orders a GPU may show — so a schedule
  // that reads early or overwrites a source too soon fails its check.
  uint64_t chaos_seed = 0;
  // >= 0 (with chaos_seed): that rank's one-sided operations all complete only when waited on, each `lag` after
  // the wait began, so that its peers run ahead of it, into their next forward, while its transfers still read
  // their buffers. A layer that reuses a buffer too soon then gives that rank a wrong answer.
  int lagging_rank = -1;
  std::chrono::microseconds lag{0};
  // A barrier or receive that waits longer than this fails with kTimeout naming the rank and operation.
  std::chrono::milliseconds timeout{60000};
};

// Runs fn once per rank, each on its own thread, and returns the first failure (prefixed with its rank).
// When one rank fails, ranks blocked in barriers or receives are released with an error instead of hanging.
Status run_thread_ranks(const Topology& topo, const ThreadWorldOptions& options,
                        const std::function<Status(RankRuntime&)>& fn);

}  // namespace sf
