#include "nvshmem_comm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <nvshmem.h>
#include <nvshmemx.h>

#include "streamfusion/env_choice.h"
#include "exit_note.h"
#include "gpu_check.h"
#include "nvshmem_heap.h"

namespace sf::gpu {

std::string nvshmem_version_string() {
  int major = 0, minor = 0, patch = 0;
  nvshmemx_vendor_get_version_info(&major, &minor, &patch);  // the loaded host library's (no initialization needed)
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

Status nvshmem_initialize(int rank, int world_size, size_t heap_bytes, bool across_hosts,
                          const std::function<Result<std::string>(const std::string&)>& share_id) {
  // The heap size is read from the environment at initialization; a user's setting wins.
  if (heap_bytes > 0 && !std::getenv("NVSHMEM_SYMMETRIC_SIZE")) {
    setenv("NVSHMEM_SYMMETRIC_SIZE", std::to_string(heap_bytes).c_str(), 1);
  }
  setenv("NVSHMEM_DISABLE_NVLS", "1", 0);  // never NVLink multicast on shared machines (GPU-MACHINES.md)
  nvshmemx_uniqueid_t id = NVSHMEMX_UNIQUEID_INITIALIZER;
  if (rank == 0) {
    if (int rc = nvshmemx_get_uniqueid(&id); rc != 0) {
      return backend_error("nvshmemx_get_uniqueid failed (" + std::to_string(rc) + ")");
    }
  }
  SF_ASSIGN_OR_RETURN(std::string shared,
                      share_id(rank == 0 ? std::string(reinterpret_cast<const char*>(&id), sizeof id) : ""));
  if (shared.size() != sizeof id) {
    return backend_error("NVSHMEM unique id from rank 0 has " + std::to_string(shared.size()) + " bytes, expected " +
                         std::to_string(sizeof id) + " (different NVSHMEM versions on the ranks?)");
  }
  std::memcpy(&id, shared.data(), sizeof id);
  nvshmemx_init_attr_t attr = NVSHMEMX_INIT_ATTR_INITIALIZER;
  if (int rc = nvshmemx_set_attr_uniqueid_args(rank, world_size, &id, &attr); rc != 0) {
    return backend_error("nvshmemx_set_attr_uniqueid_args failed (" + std::to_string(rc) + ")");
  }
  // The symmetric heap is reserved here: a heap larger than the GPU's free memory is the usual cause of a failure,
  // so the message gives both (NVSHMEM's own says little more than a return code). A fixed heap that cannot fit
  // is refused before NVSHMEM starts, which would exit the process itself (nvshmem_heap.h).
  size_t free_bytes = 0, total_bytes = 0;
  const bool have_free = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  if (have_free) {
    const std::string misfit = fixed_heap_misfit(std::getenv("NVSHMEM_SYMMETRIC_SIZE"), free_bytes, total_bytes);
    if (!misfit.empty()) return Status(ErrorCode::kOutOfMemory, "rank " + std::to_string(rank) + ": " + misfit);
  }
  const std::string remote_hint =
      "The job spans hosts: NVSHMEM also needs a remote transport between them (InfiniBand or RoCE through its ibrc, "
      "ibgda or ucx transport; NVSHMEM_REMOTE_TRANSPORT chooses), or run the two-sided (NCCL) layers "
      "(gpu-attention --transports two-sided)";
  // NVSHMEM exits the process itself when no transport reaches every PE: our error below would never print. It may
  // also return from nvshmemx_init_attr with that part deferred to its first use (seen: 3.4.5 with P2P off), so
  // the note stays armed over a first barrier that finishes the initialization.
  const ExitNote exit_note("[rank " + std::to_string(rank) + "] NVSHMEM " + nvshmem_version_string() +
                           " ended the process during its initialization (nvshmemx_init_attr); its own lines above "
                           "say why ('Unable to initialize any transports': no transport reaches every rank). " +
                           (across_hosts ? remote_hint : "On one host NVSHMEM joins the GPUs by P2P (is "
                                                         "NVSHMEM_DISABLE_P2P set?)") + ".");
  if (int rc = nvshmemx_init_attr(NVSHMEMX_INIT_WITH_UNIQUEID, &attr); rc != 0) {
    const char* heap = std::getenv("NVSHMEM_SYMMETRIC_SIZE");
    return Status(ErrorCode::kBackendError,
                  "nvshmemx_init_attr failed (" + std::to_string(rc) + ") on rank " + std::to_string(rank) +
                      " with a symmetric heap of NVSHMEM_SYMMETRIC_SIZE=" + (heap ? heap : "NVSHMEM's default") +
                      (have_free ? " and " + std::to_string(free_bytes >> 20) + " MiB free of the GPU's " +
                                       std::to_string(total_bytes >> 20) + " MiB"
                                 : std::string()) +
                      " (a heap larger than the free memory fails here); NVSHMEM " + nvshmem_version_string() +
                      " (NVSHMEM_DEBUG=INFO for details)" + (across_hosts ? ". " + remote_hint : std::string()));
  }
  nvshmem_barrier_all();
  if (nvshmemx_init_status() < NVSHMEM_STATUS_IS_INITIALIZED)
    return backend_error("rank " + std::to_string(rank) + ": NVSHMEM " + nvshmem_version_string() +
                         " did not finish its initialization (status " + std::to_string(nvshmemx_init_status()) +
                         "; NVSHMEM_DEBUG=INFO for details)" + (across_hosts ? ". " + remote_hint : std::string()));
  if (nvshmem_my_pe() != rank || nvshmem_n_pes() != world_size) {
    return backend_error("NVSHMEM numbered this process PE " + std::to_string(nvshmem_my_pe()) + " of " +
                         std::to_string(nvshmem_n_pes()) + ", but the launcher says rank " + std::to_string(rank) +
                         " of " + std::to_string(world_size));
  }
  return Status::ok();
}

void nvshmem_finalize_process() { nvshmem_finalize(); }

NvshmemComm::NvshmemComm(const Topology& topo, int rank, GpuStreams* streams, EmulatedLinks* links,
                         const EmulationSettings& emu, NcclComm* two_sided)
    : topo_(topo), rank_(rank), streams_(streams), links_(links), emu_(emu), two_sided_(two_sided) {}

NvshmemComm::~NvshmemComm() {
  // nvshmem_free and nvshmem_team_destroy are collective; every rank destroys its comms, and so its teams (the
  // same keys everywhere), in the same order.
  for (const auto& [key, team] : teams_)
    if (team != NVSHMEM_TEAM_INVALID) nvshmem_team_destroy(team);
  if (signals_) nvshmem_free(signals_);
}

Result<bool> on_off_from_env(const char* name) {
  SF_ASSIGN_OR_RETURN(const int off, env_choice(name, {"on", "off"}));
  return off == 0;
}

Result<bool> emulated_booking_at_post() {
  SF_ASSIGN_OR_RETURN(const int post, env_choice("SF_EMULATED_BOOKING", {"lane", "post"}));
  return post == 1;
}

Status NvshmemComm::init() {
  SF_ASSIGN_OR_RETURN(pipeline_, on_off_from_env("SF_NVSHMEM_PIPELINE"));
  SF_ASSIGN_OR_RETURN(landed_flags_, on_off_from_env("SF_LANDED_FLAGS"));
  SF_ASSIGN_OR_RETURN(book_at_post_, emulated_booking_at_post());
  SF_ASSIGN_OR_RETURN(const int free_order, env_choice("SF_NVSHMEM_POST_ORDER", {"issue", "free"}));
  post_in_order_ = free_order == 0;
  SF_ASSIGN_OR_RETURN(const int team, env_choice("SF_NVSHMEM_GROUP_BARRIER", {"signals", "team"}));
  team_barriers_ = team == 1;
  const size_t n = 2 * static_cast<size_t>(topo_.world_size());
  {
    Watchdog::ScopedOp op(streams_->watchdog(), "nvshmem_calloc of the barrier signals");
    signals_ = static_cast<uint64_t*>(nvshmem_calloc(n, sizeof(uint64_t)));
  }
  if (!signals_) return Status(ErrorCode::kOutOfMemory, "nvshmem_calloc of the barrier signals failed");
  for (auto& e : expected_) e.assign(static_cast<size_t>(topo_.world_size()), 0);
  return Status::ok();
}

// NVSHMEM's host-side collectives (nvshmem_malloc/calloc's barrier, team splits) may not run beside its on-stream
// collectives: a barrier still in flight on a lane and the host's own barrier interleave in a different order on
// different ranks and both break (seen in the gpu2 exchange test, session 28). So the streams drain first.
Status NvshmemComm::before_host_collective(const char* what) { return streams_->synchronize(what); }

Result<SymmetricBuffer> NvshmemComm::alloc_symmetric(size_t bytes) {
  SF_RETURN_IF_ERROR(before_host_collective("alloc_symmetric"));
  SymmetricBuffer b;
  b.bytes = bytes;
  b.id = next_id_++;
  Watchdog::ScopedOp op(streams_->watchdog(), "nvshmem_malloc of " + std::to_string(bytes) + " B (collective)");
  b.local = nvshmem_malloc(bytes == 0 ? 16 : bytes);
  if (!b.local) {
    // Where NVSHMEM grows its heap on demand (CUDA VMM, the default between P2P GPUs) NVSHMEM_SYMMETRIC_SIZE is no
    // limit and the GPU's memory runs out first; with a fixed heap (NVSHMEM_DISABLE_CUDA_VMM=1) the heap's size is.
    const char* heap = std::getenv("NVSHMEM_SYMMETRIC_SIZE");
    size_t free_bytes = 0, total_bytes = 0;
    const bool have_free = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    return Status(ErrorCode::kOutOfMemory,
                  "nvshmem_malloc of " + std::to_string(bytes >> 20) + " MiB failed on rank " +
                      std::to_string(rank_) + ": symmetric heap exhausted (NVSHMEM_SYMMETRIC_SIZE=" +
                      (heap ? heap : "default") + ")" +
                      (have_free ? "; " + std::to_string(free_bytes >> 20) + " of the GPU's " +
                                       std::to_string(total_bytes >> 20) + " MiB free"
                                 : std::string()));
  }
  return b;
}

void* NvshmemComm::peer_address(const SymmetricBuffer& buf, int peer) {
  if (buf.local == nullptr || peer < 0 || peer >= topo_.world_size() || topo_.link(rank_, peer) != LinkClass::kIntra)
    return nullptr;
  return nvshmem_ptr(buf.local, peer);
}

Status NvshmemComm::free_symmetric(SymmetricBuffer& buf) {
  if (buf.local) {
    SF_RETURN_IF_ERROR(streams_->synchronize("free_symmetric"));
    Watchdog::ScopedOp op(streams_->watchdog(), "nvshmem_free (collective)");
    nvshmem_free(buf.local);
  }
  buf = SymmetricBuffer{};
  return Status::ok();
}

Status NvshmemComm::check_access(const SymmetricBuffer& b, size_t offset, size_t bytes, int peer,
                                 const char* op) const {
  if (peer < 0 || peer >= topo_.world_size()) {
    return invalid_argument(std::string(op) + ": peer " + std::to_string(peer) + " is not a rank");
  }
  if (!b.local || offset + bytes > b.bytes) {
    return invalid_argument(std::string(op) + ": bytes [" + std::to_string(offset) + ", " +
                            std::to_string(offset + bytes) + ") outside the symmetric buffer of " +
                            std::to_string(b.bytes) + " B");
  }
  return Status::ok();
}

Result<uint32_t> NvshmemComm::begin_transfer(int peer, LinkDirection dir, size_t bytes, Lane lane, bool* emulate,
                                             cudaStream_t* stream) {
  SF_RETURN_IF_ERROR(streams_->order_after_compute(lane));
  const bool aside = posted_aside(peer);
  if (!aside) SF_RETURN_IF_ERROR(streams_->settle(lane));
  *emulate = emu_.enabled() && topo_.link(rank_, peer) == LinkClass::kInter;
  // The kernel clock books and holds with one-thread kernels: from here on the lane's handles need SMs.
  if (*emulate && std::strcmp(links_->clock_name(), "kernel") == 0) lane_uses_sms_[static_cast<int>(lane)] = true;
  // Booked on our side and the peer's (one-sided, the peer's NIC takes no part otherwise) in the lane's order, as
  // issued: the NIC holds the layer's transfers at once, as Algorithm 1 issues every pull before waiting for any.
  // The code posts at most two at a time (one per side stream). Booked where they are posted instead
  // (SF_EMULATED_BOOKING=post), the strict FIFOs of nic_board.h leave an ingress idle whenever both of its
  // transfers wait for sources busy with other ranks, where a real NIC would share its bandwidth: 0.74-1.03x
  // (bench/sp/TRACES.md, session 21). Posted in issue order (post_in_order_, session 22), Flux S=16384 read
  // 1.04-1.10x faster on 4x1 and 1.01-1.10x on 2x2 than posted as each side stream came free (level at 36864).
  const bool book_on_side = aside && book_at_post_;
  uint32_t slot = 0;
  if (*emulate && !book_on_side) {
    SF_ASSIGN_OR_RETURN(slot, links_->book(streams_->lane(lane), dir, bytes, emu_, peer));
  }
  if (aside) {
    SF_ASSIGN_OR_RETURN(*stream, streams_->begin_side(lane, post_in_order_));
  } else {
    *stream = streams_->lane(lane);
  }
  if (*emulate && book_on_side) {
    SF_ASSIGN_OR_RETURN(slot, links_->book(*stream, dir, bytes, emu_, peer));
  }
  if (aside) SF_RETURN_IF_ERROR(streams_->mark_posted(lane, *stream, post_in_order_));
  return slot;
}

Result<Handle> NvshmemComm::end_transfer(int peer, size_t bytes, Lane lane, cudaStream_t stream, bool emulate,
                                         uint32_t slot, const char* what, uint64_t* signal, uint64_t value) {
  SF_CUDA_LAUNCH_RETURN(what);
  if (emulate) SF_RETURN_IF_ERROR(links_->hold(stream, slot));
  if (signal != nullptr) {
    if (void* word = nvshmem_ptr(signal, peer)) {
      // A GPU whose memory is mapped here: a stream write, after the data (it fences). NVSHMEM's own SET copies
      // the value from pageable host memory, which blocks this thread until the stream gets there (until the
      // emulated transfer ends): 0.97x on 2x1 at Flux S=16384 (2 x H200, session 28).
      SF_RETURN_IF_ERROR(driver_status(cuStreamWriteValue64(reinterpret_cast<CUstream>(stream),
                                                            reinterpret_cast<CUdeviceptr>(word), value, 0),
                                       "put_signal: the peer's signal word (cuStreamWriteValue64)"));
    } else {  // another node: NVSHMEM posts it from a kernel, so the lane's later handles may need an SM
      lane_uses_sms_[static_cast<int>(lane)] = true;
      nvshmemx_signal_op_on_stream(signal, value, NVSHMEM_SIGNAL_SET, peer, stream);
      SF_CUDA_LAUNCH_RETURN("nvshmemx_signal_op_on_stream");
    }
  }
  count(peer, bytes);
  SF_ASSIGN_OR_RETURN(Handle h, stream == streams_->lane(lane) ? streams_->record(lane)
                                                               : streams_->record_side(lane, stream));
  // A contiguous transfer between GPUs of one host is a copy-engine copy (NVSHMEM's P2P path: cudaMemcpyAsync),
  // the emulated link's host clock holds with stream memory operations, and the lane's barriers are waited for
  // by the compute stream where they are issued: nothing before this handle needs an SM unless the lane carried
  // NCCL's kernels or the kernel clock's.
  if (!lane_uses_sms_[static_cast<int>(lane)]) streams_->mark_sm_free(h);
  return h;
}

bool NvshmemComm::flaggable(const std::vector<std::vector<Handle>>& groups) const {
  bool flag = landed_flags_, pending = false;
  for (const std::vector<Handle>& hs : groups)
    for (Handle h : hs) {
      flag = flag && streams_->sm_free(h);
      pending = pending || h.id >= 0;
    }
  return flag && pending;
}

Result<LandedFlag> NvshmemComm::landed_flag_impl(const std::vector<Handle>& hs) {
  if (!flaggable({hs})) return Comm::landed_flag_impl(hs);
  return streams_->flag_when_done(hs);
}

Result<std::vector<LandedFlag>> NvshmemComm::landed_steps_impl(const std::vector<LandedStep>& order, int num_flags,
                                                               int32_t heads_per_step) {
  std::vector<std::vector<Handle>> ops;
  for (const LandedStep& w : order) ops.push_back(w.ops);
  if (!flaggable(ops)) return Comm::landed_steps_impl(order, num_flags, heads_per_step);
  SF_ASSIGN_OR_RETURN(std::vector<LandedFlag> flags, streams_->flag_steps(order, num_flags));
  for (LandedFlag& f : flags) f.heads_per_step = heads_per_step;
  return flags;
}

Result<Handle> NvshmemComm::put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src,
                                size_t bytes, Lane lane) {
  SF_RETURN_IF_ERROR(check_access(dst, dst_offset, bytes, peer, "put"));
  if (bytes == 0) return Handle{};
  bool emulate = false;
  cudaStream_t stream = nullptr;
  SF_ASSIGN_OR_RETURN(uint32_t slot, begin_transfer(peer, LinkDirection::kEgress, bytes, lane, &emulate, &stream));
  nvshmemx_putmem_on_stream(static_cast<char*>(dst.local) + dst_offset, src, bytes, peer, stream);
  return end_transfer(peer, bytes, lane, stream, emulate, slot, "nvshmemx_putmem_on_stream");
}

Result<SymmetricBuffer> NvshmemComm::alloc_signals(size_t words) {
  SF_RETURN_IF_ERROR(before_host_collective("alloc_signals"));
  SymmetricBuffer b;
  b.bytes = words * sizeof(uint64_t);
  b.id = next_id_++;
  Watchdog::ScopedOp op(streams_->watchdog(), "nvshmem_calloc of " + std::to_string(words) + " signal words");
  b.local = nvshmem_calloc(words == 0 ? 1 : words, sizeof(uint64_t));  // zero everywhere once it returns
  if (!b.local) return Status(ErrorCode::kOutOfMemory, "nvshmem_calloc of " + std::to_string(words) +
                                                           " signal words failed on rank " + std::to_string(rank_));
  return b;
}

Result<Handle> NvshmemComm::put_signal(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src,
                                       size_t bytes, const SymmetricBuffer& signals, size_t word, uint64_t value,
                                       Lane lane) {
  SF_RETURN_IF_ERROR(check_access(dst, dst_offset, bytes, peer, "put_signal"));
  SF_RETURN_IF_ERROR(check_signal_word("put_signal", signals, word));
  uint64_t* signal = static_cast<uint64_t*>(signals.local) + word;
  bool emulate = false;
  cudaStream_t stream = nullptr;
  SF_ASSIGN_OR_RETURN(uint32_t slot, begin_transfer(peer, LinkDirection::kEgress, bytes, lane, &emulate, &stream));
  if (emulate || bytes == 0 || nvshmem_ptr(signal, peer) != nullptr) {
    // The data, the emulated link's hold if any, then the word (end_transfer).
    if (bytes) nvshmemx_putmem_on_stream(static_cast<char*>(dst.local) + dst_offset, src, bytes, peer, stream);
    return end_transfer(peer, bytes, lane, stream, emulate, slot, "nvshmemx_putmem_on_stream (put_signal)", signal,
                        value);
  }
  // Another node: NVSHMEM orders the word after the data (from a kernel: the lane's later handles may need an SM).
  lane_uses_sms_[static_cast<int>(lane)] = true;
  nvshmemx_putmem_signal_on_stream(static_cast<char*>(dst.local) + dst_offset, src, bytes, signal, value,
                                   NVSHMEM_SIGNAL_SET, peer, stream);
  return end_transfer(peer, bytes, lane, stream, emulate, slot, "nvshmemx_putmem_signal_on_stream");
}

Status NvshmemComm::wait_signal(const SymmetricBuffer& signals, size_t word, uint64_t value) {
  SF_RETURN_IF_ERROR(check_signal_word("wait_signal", signals, word));
  // A one-thread kernel on the compute stream (after both call lanes, work_stream) that spins until the word is
  // there: what follows waits for it, other streams' work keeps its SMs. The watchdog sees a peer that never
  // signals as a stream that never drains.
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, streams_->work_stream());
  nvshmemx_signal_wait_until_on_stream(static_cast<uint64_t*>(signals.local) + word, NVSHMEM_CMP_GE, value, stream);
  SF_CUDA_LAUNCH_RETURN("nvshmemx_signal_wait_until_on_stream");
  return Status::ok();
}

Result<Handle> NvshmemComm::get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer, size_t bytes,
                                Lane lane) {
  SF_RETURN_IF_ERROR(check_access(src, src_offset, bytes, peer, "get"));
  if (bytes == 0) return Handle{};
  bool emulate = false;
  cudaStream_t stream = nullptr;
  SF_ASSIGN_OR_RETURN(uint32_t slot, begin_transfer(peer, LinkDirection::kIngress, bytes, lane, &emulate, &stream));
  nvshmemx_getmem_on_stream(dst, static_cast<const char*>(src.local) + src_offset, bytes, peer, stream);
  return end_transfer(peer, bytes, lane, stream, emulate, slot, "nvshmemx_getmem_on_stream");
}

Result<Handle> NvshmemComm::get_strided(void* dst, size_t dst_pitch, const SymmetricBuffer& src, size_t src_offset,
                                        size_t src_pitch, size_t width, size_t rows, int peer, Lane lane) {
  SF_RETURN_IF_ERROR(check_strided("get_strided", width, src_pitch, dst_pitch));
  const size_t span = rows == 0 || width == 0 ? 0 : (rows - 1) * src_pitch + width;
  SF_RETURN_IF_ERROR(check_access(src, src_offset, span, peer, "get_strided"));
  const char* from = static_cast<const char*>(peer_address(src, peer));
  if (from == nullptr)
    return unimplemented("get_strided: rank " + std::to_string(peer) + "'s memory is not mapped on rank " +
                         std::to_string(rank_) + " (another machine): strided reads are for peers of one machine");
  if (span == 0) return Handle{};
  bool emulate = false;
  cudaStream_t stream = nullptr;
  SF_ASSIGN_OR_RETURN(uint32_t slot,
                      begin_transfer(peer, LinkDirection::kIngress, rows * width, lane, &emulate, &stream));
  // Between GPUs of one machine the copy engines move a pitched 2D copy in one operation: no SM, as a getmem.
  SF_CUDA_RETURN(cudaMemcpy2DAsync(dst, dst_pitch, from + src_offset, src_pitch, width, rows,
                                   cudaMemcpyDeviceToDevice, stream));
  return end_transfer(peer, rows * width, lane, stream, emulate, slot, "cudaMemcpy2DAsync (get_strided)");
}

Status NvshmemComm::prepare_barriers_impl(const std::vector<std::vector<int>>& groups) {
  if (!team_barriers_) return Status::ok();
  for (const std::vector<int>& group : groups) {
    std::vector<int> sorted = group;
    std::sort(sorted.begin(), sorted.end());
    const int n = static_cast<int>(sorted.size());
    if (n == topo_.world_size()) continue;  // the whole world: nvshmemx_barrier_all_on_stream
    const int stride = n > 1 ? sorted[1] - sorted[0] : 1;
    bool even = true;
    for (int i = 1; i < n; ++i) even = even && sorted[i] - sorted[i - 1] == stride;
    if (!even) continue;  // not a strided team: the signal barrier
    for (int lane = 0; lane < 2; ++lane) {
      auto key = std::make_pair(sorted, lane);
      if (teams_.count(key)) continue;  // made by an earlier call (every rank has it too)
      SF_RETURN_IF_ERROR(before_host_collective("prepare_barriers"));
      nvshmem_team_t team = NVSHMEM_TEAM_INVALID;
      int rc = 0;
      {
        Watchdog::ScopedOp op(streams_->watchdog(), "nvshmem_team_split_strided of a " + std::to_string(n) +
                                                        "-rank group (collective over the world)");
        rc = nvshmem_team_split_strided(NVSHMEM_TEAM_WORLD, sorted[0], stride, n, nullptr, 0, &team);
      }
      if (rc != 0)
        return backend_error("nvshmem_team_split_strided (start " + std::to_string(sorted[0]) + ", stride " +
                             std::to_string(stride) + ", " + std::to_string(n) + " PEs) failed on rank " +
                             std::to_string(rank_) + " with " + std::to_string(rc) + " after " +
                             std::to_string(teams_.size()) + " teams (NVSHMEM_MAX_TEAMS caps them; "
                             "SF_NVSHMEM_GROUP_BARRIER=signals needs none)");
      teams_.emplace(std::move(key), team);
    }
  }
  return Status::ok();
}

Status NvshmemComm::barrier_impl(const std::vector<int>& group, Lane lane) {
  bool member = false, across = false, whole_world = static_cast<int>(group.size()) == topo_.world_size();
  for (size_t i = 0; i < group.size(); ++i) {
    const int r = group[i];
    if (r < 0 || r >= topo_.world_size()) return invalid_argument("barrier: " + std::to_string(r) + " is not a rank");
    member = member || r == rank_;
    across = across || topo_.link(rank_, r) == LinkClass::kInter;
    whole_world = whole_world && r == static_cast<int>(i);
  }
  if (!member) return invalid_argument("barrier: rank " + std::to_string(rank_) + " is not in the group");
  SF_RETURN_IF_ERROR(streams_->order_after_compute(lane));
  SF_RETURN_IF_ERROR(streams_->settle(lane));  // what the barrier tells the peers includes the side streams' transfers
  cudaStream_t stream = streams_->lane(lane);
  Watchdog::ScopedOp op(streams_->watchdog(), "NVSHMEM barrier of " + std::to_string(group.size()) + " ranks");
  int32_t team = NVSHMEM_TEAM_INVALID;
  if (!whole_world && !teams_.empty()) {
    std::vector<int> sorted = group;
    std::sort(sorted.begin(), sorted.end());
    const auto it = teams_.find(std::make_pair(sorted, static_cast<int>(lane)));
    if (it != teams_.end()) team = it->second;
  }
  if (whole_world) {
    nvshmemx_barrier_all_on_stream(stream);  // includes the quiet
  } else if (team != NVSHMEM_TEAM_INVALID) {
    nvshmemx_barrier_on_stream(team, stream);  // includes the quiet
  } else {
    nvshmemx_quiet_on_stream(stream);
    uint64_t* sig = signals_ + static_cast<size_t>(lane) * topo_.world_size();
    for (int r : group) {
      if (r != rank_) nvshmemx_signal_op_on_stream(sig + rank_, 1, NVSHMEM_SIGNAL_ADD, r, stream);
    }
    auto& expected = expected_[static_cast<int>(lane)];
    for (int r : group) {
      if (r == rank_) continue;
      const uint64_t want = ++expected[static_cast<size_t>(r)];
      nvshmemx_signal_wait_until_on_stream(sig + r, NVSHMEM_CMP_GE, want, stream);
    }
  }
  SF_CUDA_LAUNCH_RETURN("NVSHMEM barrier on stream");
  if (across && emu_.enabled()) SF_RETURN_IF_ERROR(links_->hold_latency(stream, emu_));
  SF_ASSIGN_OR_RETURN(Handle h, streams_->record(lane));
  // The compute stream waits for the barrier here, so no kernel issued after it can hold the SMs that the
  // barrier's kernels need: landed flags of later transfers on this lane rely on that (end_transfer).
  return streams_->wait(h);
}

Result<Handle> NvshmemComm::send(int peer, const void* data, size_t bytes, Lane lane) {
  if (!two_sided_) return unimplemented("send: this nvshmem runtime was made without NCCL for two-sided messages");
  lane_uses_sms_[static_cast<int>(lane)] = true;  // NCCL's kernels
  SF_RETURN_IF_ERROR(streams_->settle(lane));
  SF_ASSIGN_OR_RETURN(Handle h, two_sided_->transfer(true, peer, const_cast<void*>(data), bytes, lane));
  count(peer, bytes);
  return h;
}

Result<Handle> NvshmemComm::recv(int peer, void* data, size_t bytes, Lane lane) {
  if (!two_sided_) return unimplemented("recv: this nvshmem runtime was made without NCCL for two-sided messages");
  lane_uses_sms_[static_cast<int>(lane)] = true;
  SF_RETURN_IF_ERROR(streams_->settle(lane));
  return two_sided_->transfer(false, peer, data, bytes, lane);
}

Status NvshmemComm::begin_batch() { return two_sided_ ? two_sided_->begin_batch() : Status::ok(); }
Status NvshmemComm::end_batch() { return two_sided_ ? two_sided_->end_batch() : Status::ok(); }

}  // namespace sf::gpu
