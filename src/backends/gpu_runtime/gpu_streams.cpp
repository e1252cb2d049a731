#include "gpu_streams.h"

#include "gpu_check.h"

namespace sf::gpu {

GpuStreams::~GpuStreams() {
  if (device_ < 0) return;
  cudaSetDevice(device_);
  for (cudaEvent_t e : handle_events_) cudaEventDestroy(e);
  for (cudaEvent_t e : fence_)
    if (e) cudaEventDestroy(e);
  for (auto& pair : hold_fence_)
    for (cudaEvent_t e : pair)
      if (e) cudaEventDestroy(e);
  for (cudaStream_t s : lanes_)
    if (s) cudaStreamDestroy(s);
  for (cudaStream_t s : holds_)
    if (s) cudaStreamDestroy(s);
  if (compute_) cudaStreamDestroy(compute_);
}

Status GpuStreams::init(int device, Watchdog* watchdog) {
  device_ = device;
  watchdog_ = watchdog;
  SF_CUDA_RETURN(cudaSetDevice(device));
  int least = 0, greatest = 0;
  SF_CUDA_RETURN(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  // Communication kernels (NCCL, emulated-link holds) get the higher priority so that a waiting transfer is
  // scheduled as soon as an SM frees up, instead of queueing behind a full attention grid.
  SF_CUDA_RETURN(cudaStreamCreateWithPriority(&compute_, cudaStreamNonBlocking, least));
  for (auto& s : lanes_) SF_CUDA_RETURN(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest));
  for (auto& s : holds_) SF_CUDA_RETURN(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest));
  for (auto& e : fence_) SF_CUDA_RETURN(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  for (auto& pair : hold_fence_)
    for (auto& e : pair) SF_CUDA_RETURN(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return Status::ok();
}

Status GpuStreams::order_after_compute(Lane l) {
  if (detached_[static_cast<int>(l)]) return Status::ok();
  SF_CUDA_RETURN(cudaEventRecord(fence_[0], compute_));
  SF_CUDA_RETURN(cudaStreamWaitEvent(lane(l), fence_[0], 0));
  return Status::ok();
}

Status GpuStreams::detach(Lane l, const std::vector<Handle>& deps) {
  for (Handle h : deps) {
    if (h.id < 0) continue;
    if (static_cast<size_t>(h.id) >= handles_used_) return internal_error("detach after a dead handle");
    SF_CUDA_RETURN(cudaStreamWaitEvent(lane(l), handle_events_[static_cast<size_t>(h.id)], 0));
  }
  detached_[static_cast<int>(l)] = true;
  return Status::ok();
}

Result<Handle> GpuStreams::reserve() {
  if (handles_used_ == handle_events_.size()) {
    cudaEvent_t e = nullptr;
    SF_CUDA_RETURN(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    handle_events_.push_back(e);
  }
  return Handle{static_cast<int64_t>(handles_used_++)};
}

Status GpuStreams::record_into(Handle h, Lane l) {
  if (h.id < 0 || static_cast<size_t>(h.id) >= handles_used_) return internal_error("record into a dead handle");
  SF_CUDA_RETURN(cudaEventRecord(handle_events_[static_cast<size_t>(h.id)], lane(l)));
  if (trace_.on()) return trace_.point(lane(l), l == Lane::kRing ? "ring lane: done" : "main lane: done");
  return Status::ok();
}

Result<Handle> GpuStreams::record(Lane l) {
  SF_ASSIGN_OR_RETURN(Handle h, reserve());
  SF_RETURN_IF_ERROR(record_into(h, l));
  return h;
}

Status GpuStreams::begin_hold_aside(Lane l) {
  const int i = static_cast<int>(l);
  SF_CUDA_RETURN(cudaEventRecord(hold_fence_[i][0], lanes_[i]));
  SF_CUDA_RETURN(cudaStreamWaitEvent(holds_[i], hold_fence_[i][0], 0));
  held_aside_[i] = true;
  return Status::ok();
}

Result<Handle> GpuStreams::record_hold(Lane l) {
  SF_ASSIGN_OR_RETURN(Handle h, reserve());
  const int i = static_cast<int>(l);
  SF_CUDA_RETURN(cudaEventRecord(handle_events_[static_cast<size_t>(h.id)], holds_[i]));
  if (trace_.on())
    SF_RETURN_IF_ERROR(trace_.point(holds_[i], l == Lane::kRing ? "ring lane: done" : "main lane: done"));
  return h;
}

Status GpuStreams::settle(Lane l) {
  const int i = static_cast<int>(l);
  if (!held_aside_[i]) return Status::ok();
  SF_CUDA_RETURN(cudaEventRecord(hold_fence_[i][1], holds_[i]));
  SF_CUDA_RETURN(cudaStreamWaitEvent(lanes_[i], hold_fence_[i][1], 0));
  held_aside_[i] = false;
  return Status::ok();
}

Status GpuStreams::wait(Handle h) {
  if (h.id < 0) return Status::ok();
  if (static_cast<size_t>(h.id) >= handles_used_) {
    return internal_error("wait on handle " + std::to_string(h.id) + " that this rank never issued (" +
                          std::to_string(handles_used_) + " live handles; handles die at synchronize())");
  }
  SF_CUDA_RETURN(cudaStreamWaitEvent(compute_, handle_events_[static_cast<size_t>(h.id)], 0));
  return Status::ok();
}

Status GpuStreams::join_lanes() {
  for (int i = 0; i < 2; ++i) {
    SF_RETURN_IF_ERROR(settle(static_cast<Lane>(i)));
    SF_CUDA_RETURN(cudaEventRecord(fence_[1 + i], lanes_[i]));
    SF_CUDA_RETURN(cudaStreamWaitEvent(compute_, fence_[1 + i], 0));
  }
  return Status::ok();
}

Status GpuStreams::synchronize(const std::string& what) {
  Watchdog::ScopedOp op(watchdog_, what);
  SF_CUDA_RETURN(cudaStreamSynchronize(lanes_[0]));
  SF_CUDA_RETURN(cudaStreamSynchronize(lanes_[1]));
  SF_CUDA_RETURN(cudaStreamSynchronize(holds_[0]));
  SF_CUDA_RETURN(cudaStreamSynchronize(holds_[1]));
  held_aside_[0] = held_aside_[1] = false;
  SF_CUDA_RETURN(cudaStreamSynchronize(compute_));
  handles_used_ = 0;
  return Status::ok();
}

}  // namespace sf::gpu
