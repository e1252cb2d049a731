// Comm over NCCL (two-sided), one process per GPU. Point-to-point messages go through one world
// communicator per lane (each lane has its own stream, and its own communicator so that the two streams never
// interleave operations of one communicator in different orders on different ranks). Batches are NCCL groups.
// One-sided operations are not offered here: they need the NVSHMEM backend.
#pragma once

#include <vector>

#include <nccl.h>

#include "emulated_link.h"
#include "gpu_streams.h"
#include "streamfusion/comm.h"

namespace sf::gpu {

// The NCCL communicators of a process, one per lane, shared by every NcclComm (topology view) made on them.
struct NcclWorld {
  ncclComm_t lane_comm[2] = {nullptr, nullptr};
  int rank = 0, world_size = 1;
  // Polls ncclCommGetAsyncError on every communicator; empty when all is well.
  std::string async_error() const;
  void abort_all();
  void destroy();
};

Status nccl_status(ncclResult_t r, const char* what);

class NcclComm final : public Comm {
 public:
  NcclComm(const Topology& topo, NcclWorld* world, GpuStreams* streams, EmulatedLinks* links,
           const EmulationSettings& emu);
  ~NcclComm() override;
  Status init();

  int rank() const override { return world_->rank; }
  const Topology& topology() const override { return topo_; }

  // Plain device memory: NCCL needs no symmetric heap. (put/get are refused.)
  Result<SymmetricBuffer> alloc_symmetric(size_t bytes) override;
  Status free_symmetric(SymmetricBuffer& buf) override;

  Result<Handle> send(int peer, const void* data, size_t bytes, Lane lane = Lane::kMain) override;
  Result<Handle> recv(int peer, void* data, size_t bytes, Lane lane = Lane::kMain) override;
  Status begin_batch() override;
  Status end_batch() override;
  Status begin_detached(Lane lane, const std::vector<Handle>& deps) override { return streams_->detach(lane, deps); }
  Status end_detached(Lane lane) override {
    streams_->attach(lane);
    return Status::ok();
  }

  Result<Handle> put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src, size_t bytes,
                     Lane lane = Lane::kMain) override;
  Result<Handle> get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer, size_t bytes,
                     Lane lane = Lane::kMain) override;
  Status barrier_impl(const std::vector<int>& group, Lane lane) override;
  Status wait(Handle h) override { return streams_->wait(h); }

  // Used by NvshmemComm for its two-sided operations: same as send/recv but without counting bytes here.
  Result<Handle> transfer(bool is_send, int peer, void* data, size_t bytes, Lane lane);

 private:
  Status check_peer(int peer, const char* op) const;
  Status fence_lane(Lane lane);

  Topology topo_;
  NcclWorld* world_;
  GpuStreams* streams_;
  EmulatedLinks* links_;
  EmulationSettings emu_;
  int* tokens_ = nullptr;  // barrier tokens: [0] sent, [1 + r] received from rank r
  bool in_batch_ = false;
  bool fenced_[2] = {false, false};
  struct Pending {
    Handle handle;
    Lane lane;
    bool has_slot;
    uint32_t slot;
  };
  std::vector<Pending> pending_;
};

}  // namespace sf::gpu
