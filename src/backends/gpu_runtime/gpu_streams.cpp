#include "gpu_streams.h"

#include "gpu_check.h"
#include "streamfusion/env_choice.h"

namespace sf::gpu {

GpuStreams::~GpuStreams() {
  if (device_ < 0) return;
  cudaSetDevice(device_);
  for (cudaEvent_t e : handle_events_) cudaEventDestroy(e);
  for (cudaEvent_t e : fence_)
    if (e) cudaEventDestroy(e);
  for (int l = 0; l < 2; ++l) {
    if (lane_fence_[l]) cudaEventDestroy(lane_fence_[l]);
    if (posted_fence_[l]) cudaEventDestroy(posted_fence_[l]);
    for (int k = 0; k < kSides; ++k) {
      if (side_fence_[l][k]) cudaEventDestroy(side_fence_[l][k]);
      if (sides_[l][k]) cudaStreamDestroy(sides_[l][k]);
    }
  }
  for (cudaStream_t s : lanes_)
    if (s) cudaStreamDestroy(s);
  if (flag_stream_) cudaStreamDestroy(flag_stream_);
  if (host_fence_) cudaEventDestroy(host_fence_);
  if (host_) cudaStreamDestroy(host_);
  if (flag_words_) cudaFree(flag_words_);
  if (call_fence_) cudaEventDestroy(call_fence_);
  if (side_done_) cudaEventDestroy(side_done_);
  if (call_side_) cudaStreamDestroy(call_side_);
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
  // Compute lane 1 carries the foreign rows' calls, whose output still has to cross the link: its blocks go
  // first where both lanes wait for SMs (one step above the compute stream; the same priority measured alike,
  // bench/sp/results/h200x4-2026-11-28-compute-lanes/).
  const int side_priority = greatest == least ? least : (least > greatest ? least - 1 : least + 1);
  SF_CUDA_RETURN(cudaStreamCreateWithPriority(&call_side_, cudaStreamNonBlocking, side_priority));
  SF_CUDA_RETURN(cudaEventCreateWithFlags(&call_fence_, cudaEventDisableTiming));
  SF_CUDA_RETURN(cudaEventCreateWithFlags(&side_done_, cudaEventDisableTiming));
  for (auto& s : lanes_) SF_CUDA_RETURN(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest));
  for (auto& e : fence_) SF_CUDA_RETURN(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  for (int l = 0; l < 2; ++l) {
    SF_CUDA_RETURN(cudaEventCreateWithFlags(&lane_fence_[l], cudaEventDisableTiming));
    SF_CUDA_RETURN(cudaEventCreateWithFlags(&posted_fence_[l], cudaEventDisableTiming));
    for (int k = 0; k < kSides; ++k) {
      SF_CUDA_RETURN(cudaStreamCreateWithPriority(&sides_[l][k], cudaStreamNonBlocking, greatest));
      SF_CUDA_RETURN(cudaEventCreateWithFlags(&side_fence_[l][k], cudaEventDisableTiming));
    }
  }
  SF_CUDA_RETURN(cudaStreamCreateWithPriority(&flag_stream_, cudaStreamNonBlocking, greatest));
  SF_CUDA_RETURN(cudaStreamCreateWithPriority(&host_, cudaStreamNonBlocking, least));
  SF_CUDA_RETURN(cudaEventCreateWithFlags(&host_fence_, cudaEventDisableTiming));
  SF_ASSIGN_OR_RETURN(const int own, env_choice("SF_HOST_WORK_STREAM", {"compute", "own"}));
  host_work_on_compute_ = own == 0;
  SF_CUDA_RETURN(cudaMalloc(&flag_words_, (kFlagWords + Comm::kMaxStepFlags) * sizeof(uint32_t)));
  // Zeroed before init returns (the streams are non-blocking, so nothing else orders a kernel's first poll after
  // a memset on the legacy stream), on the host stream: after a memset of its own the flag stream's writes would
  // queue behind every copy issued before them (begin_host_work).
  SF_CUDA_RETURN(cudaMemsetAsync(flag_words_, 0, (kFlagWords + Comm::kMaxStepFlags) * sizeof(uint32_t), host_));
  SF_CUDA_RETURN(cudaStreamSynchronize(host_));
  return Status::ok();
}

Status GpuStreams::order_after_compute(Lane l) {
  if (detached_[static_cast<int>(l)]) return Status::ok();
  SF_CUDA_RETURN(cudaEventRecord(fence_[0], compute_));
  SF_CUDA_RETURN(cudaStreamWaitEvent(lane(l), fence_[0], 0));
  if (side_pending_) {  // and lane 1's calls (the compute stream need not wait for them yet)
    SF_CUDA_RETURN(cudaEventRecord(side_done_, call_side_));
    SF_CUDA_RETURN(cudaStreamWaitEvent(lane(l), side_done_, 0));
  }
  return Status::ok();
}

Status GpuStreams::side_waits_for_compute() {
  if (work_since_fence_) {
    SF_CUDA_RETURN(cudaEventRecord(call_fence_, compute_));
    work_since_fence_ = false;
  }
  SF_CUDA_RETURN(cudaStreamWaitEvent(call_side_, call_fence_, 0));
  return Status::ok();
}

Result<cudaStream_t> GpuStreams::call_stream(int lane) {
  if (lane != 1) {
    // Lane 1's next call follows what came before this one on the compute stream, not this call.
    SF_CUDA_RETURN(cudaEventRecord(call_fence_, compute_));
    work_since_fence_ = false;
    return compute_;
  }
  SF_RETURN_IF_ERROR(side_waits_for_compute());
  side_pending_ = true;
  return call_side_;
}

Status GpuStreams::compute_waits_for_side() {
  if (!side_pending_) return Status::ok();
  SF_CUDA_RETURN(cudaEventRecord(side_done_, call_side_));
  SF_CUDA_RETURN(cudaStreamWaitEvent(compute_, side_done_, 0));
  side_pending_ = false;
  return Status::ok();
}

Status GpuStreams::order_call_lanes() {
  SF_RETURN_IF_ERROR(compute_waits_for_side());
  work_since_fence_ = true;  // lane 1's next call follows all of it, lane 0's calls included
  return side_waits_for_compute();
}

Result<cudaStream_t> GpuStreams::work_stream() {
  SF_RETURN_IF_ERROR(compute_waits_for_side());
  work_since_fence_ = true;
  return compute_;
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
    handle_sm_free_.push_back(0);
  }
  handle_sm_free_[handles_used_] = 0;
  return Handle{static_cast<int64_t>(handles_used_++)};
}

void GpuStreams::mark_sm_free(Handle h) {
  if (h.id >= 0 && static_cast<size_t>(h.id) < handles_used_) handle_sm_free_[static_cast<size_t>(h.id)] = 1;
}

bool GpuStreams::sm_free(Handle h) const {
  return h.id < 0 || (static_cast<size_t>(h.id) < handles_used_ && handle_sm_free_[static_cast<size_t>(h.id)] != 0);
}

Status GpuStreams::flag_stream_waits_for(const std::vector<Handle>& hs) {
  for (Handle h : hs) {
    if (h.id < 0) continue;
    if (static_cast<size_t>(h.id) >= handles_used_) return internal_error("landed flag of a dead handle");
    SF_CUDA_RETURN(cudaStreamWaitEvent(flag_stream_, handle_events_[static_cast<size_t>(h.id)], 0));
  }
  return Status::ok();
}

Result<LandedFlag> GpuStreams::flag_when_done(const std::vector<Handle>& hs) {
  SF_RETURN_IF_ERROR(flag_stream_waits_for(hs));
  // Word value % kFlagWords: its values grow by kFlagWords from one use to the next, and the flag stream writes
  // them in order, so a kernel that still polls for an older value is released by a newer one too.
  if (++flags_issued_ == 0) ++flags_issued_;  // 0 is every word's initial value: never a flag
  const uint32_t value = flags_issued_;
  uint32_t* word = flag_words_ + value % kFlagWords;
  SF_RETURN_IF_ERROR(driver_status(cuStreamWriteValue32(reinterpret_cast<CUstream>(flag_stream_),
                                                       reinterpret_cast<CUdeviceptr>(word), value,
                                                       CU_STREAM_WRITE_VALUE_DEFAULT),
                                  "landed flag (cuStreamWriteValue32)"));
  return LandedFlag{word, value};
}

Result<std::vector<LandedFlag>> GpuStreams::flag_steps(const std::vector<LandedStep>& order, int num_flags) {
  if (num_flags < 1 || num_flags > Comm::kMaxStepFlags)
    return internal_error("flag_steps: " + std::to_string(num_flags) + " flags");
  // Each flag's first value follows the last its word was given, so that no poll of this layer is released by
  // an earlier one's writes.
  std::vector<LandedFlag> flags(static_cast<size_t>(num_flags));
  for (int f = 0; f < num_flags; ++f) flags[f] = LandedFlag{flag_words_ + kFlagWords + f, steps_issued_[f] + 1};
  for (const LandedStep& w : order) {
    SF_RETURN_IF_ERROR(flag_stream_waits_for(w.ops));
    const uint32_t value = flags[w.flag].value + static_cast<uint32_t>(w.step);
    SF_RETURN_IF_ERROR(driver_status(cuStreamWriteValue32(reinterpret_cast<CUstream>(flag_stream_),
                                                         reinterpret_cast<CUdeviceptr>(flags[w.flag].word), value,
                                                         CU_STREAM_WRITE_VALUE_DEFAULT),
                                    "landed step (cuStreamWriteValue32)"));
    steps_issued_[w.flag] = value;
  }
  return flags;
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

Result<cudaStream_t> GpuStreams::begin_side(Lane l, bool in_order) {
  const int i = static_cast<int>(l), k = next_side_[i];
  next_side_[i] = (k + 1) % kSides;
  SF_CUDA_RETURN(cudaEventRecord(lane_fence_[i], lanes_[i]));
  SF_CUDA_RETURN(cudaStreamWaitEvent(sides_[i][k], lane_fence_[i], 0));
  // Never recorded (the lane's first transfer), the event is complete: nothing to wait for.
  if (in_order) SF_CUDA_RETURN(cudaStreamWaitEvent(sides_[i][k], posted_fence_[i], 0));
  side_used_[i][k] = true;
  return sides_[i][k];
}

Status GpuStreams::mark_posted(Lane l, cudaStream_t side, bool fence) {
  if (fence) SF_CUDA_RETURN(cudaEventRecord(posted_fence_[static_cast<int>(l)], side));
  // When the side stream got there: a late one shows up in --trace beside its lane's "done" points.
  if (trace_.on()) SF_RETURN_IF_ERROR(trace_.point(side, l == Lane::kRing ? "ring lane: posted" : "main lane: posted"));
  return Status::ok();
}

Result<Handle> GpuStreams::record_side(Lane l, cudaStream_t side) {
  SF_ASSIGN_OR_RETURN(Handle h, reserve());
  SF_CUDA_RETURN(cudaEventRecord(handle_events_[static_cast<size_t>(h.id)], side));
  if (trace_.on()) SF_RETURN_IF_ERROR(trace_.point(side, l == Lane::kRing ? "ring lane: done" : "main lane: done"));
  return h;
}

Status GpuStreams::settle(Lane l) {
  const int i = static_cast<int>(l);
  for (int k = 0; k < kSides; ++k) {
    if (!side_used_[i][k]) continue;
    SF_CUDA_RETURN(cudaEventRecord(side_fence_[i][k], sides_[i][k]));
    SF_CUDA_RETURN(cudaStreamWaitEvent(lanes_[i], side_fence_[i][k], 0));
    side_used_[i][k] = false;
  }
  return Status::ok();
}

Status GpuStreams::wait(Handle h) {
  if (h.id < 0) return Status::ok();
  if (static_cast<size_t>(h.id) >= handles_used_) {
    return internal_error("wait on handle " + std::to_string(h.id) + " that this rank never issued (" +
                          std::to_string(handles_used_) + " live handles; handles die at synchronize())");
  }
  SF_CUDA_RETURN(cudaStreamWaitEvent(compute_, handle_events_[static_cast<size_t>(h.id)], 0));
  // Lane 1's later calls too (they do not follow lane 0's calls, which follow this wait).
  SF_CUDA_RETURN(cudaStreamWaitEvent(call_side_, handle_events_[static_cast<size_t>(h.id)], 0));
  return Status::ok();
}

Status GpuStreams::join_lanes() {
  SF_RETURN_IF_ERROR(compute_waits_for_side());
  for (int i = 0; i < 2; ++i) {
    SF_RETURN_IF_ERROR(settle(static_cast<Lane>(i)));
    SF_CUDA_RETURN(cudaEventRecord(fence_[1 + i], lanes_[i]));
    SF_CUDA_RETURN(cudaStreamWaitEvent(compute_, fence_[1 + i], 0));
  }
  return Status::ok();
}

Result<cudaStream_t> GpuStreams::begin_host_work() {
  SF_ASSIGN_OR_RETURN(cudaStream_t compute, work_stream());
  if (host_work_on_compute_) return compute;
  SF_CUDA_RETURN(cudaEventRecord(host_fence_, compute_));
  SF_CUDA_RETURN(cudaStreamWaitEvent(host_, host_fence_, 0));
  return host_;
}

Status GpuStreams::end_host_work(const std::string& what) {
  if (host_work_on_compute_) return synchronize(what);
  Watchdog::ScopedOp op(watchdog_, what + " (waiting for the host-work stream)");
  SF_CUDA_RETURN(cudaStreamSynchronize(host_));
  return Status::ok();
}

Status GpuStreams::synchronize(const std::string& what) {
  // One watchdog operation per stream, so that a hang names the stream it is on.
  const auto sync = [&](cudaStream_t s, const std::string& which) -> Status {
    Watchdog::ScopedOp op(watchdog_, what + " (waiting for " + which + ")");
    SF_CUDA_RETURN(cudaStreamSynchronize(s));
    return Status::ok();
  };
  static const char* const kLaneNames[2] = {"the main lane", "the ring lane"};
  for (int l = 0; l < 2; ++l) SF_RETURN_IF_ERROR(sync(lanes_[l], kLaneNames[l]));
  for (int l = 0; l < 2; ++l)
    for (int k = 0; k < kSides; ++k) {
      SF_RETURN_IF_ERROR(sync(sides_[l][k], "side stream " + std::to_string(k) + " of " + kLaneNames[l]));
      side_used_[l][k] = false;
    }
  SF_RETURN_IF_ERROR(sync(flag_stream_, "the landed flags' stream"));
  SF_RETURN_IF_ERROR(sync(call_side_, "compute lane 1"));
  side_pending_ = false;
  SF_RETURN_IF_ERROR(sync(compute_, "the compute stream"));
  handles_used_ = 0;
  return Status::ok();
}

}  // namespace sf::gpu
