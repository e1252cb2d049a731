// Comm over NVSHMEM (one-sided; paper Appendix A): symmetric buffers on the NVSHMEM heap, put/get with
// nvshmemx_{put,get}mem_on_stream on the lane's stream, group barriers on streams (nvshmemx_barrier_all_on_stream
// for the whole world, a signal barrier for a group: quiet, then one signal to every member and a stream wait
// for theirs). Two-sided operations go to an NcclComm when the process has one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emulated_link.h"
#include "gpu_streams.h"
#include "nccl_comm.h"
#include "streamfusion/comm.h"

namespace sf::gpu {

// Process-wide NVSHMEM initialization through the unique-id bootstrap (no MPI). The id travels through the
// caller's store: `share_id(id_bytes)` returns rank 0's id on every rank.
Status nvshmem_initialize(int rank, int world_size, size_t heap_bytes,
                          const std::function<Result<std::string>(const std::string&)>& share_id);
void nvshmem_finalize_process();
std::string nvshmem_version_string();

class NvshmemComm final : public Comm {
 public:
  NvshmemComm(const Topology& topo, int rank, GpuStreams* streams, EmulatedLinks* links,
              const EmulationSettings& emu, NcclComm* two_sided);
  ~NvshmemComm() override;
  Status init();  // collective: allocates the barrier signals

  int rank() const override { return rank_; }
  const Topology& topology() const override { return topo_; }

  Result<SymmetricBuffer> alloc_symmetric(size_t bytes) override;
  Status free_symmetric(SymmetricBuffer& buf) override;

  Result<Handle> send(int peer, const void* data, size_t bytes, Lane lane = Lane::kMain) override;
  Result<Handle> recv(int peer, void* data, size_t bytes, Lane lane = Lane::kMain) override;
  Status begin_batch() override;
  Status end_batch() override;

  Result<Handle> put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src, size_t bytes,
                     Lane lane = Lane::kMain) override;
  Result<Handle> get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer, size_t bytes,
                     Lane lane = Lane::kMain) override;
  Status barrier_impl(const std::vector<int>& group, Lane lane) override;
  Status wait(Handle h) override { return streams_->wait(h); }
  Status begin_detached(Lane lane, const std::vector<Handle>& deps) override { return streams_->detach(lane, deps); }
  Status end_detached(Lane lane) override {
    streams_->attach(lane);
    return Status::ok();
  }

 private:
  Status check_access(const SymmetricBuffer& b, size_t offset, size_t bytes, int peer, const char* op) const;
  // Orders the lane after compute and books an emulated link if the peer is on another machine.
  Result<uint32_t> begin_transfer(int peer, LinkDirection dir, size_t bytes, Lane lane, bool* emulate);
  // Checks the launch, holds the emulated link, counts the bytes and returns the lane's handle.
  Result<Handle> end_transfer(int peer, size_t bytes, Lane lane, bool emulate, uint32_t slot, const char* what);

  Topology topo_;
  int rank_;
  GpuStreams* streams_;
  EmulatedLinks* links_;
  EmulationSettings emu_;
  NcclComm* two_sided_;
  uint64_t* signals_ = nullptr;        // symmetric: [lane][source rank] arrival counters
  std::vector<uint64_t> expected_[2];  // per lane, per peer: barriers passed together so far
  int next_id_ = 1;
};

}  // namespace sf::gpu
