// One row of `streamfusion gpu-attention`: a (scheme, transport, mesh) case of one shape on one topology and link
// setting. Planned (the planner sees the links' speeds and the kernel's measured rate), run once on a poisoned output
// and checked on every rank against the one-GPU result, bytes counted, timed (warm-ups, sustained load, median of
// the slowest rank), optionally traced and timed again with free links, then printed by rank 0 as a table row and
// a JSON line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention_options.h"
#include "attention_timing.h"
#include "gpu_runtime.h"
#include "streamfusion/planner.h"
#include "streamfusion/sp_attention.h"

namespace sf::cli {

// What every case of one shape shares: its buffers and the baselines timed on them.
struct ShapeContext {
  const AttentionOptions& o;
  gpu::GpuContext& ctx;
  const AttentionShape& shape;
  ShapeBuffers& buf;                  // inputs, output, the one-GPU reference for this rank's rows, full K/V
  int64_t rows;                       // this rank's query rows
  size_t local_bytes;                 // their bytes in one of Q, K, V, O
  double one_gpu_ms;                  // the whole layer on rank 0 alone (0: not timed)
  double concurrent_ms;               // the all-P compute share, slowest rank (0: not timed)
  double measured_tflops;             // the kernel's rate on this shape, for the planner
  const std::vector<double>& speeds;  // row loans by these speeds (empty: none unless --balance layer)
  bool real_links;                    // the job spans hosts: the links between machines are real
};

// One topology and inter-machine link setting, with the runtime of one backend made for it.
struct LinkSetting {
  const Topology& topo;
  double gbps;
  const char* backend;                    // "nccl" or "nvshmem"
  RankRuntime& rt;
  std::unique_ptr<RankRuntime>& rt_free;  // --free-links: the same backend without the emulated links, made once
};

struct AttentionCase {
  Scheme scheme;
  Transport transport;
  std::string mesh;  // empty: the scheme's default mesh
};

// Counts over the whole run; every rank keeps them alike.
struct SweepTally {
  int row_id = 0;      // layers run (the store keys of their gathers)
  int skipped = 0;     // layers asked for that could not run, each said with its reason
  bool all_ok = true;  // every layer run matched the one-GPU result
};

// A case the planner or the layer refuses is skipped with its reason (said by rank 0, counted in the tally). Any other
// failure ends the process with the rank's error, as everywhere in gpu-attention.
void run_case(const ShapeContext& s, const LinkSetting& l, const AttentionCase& c, SweepTally* tally);

}  // namespace sf::cli
