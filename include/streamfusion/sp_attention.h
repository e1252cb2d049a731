// Sequence-parallel attention over a mesh: the one implementation of Ring, Ulysses, USP, TAS and
// Torus/SFU, written SPMD against Comm and Device.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "streamfusion/attention_shape.h"
#include "streamfusion/comm.h"
#include "streamfusion/device.h"
#include "streamfusion/mesh.h"
#include "streamfusion/tensor.h"

namespace sf {

// How the exchanges of every level are carried out.
enum class Transport : uint8_t {
  kTwoSided = 0,  // send/recv and all-to-all (NCCL style); the ring passes K/V hop by hop
  kOneSided = 1,  // put/get + barriers (NVSHMEM style, paper Algorithm 1); the ring pulls from every peer
};
const char* transport_name(Transport t);

struct SpAttentionConfig {
  Mesh mesh;
  Transport transport = Transport::kTwoSided;
  // Each Torus stage's transfer is cut into this many row segments so that compute starts on the first
  // segment while the rest is in flight (finer than the paper's one chunk per stage). 0 = automatic (4 when
  // the mesh has a Torus level). Any value gives the same result.
  int torus_chunks = 0;
  // One segment per Torus stage (compute-bound), one-sided transport: once the last K/V set has landed, finalize
  // the foreign stages' rows one stage at a time and push each stage's output as soon as it is done, instead of
  // all of them after one call. Pays when pushing that output takes longer than our own rows' last call, which
  // would otherwise hide it (the planner sets it then). Two-sided pushes stay together (their receives are posted
  // as one batch). Any value gives the same result.
  bool stagger_foreign_push = false;
  // Whole pulled K/V sets (one segment per Torus stage) with the ring inside each machine: the foreign rows take
  // a set's Torus block (our own pull) in one call as soon as it lands, and the ring peers' blocks of that set in a
  // second call, instead of waiting for the whole set (segmented sets already go segment by segment). The ring
  // peers' blocks come one intra-machine copy later (each peer pulls its own block over its link, then we copy
  // it), so this pays when the layer waits for the set and costs one call per set otherwise. The planner sets it,
  // one-sided only, when the modeled transfers outlast the compute before the last set (a two-sided ring's NCCL
  // kernels would wait for the early call). Any value gives the same result.
  bool foreign_rows_by_block = false;
  // One segment per Torus stage (compute-bound), ring inside machines or none: the foreign rows take the pulled
  // K/V sets in groups of doubling size, {1}, {2, 3}, {4..7}, ..., one call per group instead of one per set.
  // A group's call waits for its last set, so this pays only where every group's last set lands before the
  // calls ahead of it end; the planner sets it where its model says so, one-sided only (SFU-NCCL measured 1-3 %
  // slower merged). Ignored with foreign_rows_by_block and a ring inside the machines (layers that wait for their
  // sets). Any value gives the same result.
  bool merge_kv_sets = false;
  // A Torus level and no Ulysses level (SFU's T·R meshes), one-sided transport: each rank first computes its own
  // rows against its own ring group's keys for every head (the diagonal blocks of rows × keys across Torus
  // peers: no inter-machine transfer), and its Torus peers compute only the other blocks. A foreign stage then
  // needs every pulled K/V set but its own rows' (the owner did those), so its output (normalized O and its
  // log-sum-exp) leaves as soon as its last needed set is in, one set earlier than otherwise, and with two
  // machines right after its Q landed; the owner merges it with its diagonal block (Device::merge_partials).
  // The same bytes cross machines (plus one lse float per row and head); a ring inside the machines moves every
  // head block of its home K/V instead of one (t times the intra-machine bytes of set 0). The layer ends without
  // an inter-machine barrier (each partial is waited for by its arrival signal), so it packs Q, K and V into two
  // symmetric sets in turn: three more buffers of this rank's Q bytes. Torus transfers move whole (torus_chunks 0
  // or 1). Ignored for other meshes and two-sided transport. Any value gives the same
  // result up to the rounding of the pushed partial to the input dtype.
  bool local_diagonal = false;
  // A ring inside one machine and nothing else (mesh R<P>), one-sided transport: the most of its own rows any
  // rank may lend to, or borrow from, the others once rebalance() is given the ranks' speeds (row_loans.h).
  // Sizes the loan buffers, allocated once here. 0 (the default): no loans, and rebalance() refuses. At most 0.5.
  // Any value and any loans give the same result. Measured on three 4x H200 hosts (Flux S=36864 and 65536, 1x4,
  // bench/sp/results/h200x4-2026-11-27-loans*/): 1.018x where one GPU was the slowest in every measurement, 0.985x
  // and 0.915x where the GPUs' order changed within seconds or the borrowers' longer calls lost more than the
  // balance gained. So neither the planner nor the tools turn it on by default.
  double row_loan_limit = 0.0;
  // A ring inside one machine and nothing else (mesh R<P> on one machine), one-sided transport whose ranks reach
  // each other's memory (Comm::peer_address): the ranks that finish their own rows first take blocks of work from
  // the last call of a rank still running, through one work queue in that rank's memory (AttentionProblem::shared),
  // so that the layer ends with the average GPU instead of the slowest. Power-capped GPUs drift apart within
  // seconds (row_loan_limit above), which loans fixed in advance could not follow. Costs a copy of our Q rows into
  // symmetric memory (beside the first call), the last call's output through symmetric memory (one copy into o),
  // a finer-cut tail and one helper launch per ring peer. Refused with loans. Measured
  // slower on 4x H200 (Flux S=36864 and 65536, 1x4: 1.006-1.019x without it,
  // bench/sp/results/h200x4-2026-11-28-ring-share/): those costs outweigh what the helpers take, so neither the
  // planner nor the tools turn it on by default. Pulled by heads (ring_heads_per_step) our rows' one call is
  // shared whole; measured there too (4x H200, session 30, bench/sp/results/h200x4-2026-11-28-session30/
  // share-one-call/): 1.01-1.02x slower, the helpers taking no block (they arrive when fewer blocks are left than
  // the owner's reserve). Any value gives the same result up to rounding.
  bool ring_share = false;
  // A ring inside one machine and no Ulysses level (mesh R<P> on one machine, or T·R meshes without the local diagonal,
  // where it applies to the home K/V, set 0), one-sided transport whose ranks reach each other's memory
  // (Comm::peer_address): pull the ring peers' K/V in steps of this many heads (each step a strided copy of those
  // heads' columns, Comm::get_strided) and take our rows against every block in one call that waits, head by head, for
  // the step that brings the head (Comm::landed_steps). The call's first items are the first heads' rows, so they find
  // their heads' blocks landed after one short step, not after the whole pull: one call instead of two (no second
  // call's ramp and last wave, no fp32 accumulator written and read back; beside Torus stages our rows' first call
  // takes every home block, and the later sets resume it). 0: whole blocks, our own block in a first call and the
  // pulled ones in a second. The planner sets as few heads as make 512 bytes per row wherever it applies. Measured on
  // 2x H200 (1x2, Flux S=16384-65536): 0.945-0.996x the two calls with steps of 1-8 heads, 0.980-1.001x with one step
  // of all heads (bench/sp/results/h200x2-2026-11-28-ring-heads/); beside Torus stages on 4x H200 (emulated 2x2 at 50
  // GB/s): 0.989-1.003x (results/h200x4-2026-11-28-home-by-heads/). With the local diagonal on two machines (T2R<n>)
  // it takes the diagonal by head blocks: our rows' first call takes one head block against every home block, the ring
  // peers' blocks of it pulled in these steps, and the other head block follows in a second call over all home keys
  // (0: every head over our own keys, then over the ring peers', resumed); level on 4x H200 (emulated 2x2, Flux
  // S=16384, bench/sp/results/h200x4-2026-11-28-session29/). Ignored for other meshes; excludes row loans. Any value
  // gives the same result up to rounding.
  int ring_heads_per_step = 0;
  // Pulled by heads (ring_heads_per_step > 0): how many of the first heads come peer by peer (every step of them
  // from the first ring peer, then from the next), each ring block with a step flag of its own; the later heads
  // come step by step across the peers. The call's first wave of work takes the first heads' rows against every
  // block in turn, so it needs the first peer's heads after our own block, the second's after that, and so on:
  // pulled step by step across all peers, its later heads waited for three peers' steps at 1x4 (about 0.16 ms at
  // Flux S=16384 against 0.09 ms of work on our own block); peer by peer it ran 0.964x as long (4x H200, 1x4,
  // bench/sp/results/h200x4-2026-11-28-first-wave/). 0: about the first wave's heads (Device::busy_query_tiles);
  // rounded up to whole steps. Any value gives the same result up to rounding.
  int ring_first_wave_heads = 0;
  // Meshes with Torus stages: on how many of the device's compute lanes (Device::compute_lanes) the layer's calls
  // run. With 2, the calls that take only foreign rows (Torus stages other than our own) run on a lane of their own,
  // beside our own rows' calls, so that each could fill the other's last wave; a call over both (segments of Torus
  // transfers) orders the lanes, and so does our rows' last call, which hides the foreign pushes (beside the
  // foreign calls it held them back: 1.09x on emulated 4x1 at Flux S=36864). Measured level or slower on 4x H200
  // (emulated 2x2 and 4x1 at 50 GB/s, Flux S=16384 and 36864: 0.99-1.06x,
  // bench/sp/results/h200x4-2026-11-28-compute-lanes/), so 0, the layer's choice, is 1: every call in issue order.
  // Devices with one lane run every call on it. Any value gives the same result.
  int compute_lanes = 0;
};

class SpAttention {
 public:
  virtual ~SpAttention() = default;
  // Validates the mesh against the shape (heads divisible by U·T, degrees multiply to P) and allocates all
  // workspaces once (symmetric where one-sided). Collective: every rank calls it with the same arguments.
  static Result<std::unique_ptr<SpAttention>> create(Comm& comm, Device& device, const AttentionShape& shape,
                                                     const SpAttentionConfig& config);

  // q, k, v, o: this rank's dense [B, seq_count(S, P, rank), H, D] tensors in device memory of shape.dtype.
  // Collective. On GPU backends it returns once the work is enqueued; Device::synchronize() waits for it.
  virtual Status forward(const void* q, const void* k, const void* v, void* o) = 0;

  // The same, with every tensor checked first: dtype, shape [B, seq_count(S, P, rank), H, D], dense.
  Status forward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& o);

  // Where forward would like k and v: device buffers of local_shape() that ring peers read directly (the
  // symmetric memory of a one-sided ring without a Ulysses or Torus level). A caller whose K/V are written there
  // (by the projection that produces them, say) and passed to forward saves copying them in: one pass over K
  // and V per layer. Any other k and v work as well. {nullptr, nullptr}: the layer has no such buffers.
  virtual std::array<void*, 2> kv_input_buffers() const { return {nullptr, nullptr}; }

  // Gives every rank work in proportion to its speed from the next forward on: faster ranks compute some of the
  // slower ranks' query rows (row_loans.h). rank_speeds[x] > 0 is rank x's relative speed, e.g. 1 / its time for
  // the same attention call; every rank must pass the same values (not collective: no rank waits). Needs
  // config.row_loan_limit > 0; an empty vector ends all loans.
  virtual Status rebalance(const std::vector<double>& rank_speeds) {
    (void)rank_speeds;
    return unimplemented("rebalance: this layer has no row loans");
  }

  // The query rows this rank's attention calls take per forward: its own rows, less those lent, plus those
  // borrowed. A caller measuring speeds for rebalance divides this by the rank's attention time.
  virtual int64_t query_rows_computed() const { return local_shape()[1]; }

  // ring_share: the blocks of work that other ranks took from this rank's last call in the latest forward
  // (synchronizes the device; a diagnostic). 0 where nothing is shared or the device does not count them.
  virtual Result<int64_t> blocks_taken_by_helpers() { return int64_t{0}; }

  // The loans in force, e.g. "0->2 128 rows, 0->3 64 rows"; empty without loans.
  virtual std::string loans_summary() const { return ""; }

  // Row segments per Torus transfer in force: SpAttentionConfig::torus_chunks, or what the layer chose for 0.
  virtual int torus_segments() const { return 1; }
  // Pulled by heads (ring_heads_per_step in force): the first heads pulled peer by peer, SpAttentionConfig::
  // ring_first_wave_heads or what the layer chose for 0, rounded up to whole steps; 0 otherwise.
  virtual int64_t ring_first_wave_heads() const { return 0; }
  // Compute lanes the layer's calls use (SpAttentionConfig::compute_lanes in force, at most the device's).
  virtual int compute_lanes() const { return 1; }

  // The per-rank shape forward expects.
  virtual std::array<int64_t, 4> local_shape() const = 0;
  virtual DType dtype() const = 0;
};

}  // namespace sf
