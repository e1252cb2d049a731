// The streams of one GPU rank (paper Appendix A): a compute stream and two communication streams (Lane::kMain
// for Ulysses/Torus traffic, Lane::kRing for the ring's), with the events that order them:
//  - before a communication op: its lane waits for everything issued on the compute stream so far;
//  - a Handle is an event recorded on the lane after the op; wait(h) makes the compute stream wait on it.
// Each lane also has a hold stream, where one-sided transfers across emulated machines wait for their emulated
// delivery (emulated_link.h) without blocking the lane: the next transfer is posted at once and queues on the
// emulated NIC behind the first, as non-blocking puts and gets queue on a real one, instead of waiting for the
// first to be delivered and then for the stream to see it (10-20 us per transfer on an H200, gpu-links --trace).
// Whatever must follow the deliveries on the lane (a barrier, the end of the layer) settles the lane first.
#pragma once

#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "streamfusion/comm.h"
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
  cudaStream_t compute() const { return compute_; }
  cudaStream_t lane(Lane l) const { return lanes_[static_cast<int>(l)]; }
  Watchdog* watchdog() const { return watchdog_; }

  // The lane waits for all compute issued so far (nothing while the lane is detached).
  Status order_after_compute(Lane l);
  // Detached lane (Comm::begin_detached): it waits for the given handles instead of the compute.
  Status detach(Lane l, const std::vector<Handle>& deps);
  void attach(Lane l) { detached_[static_cast<int>(l)] = false; }
  // Records an event on the lane: a handle for everything issued on it so far (but the deliveries still held
  // aside, see settle).
  Result<Handle> record(Lane l);
  // Holds aside: the lane's hold stream waits for everything issued on the lane so far; the caller then enqueues
  // the hold itself on hold_stream(l) and takes the handle from record_hold(l), which covers the delivery.
  Status begin_hold_aside(Lane l);
  cudaStream_t hold_stream(Lane l) const { return holds_[static_cast<int>(l)]; }
  Result<Handle> record_hold(Lane l);
  // The lane waits for every delivery held aside so far (before a barrier that tells peers they have landed).
  Status settle(Lane l);
  // A handle whose event is recorded later (ops inside an NCCL group are enqueued only at its end).
  Result<Handle> reserve();
  Status record_into(Handle h, Lane l);
  // The compute stream waits for the handle's event.
  Status wait(Handle h);
  // The compute stream waits for everything issued on both lanes and their hold streams (end of a layer,
  // timing).
  Status join_lanes();
  // Blocks the host until compute, both lanes and their hold streams are idle; the watchdog guards it. Recycles
  // handle events.
  Status synchronize(const std::string& what);
  // The rank's timeline while a benchmark traces (--trace): the Device brackets its calls on the compute
  // stream, and every handle recorded on a lane adds a point "lane ...: done".
  StreamTrace& trace() { return trace_; }

 private:
  int device_ = -1;
  Watchdog* watchdog_ = nullptr;
  cudaStream_t compute_ = nullptr;
  cudaStream_t lanes_[2] = {nullptr, nullptr};
  cudaStream_t holds_[2] = {nullptr, nullptr};
  bool held_aside_[2] = {false, false};  // a hold aside since the lane last settled
  cudaEvent_t fence_[3] = {nullptr, nullptr, nullptr};  // compute, lane 0, lane 1
  cudaEvent_t hold_fence_[2][2] = {};                   // per lane: lane -> hold stream, hold stream -> lane
  std::vector<cudaEvent_t> handle_events_;
  size_t handles_used_ = 0;
  bool detached_[2] = {false, false};
  StreamTrace trace_;
};

}  // namespace sf::gpu
