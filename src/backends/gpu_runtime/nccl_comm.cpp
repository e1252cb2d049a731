#include "nccl_comm.h"

#include <string>

#include "gpu_check.h"

namespace sf::gpu {

Status nccl_status(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return Status::ok();
  std::string msg = std::string(what) + ": " + ncclGetErrorString(r);
  if (const char* last = ncclGetLastError(nullptr); last && *last) msg += " (" + std::string(last) + ")";
  return backend_error(msg);
}

#define SF_NCCL_RETURN(call) SF_RETURN_IF_ERROR(::sf::gpu::nccl_status((call), #call))

std::string NcclWorld::async_error() const {
  for (int i = 0; i < 2; ++i) {
    if (!lane_comm[i]) continue;
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(lane_comm[i], &async) != ncclSuccess) continue;
    if (async != ncclSuccess && async != ncclInProgress) {
      return std::string("NCCL reported an asynchronous error on the ") + (i == 0 ? "main" : "ring") +
             " lane communicator: " + ncclGetErrorString(async);
    }
  }
  return {};
}

void NcclWorld::abort_all() {
  for (auto& c : lane_comm) {
    if (c) ncclCommAbort(c);
    c = nullptr;
  }
}

void NcclWorld::destroy() {
  for (auto& c : lane_comm) {
    if (c) ncclCommDestroy(c);
    c = nullptr;
  }
}

NcclComm::NcclComm(const Topology& topo, NcclWorld* world, GpuStreams* streams, EmulatedLinks* links,
                   const EmulationSettings& emu)
    : topo_(topo), world_(world), streams_(streams), links_(links), emu_(emu) {}

NcclComm::~NcclComm() {
  if (tokens_) cudaFree(tokens_);
}

Status NcclComm::init() {
  SF_CUDA_RETURN(cudaMalloc(&tokens_, sizeof(int) * (1 + static_cast<size_t>(world_->world_size))));
  SF_CUDA_RETURN(cudaMemset(tokens_, 0, sizeof(int) * (1 + static_cast<size_t>(world_->world_size))));
  return Status::ok();
}

Status NcclComm::check_peer(int peer, const char* op) const {
  if (peer < 0 || peer >= world_->world_size) {
    return invalid_argument(std::string(op) + ": peer " + std::to_string(peer) + " is not a rank of the " +
                            std::to_string(world_->world_size) + "-rank world");
  }
  return Status::ok();
}

Status NcclComm::fence_lane(Lane lane) {
  const int l = static_cast<int>(lane);
  if (in_batch_ && fenced_[l]) return Status::ok();
  fenced_[l] = true;
  return streams_->order_after_compute(lane);
}

Result<SymmetricBuffer> NcclComm::alloc_symmetric(size_t bytes) {
  SymmetricBuffer b;
  b.bytes = bytes;
  if (bytes > 0) SF_CUDA_RETURN(cudaMalloc(&b.local, bytes));
  b.id = 0;
  return b;
}

Status NcclComm::free_symmetric(SymmetricBuffer& buf) {
  if (buf.local) SF_CUDA_RETURN(cudaFree(buf.local));
  buf = SymmetricBuffer{};
  return Status::ok();
}

Result<Handle> NcclComm::transfer(bool is_send, int peer, void* data, size_t bytes, Lane lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, is_send ? "send" : "recv"));
  if (bytes == 0) return Handle{};
  SF_RETURN_IF_ERROR(fence_lane(lane));
  cudaStream_t stream = streams_->lane(lane);
  const bool emulate = emu_.enabled() && topo_.link(rank(), peer) == LinkClass::kInter;
  uint32_t slot = 0;
  if (emulate) {
    SF_ASSIGN_OR_RETURN(slot, links_->book(stream, is_send ? LinkDirection::kEgress : LinkDirection::kIngress,
                                           bytes, emu_));
  }
  ncclComm_t comm = world_->lane_comm[static_cast<int>(lane)];
  {
    Watchdog::ScopedOp op(streams_->watchdog(), std::string(is_send ? "ncclSend to rank " : "ncclRecv from rank ") +
                                                    std::to_string(peer) + " (" + std::to_string(bytes) + " B)");
    if (is_send) {
      SF_NCCL_RETURN(ncclSend(data, bytes, ncclUint8, peer, comm, stream));
    } else {
      SF_NCCL_RETURN(ncclRecv(data, bytes, ncclUint8, peer, comm, stream));
    }
  }
  if (in_batch_) {
    SF_ASSIGN_OR_RETURN(Handle h, streams_->reserve());
    pending_.push_back(Pending{h, lane, emulate, slot});
    return h;
  }
  if (emulate) SF_RETURN_IF_ERROR(links_->hold(stream, slot));
  return streams_->record(lane);
}

Result<Handle> NcclComm::send(int peer, const void* data, size_t bytes, Lane lane) {
  SF_ASSIGN_OR_RETURN(Handle h, transfer(true, peer, const_cast<void*>(data), bytes, lane));
  count(peer, bytes);
  return h;
}

Result<Handle> NcclComm::recv(int peer, void* data, size_t bytes, Lane lane) {
  return transfer(false, peer, data, bytes, lane);
}

Status NcclComm::begin_batch() {
  if (in_batch_) return internal_error("begin_batch inside a batch (NCCL groups of this Comm do not nest)");
  SF_NCCL_RETURN(ncclGroupStart());
  in_batch_ = true;
  fenced_[0] = fenced_[1] = false;
  pending_.clear();
  return Status::ok();
}

Status NcclComm::end_batch() {
  if (!in_batch_) return internal_error("end_batch without begin_batch");
  in_batch_ = false;
  {
    Watchdog::ScopedOp op(streams_->watchdog(),
                          "ncclGroupEnd (batch of " + std::to_string(pending_.size()) + " sends/receives)");
    SF_NCCL_RETURN(ncclGroupEnd());
  }
  // The group's operations are on the lanes now: hold the emulated ones, then record every handle.
  for (const Pending& p : pending_)
    if (p.has_slot) SF_RETURN_IF_ERROR(links_->hold(streams_->lane(p.lane), p.slot));
  for (const Pending& p : pending_) SF_RETURN_IF_ERROR(streams_->record_into(p.handle, p.lane));
  pending_.clear();
  return Status::ok();
}

Result<Handle> NcclComm::put(const SymmetricBuffer&, size_t, int, const void*, size_t, Lane) {
  return unimplemented("one-sided put is not offered by the NCCL backend; use transport two-sided with it, or "
                       "the nvshmem backend for one-sided transports");
}

Result<Handle> NcclComm::get(void*, const SymmetricBuffer&, size_t, int, size_t, Lane) {
  return unimplemented("one-sided get is not offered by the NCCL backend; use transport two-sided with it, or "
                       "the nvshmem backend for one-sided transports");
}

Status NcclComm::barrier_impl(const std::vector<int>& group, Lane lane) {
  bool member = false, across = false;
  for (int r : group) {
    SF_RETURN_IF_ERROR(check_peer(r, "barrier"));
    member = member || r == rank();
    across = across || topo_.link(rank(), r) == LinkClass::kInter;
  }
  if (!member) return invalid_argument("barrier: rank " + std::to_string(rank()) + " is not in the group");
  if (group.size() <= 1) return Status::ok();
  if (in_batch_) return internal_error("barrier inside a batch");
  SF_RETURN_IF_ERROR(streams_->order_after_compute(lane));
  cudaStream_t stream = streams_->lane(lane);
  ncclComm_t comm = world_->lane_comm[static_cast<int>(lane)];
  {
    Watchdog::ScopedOp op(streams_->watchdog(), "barrier of " + std::to_string(group.size()) + " ranks (NCCL)");
    SF_NCCL_RETURN(ncclGroupStart());
    for (int r : group) {
      if (r == rank()) continue;
      SF_NCCL_RETURN(ncclSend(tokens_, sizeof(int), ncclUint8, r, comm, stream));
      SF_NCCL_RETURN(ncclRecv(tokens_ + 1 + r, sizeof(int), ncclUint8, r, comm, stream));
    }
    SF_NCCL_RETURN(ncclGroupEnd());
  }
  if (across && emu_.enabled()) SF_RETURN_IF_ERROR(links_->hold_latency(stream, emu_));
  // What follows on this rank (compute included) comes after the barrier.
  SF_ASSIGN_OR_RETURN(Handle h, streams_->record(lane));
  return streams_->wait(h);
}

}  // namespace sf::gpu
