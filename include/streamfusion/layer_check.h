// Running and checking one attention layer: random inputs, the float64 reference, per-rank slices, and
// a driver that runs an SpAttention config on thread ranks (used by the CLI and the CPU tests).
#pragma once

#include <cstdint>
#include <vector>

#include "streamfusion/attention_shape.h"
#include "streamfusion/comm.h"
#include "streamfusion/sp_attention.h"
#include "streamfusion/thread_backend.h"

namespace sf {

// Global Q, K, V as [B, S, H, D] in shape.dtype (raw bytes), uniform in [-2, 2) from `seed`.
struct LayerInputs {
  AttentionShape shape;
  std::vector<char> q, k, v;
};
LayerInputs make_random_inputs(const AttentionShape& shape, uint64_t seed);

// float64 reference output of the whole layer, [B, S, H, D].
std::vector<double> reference_output(const LayerInputs& in);

// Rows [seq_offset, seq_offset + seq_count) of rank g in a P-way split, as a dense [B, n, H, D] buffer.
std::vector<char> slice_rows(const std::vector<char>& global, const AttentionShape& shape, int world, int rank);

struct ErrorStats {
  double max_abs_err = 0, max_abs_ref = 0;
  int64_t non_finite = 0;  // NaN/inf in the output (unwritten poisoned elements show up here)
  double rel() const { return max_abs_ref > 0 ? max_abs_err / max_abs_ref : max_abs_err; }
  void merge(const ErrorStats& o);
};
// Compares rank g's output rows ([B, n, H, D] in dtype) with the matching rows of the reference.
ErrorStats compare_rows(const void* out, const std::vector<double>& ref, const AttentionShape& shape, int world,
                        int rank);

struct ThreadRunOptions {
  int warmup = 0;
  int iterations = 1;
  // Write K/V straight into the layer's kv_input_buffers() (when it has them) and pass those to forward.
  bool kv_in_layer_buffers = false;
  // Given: SpAttention::rebalance with rank_speeds[i] before forward i (the last entry for the rest; every rank
  // the same values). Needs config.row_loan_limit > 0.
  std::vector<std::vector<double>> rank_speeds;
  // > 0: each rank's device reports this as Device::busy_query_tiles (as a GPU would), so that the layer's
  // automatic choices by call size run on CPU ranks too.
  int64_t busy_query_tiles = 0;
  // >= 0: that rank's CPU device pauses share_pause_ms once it has armed a shared call (SpAttentionConfig::ring_share),
  // so that the other ranks take its work.
  int share_pause_rank = -1;
  int share_pause_ms = 0;
  // ... and pauses share_arm_delay_ms before it arms it, so that the other ranks' helper calls come first.
  int share_arm_delay_ms = 0;
  // Each rank's device offers two compute lanes (Device::compute_lanes) and fails the first call that a GPU may run
  // at the same time as another touching the same memory (src/harness/lane_check.h).
  bool check_two_lanes = false;
  // A barrier across all ranks before every forward, as a benchmark takes to time forwards alike. Off: each rank
  // starts its next forward as soon as its last has returned, so a layer that lets a peer overwrite buffers still
  // being read (or read data of the forward before) gives a wrong answer.
  bool barrier_between_forwards = true;
  // Every forward's output checked (ThreadRunResult::error covers them all), not the last one's alone: the forwards
  // before it run on sign-flipped inputs, whose output is the reference negated. Catches a forward that reads data
  // of the next (a peer that overwrote buffers still being read), which the last forward's output cannot show.
  bool check_every_forward = false;
  ThreadWorldOptions world;
};
struct ThreadRunResult {
  ErrorStats error;                 // of the last iteration (check_every_forward: of all), over all ranks
  std::vector<LinkBytes> bytes;     // per rank, for one forward
  std::vector<BarrierCounts> barriers;  // per rank, for one forward
  std::vector<int64_t> attention_calls;  // per rank, for one forward (each call costs a GPU its tiles' set-up)
  std::vector<int64_t> lane1_calls;      // per rank, for one forward: calls on compute lane 1 (check_two_lanes)
  std::vector<uint64_t> landed_flags_asked;  // per rank, for one forward (Comm::landed_flag calls)
  std::vector<int64_t> helped_blocks;        // per rank: SpAttention::blocks_taken_by_helpers after the last forward
  int torus_segments = 1;                // SpAttention::torus_segments (rank 0's)
  std::vector<int64_t> ring_first_wave_heads;  // per rank: SpAttention::ring_first_wave_heads
  int compute_lanes = 1;                 // SpAttention::compute_lanes (rank 0's)
  std::vector<double> iteration_ms; // wall time of each timed forward (slowest rank)
  double median_ms() const;
};
// Runs `config` on thread ranks of `topo`; each rank's output is poisoned with NaN before every forward.
Result<ThreadRunResult> run_layer_on_threads(const Topology& topo, const LayerInputs& in, const std::vector<double>& ref,
                                             const SpAttentionConfig& config, const ThreadRunOptions& options);

}  // namespace sf
