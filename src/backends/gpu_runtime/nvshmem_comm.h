// Comm over NVSHMEM (one-sided; paper Appendix A): symmetric buffers on the NVSHMEM heap, put/get with
// nvshmemx_{put,get}mem_on_stream, group barriers on streams: nvshmemx_barrier_all_on_stream for the whole world,
// for a mesh group a signal barrier (quiet, then one signal to every member and a stream wait for theirs), or with
// SF_NVSHMEM_GROUP_BARRIER=team nvshmemx_barrier_on_stream on a team that prepare_barriers made for the group (a
// team per group and lane, split from the world: the two lanes' barriers of one group may run at once, and a
// team's collectives may not; 0.96-0.985x the signal barrier on emulated 2x2 at 50 GB/s, 4x H200, session 28).
// Two-sided operations go to an NcclComm when the process has one.
//
// Transfers to and from other machines are posted from the lane's two side streams in turn (gpu_streams.h): each
// completes on its side stream when its data has landed while the next is already queued on the NIC, instead of
// the lane waiting for each before posting the next. Every other operation settles the lane first, so a lane's
// operations still follow each other as Comm promises; only consecutive inter-machine transfers overlap, as
// transfers that no one orders between them. SF_NVSHMEM_PIPELINE=off posts them on the lane (for comparisons).
// The side streams post in issue order: the second waits until the first has posted, so a NIC that takes
// requests as they come sees the lane's order (SF_NVSHMEM_POST_ORDER=free drops that wait, for comparisons).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "emulated_link.h"
#include "gpu_streams.h"
#include "nccl_comm.h"
#include "streamfusion/comm.h"

namespace sf::gpu {

// Process-wide NVSHMEM initialization through the unique-id bootstrap (no MPI). The id travels through the
// caller's store: `share_id(id_bytes)` returns rank 0's id on every rank. `across_hosts`: the job's ranks run on
// several hosts, so a failure may also be NVSHMEM's remote transport (its message says so).
Status nvshmem_initialize(int rank, int world_size, size_t heap_bytes, bool across_hosts,
                          const std::function<Result<std::string>(const std::string&)>& share_id);
void nvshmem_finalize_process();
std::string nvshmem_version_string();  // the loaded library's, e.g. "3.4.5"

// An on/off setting of the one-sided backend: "on" or unset (true), "off" (false); anything else is an error
// (NvshmemComm::init fails). SF_NVSHMEM_PIPELINE: inter-machine transfers from the side streams (above);
// SF_LANDED_FLAGS: landed_flag hands out flags where it safely can (off: it waits, for comparisons).
Result<bool> on_off_from_env(const char* name);
// SF_EMULATED_BOOKING: when the emulated links book a one-sided transfer posted from a side stream. "lane" or
// unset (false): when the lane issues it, so that a NIC holds every transfer of a layer in the order the rank
// issued them, as the paper's Algorithm 1 issues every pull at once. "post" (true): when its side stream posts it,
// which with two side streams is at most two per lane at a time (for comparisons: bench/sp/TRACES.md, session 21).
// Anything else is an error.
Result<bool> emulated_booking_at_post();

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
  // nvshmem_ptr for a peer on our machine (emulated machines count as machines: their peers are not reachable).
  void* peer_address(const SymmetricBuffer& buf, int peer) override;

  Result<Handle> send(int peer, const void* data, size_t bytes, Lane lane = Lane::kMain) override;
  Result<Handle> recv(int peer, void* data, size_t bytes, Lane lane = Lane::kMain) override;
  Status begin_batch() override;
  Status end_batch() override;

  Result<Handle> put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src, size_t bytes,
                     Lane lane = Lane::kMain) override;
  Result<Handle> get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer, size_t bytes,
                     Lane lane = Lane::kMain) override;
  // A copy-engine 2D copy from the peer's memory (nvshmem_ptr): peers of our machine only.
  Result<Handle> get_strided(void* dst, size_t dst_pitch, const SymmetricBuffer& src, size_t src_offset,
                             size_t src_pitch, size_t width, size_t rows, int peer, Lane lane = Lane::kMain) override;
  // Signals: nvshmem_calloc'd words. A put_signal to a GPU whose memory is mapped here (emulated machines too) is
  // a put, the emulated link's hold if any, then a stream write of the word (cuStreamWriteValue64), so the word
  // rises when the (emulated) transfer ends; to another node nvshmemx_putmem_signal_on_stream. wait_signal is
  // nvshmemx_signal_wait_until_on_stream on the compute stream.
  Result<SymmetricBuffer> alloc_signals(size_t words) override;
  Result<Handle> put_signal(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src, size_t bytes,
                            const SymmetricBuffer& signals, size_t word, uint64_t value,
                            Lane lane = Lane::kMain) override;
  Status wait_signal(const SymmetricBuffer& signals, size_t word, uint64_t value) override;
  Status barrier_impl(const std::vector<int>& group, Lane lane) override;
  // A team per group and lane where the group's ranks, sorted, are evenly spaced (nvshmem_team_split_strided);
  // other groups keep the signal barrier. Collective: every rank splits the world for every new group.
  Status prepare_barriers_impl(const std::vector<std::vector<int>>& groups) override;
  // A flag where every operation of `hs` and what its lane did before it needs no SM (end_transfer marks them).
  Result<LandedFlag> landed_flag_impl(const std::vector<Handle>& hs) override;
  Result<std::vector<LandedFlag>> landed_steps_impl(const std::vector<LandedStep>& order, int num_flags,
                                                    int32_t heads_per_step) override;
  Status wait(Handle h) override { return streams_->wait(h); }

  Status begin_detached(Lane lane, const std::vector<Handle>& deps) override { return streams_->detach(lane, deps); }
  Status end_detached(Lane lane) override {
    streams_->attach(lane);
    return Status::ok();
  }

 private:
  Status check_access(const SymmetricBuffer& b, size_t offset, size_t bytes, int peer, const char* op) const;
  // Drains every stream before a host-side NVSHMEM collective (allocations, team splits).
  Status before_host_collective(const char* what);
  // Whether a flag may stand for these operations: flags are on, some operation is pending, and none of them (nor
  // what its lane did before it) needs an SM (end_transfer marks them).
  bool flaggable(const std::vector<std::vector<Handle>>& groups) const;
  // A transfer to or from another machine is posted from a side stream (pipeline_); anything else settles the
  // lane first.
  bool posted_aside(int peer) const { return pipeline_ && topo_.link(rank_, peer) == LinkClass::kInter; }
  // Orders the lane after compute, picks the stream to post the transfer from (a side stream of the lane, or the
  // lane) and books an emulated link if the peer is on another machine.
  Result<uint32_t> begin_transfer(int peer, LinkDirection dir, size_t bytes, Lane lane, bool* emulate,
                                  cudaStream_t* stream);
  // Checks the launch, holds the emulated link on `stream`, counts the bytes and returns the transfer's handle.
  // With `signal` (a word of a signal buffer), sets the peer's instance of it to `value` after the hold.
  Result<Handle> end_transfer(int peer, size_t bytes, Lane lane, cudaStream_t stream, bool emulate, uint32_t slot,
                              const char* what, uint64_t* signal = nullptr, uint64_t value = 0);

  Topology topo_;
  int rank_;
  GpuStreams* streams_;
  EmulatedLinks* links_;
  EmulationSettings emu_;
  NcclComm* two_sided_;
  bool pipeline_ = true;
  bool landed_flags_ = true;
  bool book_at_post_ = false;  // SF_EMULATED_BOOKING=post
  // SF_NVSHMEM_POST_ORDER: "issue" (default) hands a lane's inter-machine transfers to the NIC in the order they
  // were issued (GpuStreams::begin_side); "free" lets each side stream post once its own last transfer is done.
  bool post_in_order_ = true;
  bool lane_uses_sms_[2] = {false, false};  // the lane carried NCCL's or the kernel clock's kernels
  uint64_t* signals_ = nullptr;        // symmetric: [lane][source rank] arrival counters
  bool team_barriers_ = false;         // SF_NVSHMEM_GROUP_BARRIER: "signals" (default) or "team"
  // prepare_barriers' teams by (the group's ranks sorted, lane): nvshmem_team_t, NVSHMEM_TEAM_INVALID (-1) where
  // this rank is not a member. The same keys on every rank.
  std::map<std::pair<std::vector<int>, int>, int32_t> teams_;
  std::vector<uint64_t> expected_[2];  // per lane, per peer: barriers passed together so far
  int next_id_ = 1;
};

}  // namespace sf::gpu
