// The streams of one GPU rank (paper Appendix A): a compute stream and two communication streams (Lane::kMain
// for Ulysses/Torus traffic, Lane::kRing for the ring's), with the events that order them:
//  - before a communication op: its lane waits for everything issued on the compute stream so far;
//  - a Handle is an event recorded on the lane after the op; wait(h) makes the compute stream wait on it.
// Each lane also has two side streams, from which inter-machine one-sided transfers are posted in turn
// (NvshmemComm): a stream-ordered transfer completes only when its data has landed, so on one stream the next
// transfer is posted only after the stream has seen the previous one land, and the NIC idles meanwhile (10-20 us
// per transfer on the emulated links of an H200 host, gpu-links --trace). From two streams the next one is posted
// at once and queues behind the first, as it would on a NIC. Whatever the lane issues after them that must follow
// them (another kind of transfer, a barrier, the end of the layer) settles the lane first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "streamfusion/comm.h"
#include "streamfusion/landed_flag.h"
#include "streamfusion/status.h"
#include "stream_trace.h"
#include "watchdog.h"

namespace sf::gpu {

class GpuStreams {
 public:
  GpuStreams() = default;
  ~GpuStreams();
  GpuStreams(const GpuStreams&) = delete;
  GpuStreams& operator=(const GpuStreams&) = delete;

  Status init(int device, Watchdog* watchdog);

  int device() const { return device_; }
  // The compute stream itself (timing events, the trace's origin). Work enqueued on it goes through work_stream or
  // call_stream, which keep the second call lane in order.
  cudaStream_t compute() const { return compute_; }
  // The stream of an attention call on compute lane 0 or 1 (Device::compute_lanes). Lane 0 is the compute stream;
  // lane 1 a second stream of the same priority, whose calls follow everything on the compute stream before lane
  // 0's latest call (work that is not a call, transfers waited for) but not that call, so that the two calls run
  // side by side. Lane 0's calls do not wait for lane 1's; everything else does (work_stream, order_after_compute,
  // join_lanes, host work, synchronize).
  Result<cudaStream_t> call_stream(int lane);
  // The compute stream for work other than attention calls (copies, merges, fills): it first waits for lane 1's
  // calls issued so far, and lane 1's later calls wait for it.
  Result<cudaStream_t> work_stream();
  // Both lanes' later calls follow both lanes' calls issued so far (Device::order_lanes).
  Status order_call_lanes();
  cudaStream_t lane(Lane l) const { return lanes_[static_cast<int>(l)]; }
  Watchdog* watchdog() const { return watchdog_; }

  // The lane waits for all compute issued so far (nothing while the lane is detached).
  Status order_after_compute(Lane l);
  // Detached lane (Comm::begin_detached): it waits for the given handles instead of the compute.
  Status detach(Lane l, const std::vector<Handle>& deps);
  void attach(Lane l) { detached_[static_cast<int>(l)] = false; }
  // Records an event on the lane: a handle for everything issued on it so far (not what its side streams still
  // do: settle first where that matters).
  Result<Handle> record(Lane l);
  // The lane's next side stream, ordered after everything issued on the lane so far; the caller posts a transfer
  // there and takes its handle from record_side. With `in_order`, it also waits until the side stream before it
  // has reached its mark_posted: a NIC then receives the lane's transfers in the order they were issued (two
  // side streams alone may post the second first, or the fourth before the third once the second has landed).
  Result<cudaStream_t> begin_side(Lane l, bool in_order);
  // The point on `side` where its transfer is handed to the NIC (right before the transfer itself): the fence that
  // begin_side(in_order) waits for (with `fence`), and a trace point "... lane: posted" while tracing.
  Status mark_posted(Lane l, cudaStream_t side, bool fence);
  Result<Handle> record_side(Lane l, cudaStream_t side);
  // The lane waits for everything posted from its side streams so far.
  Status settle(Lane l);
  // A handle whose event is recorded later (ops inside an NCCL group are enqueued only at its end).
  Result<Handle> reserve();
  Status record_into(Handle h, Lane l);
  // The compute stream waits for the handle's event.
  Status wait(Handle h);
  // Landed flags (Comm::landed_flag): a stream of their own waits for the handles' events, then writes the next
  // value into one of kFlagWords words of device memory (cuStreamWriteValue32, a stream memory operation: no
  // SM). The compute stream does not wait. The caller makes sure the handles' operations need no SM either. One
  // stream writes every flag in the order they were asked for: a flag waits for the flags before it.
  Result<LandedFlag> flag_when_done(const std::vector<Handle>& hs);
  // Comm::landed_steps: num_flags words of their own (one per flag), which the flag stream sets to value + step in
  // the given order, each once its operations are done (a word's values only grow, so a kernel polling for an
  // older step is released too). The caller checked the order (check_landed_steps) and sets heads_per_step.
  Result<std::vector<LandedFlag>> flag_steps(const std::vector<LandedStep>& order, int num_flags);
  // Whether a handle's operation needs no SM, as its backend declared when it made the handle (a copy-engine
  // transfer); reserve() clears it.
  void mark_sm_free(Handle h);
  bool sm_free(Handle h) const;
  // The stream for copies between host and device, fills and read-backs (setup, checks), ordered after the compute
  // issued so far; end_host_work blocks until they are done. A stream that has run a copy-engine operation (a
  // copy, a memset) queues its later events and stream memory operations behind every other such stream's copies
  // issued before them (4x H200, 2026-11-28, bench/sp/stream_queue_probe.cu), and the compute stream's events order
  // every transfer after the calls before it. By default that work runs on the compute stream all the same
  // (SF_HOST_WORK_STREAM=compute): on a stream of its own (=own), which keeps the compute stream's events free of
  // the copies, five emulated cells at Flux S=16384 and 36864 read level (0.975-1.006x, and 0.999x when Flux
  // S=16384 on 2x2 was timed again with the arms' order reversed; bench/sp/TRACES.md, session 23).
  Result<cudaStream_t> begin_host_work();
  Status end_host_work(const std::string& what);
  // The compute stream waits for everything issued on both lanes and their side streams (end of a layer, timing).
  Status join_lanes();
  // Blocks the host until compute, both lanes and their side streams are idle; the watchdog guards it. Recycles
  // handle events.
  Status synchronize(const std::string& what);
  // The rank's timeline while a benchmark traces (--trace): the Device brackets its calls on the compute
  // stream, and every handle recorded on a lane adds a point "lane ...: done".
  StreamTrace& trace() { return trace_; }

 private:
  int device_ = -1;
  Watchdog* watchdog_ = nullptr;
  cudaStream_t compute_ = nullptr;
  cudaStream_t call_side_ = nullptr;    // compute lane 1 (call_stream)
  cudaEvent_t call_fence_ = nullptr;    // compute stream -> lane 1: before lane 0's latest call, or later work
  cudaEvent_t side_done_ = nullptr;     // lane 1 -> the compute stream and the communication lanes
  bool side_pending_ = false;           // lane 1 has calls the compute stream has not waited for
  bool work_since_fence_ = true;        // the compute stream has work that call_fence_ does not cover
  Status side_waits_for_compute();
  Status compute_waits_for_side();
  cudaStream_t lanes_[2] = {nullptr, nullptr};
  static constexpr int kSides = 2;
  cudaStream_t sides_[2][kSides] = {};
  int next_side_[2] = {0, 0};
  bool side_used_[2][kSides] = {};  // posted from since the lane last settled
  cudaEvent_t fence_[3] = {nullptr, nullptr, nullptr};  // compute, lane 0, lane 1
  cudaEvent_t lane_fence_[2] = {};                      // lane -> its side streams
  cudaEvent_t side_fence_[2][kSides] = {};              // side stream -> its lane
  cudaEvent_t posted_fence_[2] = {};                    // the last side stream's post point -> the next side stream
  std::vector<cudaEvent_t> handle_events_;
  std::vector<uint8_t> handle_sm_free_;  // per handle: mark_sm_free
  static constexpr uint32_t kFlagWords = 4096;  // a word is used again after that many flags, with a higher value
  cudaStream_t host_ = nullptr;     // begin_host_work
  cudaEvent_t host_fence_ = nullptr;  // compute -> host_
  bool host_work_on_compute_ = false;
  // The flag stream waits for the handles' events (landed flags and steps).
  Status flag_stream_waits_for(const std::vector<Handle>& hs);
  cudaStream_t flag_stream_ = nullptr;
  uint32_t* flag_words_ = nullptr;  // device memory, zeroed: kFlagWords words, then Comm::kMaxStepFlags step words
  uint32_t flags_issued_ = 0;       // the last value written (0: none yet)
  uint32_t steps_issued_[Comm::kMaxStepFlags] = {};  // per step word: the last value written into it
  size_t handles_used_ = 0;
  bool detached_[2] = {false, false};
  StreamTrace trace_;
};

}  // namespace sf::gpu
