// The GPU runtime of one process (one GPU): bootstrap from the launcher's environment, a CUDA Device, NCCL
// and NVSHMEM communication, emulated machines, and the helpers the CLI and the multi-GPU tests need
// (random fills, comparisons, event timing). No CUDA types here: host code includes it freely.
//
//   auto env = sf::gpu::read_launch_env();                 // RANK/WORLD_SIZE/..., OMPI_*, SLURM_*
//   auto ctx = sf::gpu::GpuContext::create(*env, {});       // store, cudaSetDevice(LOCAL_RANK), NCCL, NVSHMEM
//   auto rt  = ctx->make_runtime("nvshmem", {2, 2}, {6.25}); // a RankRuntime for a 2×2 emulated topology
//   auto sp  = sf::SpAttention::create(rt->comm(), rt->device(), shape, config);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "emulated_link_settings.h"
#include "launch_env.h"
#include "link_clock.h"
#include "stream_trace.h"
#include "streamfusion/runtime.h"
#include "streamfusion/status.h"
#include "streamfusion/topology.h"

namespace sf::gpu {

class TcpStore;

struct GpuContextOptions {
  bool nccl = true;
  bool nvshmem = false;
  double watchdog_timeout_s = 300.0;  // a blocked GPU operation ends the process after this long
                                      // (SF_WATCHDOG_TIMEOUT_S overrides)
  size_t nvshmem_heap_bytes = size_t(24) << 30;  // unless NVSHMEM_SYMMETRIC_SIZE is set
};

struct TensorCompare {
  double max_abs = 0.0;
  double rel_l2 = 0.0;
  int64_t non_finite = 0;
};

class GpuContext {
 public:
  static Result<std::unique_ptr<GpuContext>> create(const LaunchInfo& launch, const GpuContextOptions& options);
  ~GpuContext();

  int rank() const;
  int world_size() const;
  const LaunchInfo& launch() const;
  // Every rank's host name (gathered at start-up), whether they are several, and the topology of the hosts as they
  // are (hosts × ranks per host; one machine where the hosts' rank counts differ).
  const std::vector<std::string>& hosts() const;
  bool spans_hosts() const;
  Topology host_topology() const;
  bool has_nccl() const;
  bool has_nvshmem() const;
  std::string describe() const;  // GPU name, NCCL/NVSHMEM versions, StreamFusion build, fast kernel or fallback
  const char* emulated_link_clock() const;  // "host" or "kernel" (SF_EMULATED_LINK_CLOCK, emulated_link.h)
  TcpStore& store();
  Device& device();

  // backend: "nccl" or "nvshmem". topo.world_size() must equal the world size, and on a job that spans hosts its
  // machines must be the hosts (host_layout.h). With emulation on (a job on one host), transfers between different
  // machines of `topo` are held to its bandwidth and latency.
  Result<std::unique_ptr<RankRuntime>> make_runtime(const std::string& backend, const Topology& topo,
                                                    const EmulationSettings& emulation);

  // Device helpers on the compute stream.
  Status fill_normal(void* data, int64_t n, DType dtype, uint64_t seed, int64_t first_index);
  Result<TensorCompare> compare(const void* test, const void* ref, int64_t n, DType dtype);
  // Runs body() warmup + iters times back to back; returns each timed iteration's milliseconds, measured with
  // events on the compute stream after joining both communication lanes (so the whole layer is inside).
  // before_each(), when given, is enqueued before every iteration (warm-ups too) outside the timed window: a
  // GPU-side barrier there makes all ranks start each iteration together.
  Result<std::vector<double>> time_iterations(const std::function<Status()>& body, int warmup, int iters,
                                              const std::function<Status()>& before_each = {});
  // Completes every outstanding GPU operation of this rank.
  Status synchronize();
  // This rank's timeline of whatever is enqueued between the two calls (attention calls, copies, the moments
  // each communication lane finished an operation), formatted one line per entry with a summary; for --trace.
  Status begin_trace();
  Result<std::string> end_trace();
  Result<std::vector<TraceEntry>> end_trace_entries();  // the same, unformatted
  // Attention calls served by the exact-but-slow fallback kernel so far (process-wide).
  static int64_t fallback_attention_calls();
  // Empties the emulated links' FIFOs (between benchmark configurations).
  Status reset_links();
  // Diagnosis: what the emulated links' host clock did with the next `max` transfers (emulated_link.h; the
  // kernel clock keeps none). Times in the clock's ns.
  Status keep_link_records(size_t max);
  std::vector<LinkClock::Record> take_link_records();
  // Fault tests: this rank's emulated links stop delivering from now on, as if they had died; whatever waits for
  // one of their transfers is left to the watchdog.
  Status stall_links();

  struct Impl;

 private:
  explicit GpuContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Helpers for result gathering over the store (rank 0 prints).
Result<std::vector<std::string>> gather_strings(GpuContext& ctx, const std::string& tag, const std::string& mine);

}  // namespace sf::gpu
