// Comm: the communication interface every sequence-parallel algorithm is written against, once.
//
// SPMD: every rank runs the same algorithm code with its own Comm. All operations are asynchronous and
// return a Handle; `wait(h)` makes the transfer's result visible to the compute and communication issued
// afterwards on this rank (a CPU backend blocks; a GPU backend makes the compute stream wait on an event).
// Every operation is ordered after all compute issued before it on this rank, so data computed earlier may
// be sent (unless issued detached: begin_detached). Until its handle is waited on (or a barrier completed it), an operation's source must stay
// unchanged and its destination unread.
//
// Two styles, both real in every backend:
//  - two-sided: send/recv between world ranks, matched in issue order per (sender, receiver) pair like NCCL;
//    batch them between begin_batch()/end_batch() when both directions are in flight (NCCL group semantics).
//  - one-sided: put/get on symmetric buffers (allocated collectively, same size on every rank) of a peer,
//    ordered by barriers. A barrier first completes this rank's outstanding one-sided operations issued on
//    the same lane (quiet), then returns once every member has arrived.
// Bytes are counted per link class at the rank that *initiates* a one-sided operation or *sends* a two-sided
// message, so the sum over ranks is the total traffic and each rank's count is its per-GPU volume.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "streamfusion/landed_flag.h"
#include "streamfusion/status.h"
#include "streamfusion/topology.h"

namespace sf {

// Which communication stream carries an operation on GPU backends (paper Appendix A): the ring's traffic
// runs on its own stream so it never queues behind inter-machine Torus transfers.
enum class Lane : uint8_t { kMain = 0, kRing = 1 };

struct Handle {
  int64_t id = -1;  // backend-specific; -1 = already complete
};

// get_strided's own check of its geometry, shared by the backends: runs no wider than either pitch.
inline Status check_strided(const char* op, size_t width, size_t src_pitch, size_t dst_pitch) {
  if (width > src_pitch || width > dst_pitch)
    return invalid_argument(std::string(op) + ": runs of " + std::to_string(width) +
                            " bytes overlap with a source pitch of " + std::to_string(src_pitch) +
                            " and a destination pitch of " + std::to_string(dst_pitch) + " bytes");
  return Status::ok();
}

// One write of a step flag (Comm::landed_steps): once `ops` have completed, flag `flag`'s word reaches
// value + `step`, which releases the heads of steps 0..step (a step may jump: one write for several steps).
struct LandedStep {
  int flag = 0;
  int32_t step = 0;
  std::vector<Handle> ops;
};

// landed_steps' own check: heads per step, a flag count the backends can hold, flags in range, each flag written
// at least once and its steps rising.
Status check_landed_steps(const std::vector<LandedStep>& order, int num_flags, int32_t heads_per_step);

// A buffer allocated by every rank of the world in the same collective call, with the same size.
// A peer's instance is addressed by (buffer, peer rank, offset).
struct SymmetricBuffer {
  int32_t id = -1;
  void* local = nullptr;  // this rank's instance
  size_t bytes = 0;
};

// The signal calls' own check: `word` is one of the 64-bit words of `signals` (alloc_signals).
inline Status check_signal_word(const char* op, const SymmetricBuffer& signals, size_t word) {
  if (signals.local == nullptr || word >= signals.bytes / sizeof(uint64_t))
    return invalid_argument(std::string(op) + ": signal word " + std::to_string(word) + " is outside the " +
                            std::to_string(signals.bytes / sizeof(uint64_t)) + " words of its buffer");
  return Status::ok();
}

// Barriers one rank took part in, by the slowest link inside the group: a barrier with a member on another
// machine is one synchronization across machines (the one-sided SFU layer takes two: paper Appendix A).
struct BarrierCounts {
  uint64_t intra = 0, inter = 0;
};

struct LinkBytes {
  std::array<uint64_t, kNumLinkClasses> bytes{};
  uint64_t intra() const { return bytes[0]; }
  uint64_t inter() const { return bytes[1]; }
  LinkBytes& operator+=(const LinkBytes& o) {
    for (int i = 0; i < kNumLinkClasses; ++i) bytes[i] += o.bytes[i];
    return *this;
  }
};

class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const = 0;
  virtual const Topology& topology() const = 0;
  int world_size() const { return topology().world_size(); }

  // ---- memory (device memory on GPU backends). Collective for symmetric buffers.
  virtual Result<SymmetricBuffer> alloc_symmetric(size_t bytes) = 0;
  virtual Status free_symmetric(SymmetricBuffer& buf) = 0;
  // The address at which this rank's kernels reach `peer`'s instance of `buf` with plain loads and stores (GPUs
  // of one machine over NVLink; rank threads of one process), or null where they cannot (another machine, a
  // two-sided backend). Shared work between devices (AttentionProblem::shared) needs it.
  virtual void* peer_address(const SymmetricBuffer& buf, int peer) {
    (void)buf;
    (void)peer;
    return nullptr;
  }

  // ---- two-sided
  virtual Result<Handle> send(int peer, const void* data, size_t bytes, Lane lane = Lane::kMain) = 0;
  virtual Result<Handle> recv(int peer, void* data, size_t bytes, Lane lane = Lane::kMain) = 0;
  virtual Status begin_batch() { return Status::ok(); }
  virtual Status end_batch() { return Status::ok(); }

  // ---- one-sided
  // Writes `bytes` from local `src` into peer's instance of `dst` at `dst_offset`.
  virtual Result<Handle> put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src,
                             size_t bytes, Lane lane = Lane::kMain) = 0;
  // Reads `bytes` from peer's instance of `src` at `src_offset` into local `dst`.
  virtual Result<Handle> get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer,
                             size_t bytes, Lane lane = Lane::kMain) = 0;
  // Reads `rows` runs of `width` bytes from peer's instance of `src`, run i at src_offset + i·src_pitch, into
  // local dst + i·dst_pitch: e.g. some heads' columns of a [rows, H, D] block. One transfer where the backend
  // can: between GPUs of one machine a 2D copy of the copy engines, on rank threads a copy per run. Elsewhere
  // (another machine, a two-sided backend) it refuses; peer_address(src, peer) != null says where it works.
  virtual Result<Handle> get_strided(void* dst, size_t dst_pitch, const SymmetricBuffer& src, size_t src_offset,
                                     size_t src_pitch, size_t width, size_t rows, int peer, Lane lane = Lane::kMain) {
    (void)dst, (void)dst_pitch, (void)src, (void)src_offset, (void)src_pitch, (void)width, (void)rows, (void)lane;
    return unimplemented("get_strided: this backend cannot read strided runs from rank " + std::to_string(peer));
  }
  // ---- arrival signals (one-sided): a put that raises a word at the peer once its data has landed there, and a
  // wait for that word, so that a receiver takes each piece as it lands instead of at the next barrier (NVSHMEM's
  // putmem_signal and signal_wait_until). Backends without them refuse (unimplemented).
  // Collective: `words` 64-bit signal words on every rank, all zero (and zero on every rank before any returns).
  // Freed with free_symmetric.
  virtual Result<SymmetricBuffer> alloc_signals(size_t words) {
    (void)words;
    return unimplemented("alloc_signals: this backend has no arrival signals");
  }
  // As put(), and once its data has landed at `peer`, word `word` of peer's instance of `signals` is set to
  // `value`. The handle completes as put()'s does.
  virtual Result<Handle> put_signal(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src,
                                    size_t bytes, const SymmetricBuffer& signals, size_t word, uint64_t value,
                                    Lane lane = Lane::kMain) {
    (void)dst, (void)dst_offset, (void)src, (void)bytes, (void)signals, (void)word, (void)value, (void)lane;
    return unimplemented("put_signal: this backend has no arrival signals (to rank " + std::to_string(peer) + ")");
  }
  // The compute issued after this call (a CPU backend: the caller, who blocks) waits until word `word` of our
  // instance of `signals` is at least `value`; what a put_signal that set it carried is then visible.
  virtual Status wait_signal(const SymmetricBuffer& signals, size_t word, uint64_t value) {
    (void)signals, (void)word, (void)value;
    return unimplemented("wait_signal: this backend has no arrival signals");
  }

  // All members of `group` (world ranks, this rank among them) meet; completes this rank's earlier
  // one-sided operations on `lane` first. Every member passes the same list in the same order. Counted here,
  // carried out by the backend's barrier_impl.
  Status barrier(const std::vector<int>& group, Lane lane = Lane::kMain);
  Status barrier_all(Lane lane = Lane::kMain);
  // Collective over the world: every rank passes the same groups in the same order (world ranks, each group
  // without repeats; a group need not hold the caller): the groups that barrier() will be given on any rank. A
  // backend may set up each group's own barrier here (NVSHMEM: a team per group and lane, made by splitting the
  // world); barrier() works without it, through the backend's general path. Checks the groups, then
  // prepare_barriers_impl.
  Status prepare_barriers(const std::vector<std::vector<int>>& groups);

  // ---- collectives built from the primitives (backends may override with a native version)
  // All-to-all inside `group` (world ranks, this rank among them): sends[i] go to group[i] and recvs[i] are
  // filled from group[i], piece by piece in order; the entries for this rank itself are ignored (callers place
  // their own data). Sizes may differ per member (ragged sequences). Returns the receive handles.
  struct ConstPiece {
    const void* data;
    size_t bytes;
  };
  struct MutablePiece {
    void* data;
    size_t bytes;
  };
  virtual Result<std::vector<Handle>> all_to_all(const std::vector<int>& group,
                                                 const std::vector<std::vector<ConstPiece>>& sends,
                                                 const std::vector<std::vector<MutablePiece>>& recvs,
                                                 Lane lane = Lane::kMain);

  // ---- completion
  virtual Status wait(Handle h) = 0;
  Status wait_all(const std::vector<Handle>& hs);
  // Instead of wait_all(hs): a flag that a kernel polls (KVChunk::ready), set once every operation of `hs` has
  // completed; the compute stream does not wait for them. Only for data that the flagged calls alone read:
  // later operations are not ordered after `hs` (a relay of the data would have to wait_all first). A backend
  // hands out a flag only where the operations need no SM (copy engines, stream memory operations): a polling
  // kernel holds its SMs, and a transfer that needed one would never run. Everywhere else, and by default, it
  // waits for `hs` here and returns an empty flag. Counted (landed_flags_asked), carried out by landed_flag_impl.
  Result<LandedFlag> landed_flag(const std::vector<Handle>& hs) {
    ++flags_asked_;
    return landed_flag_impl(hs);
  }

  // landed_flag for data that lands in steps of heads (LandedFlag::heads_per_step), one flag per chunk of it
  // (e.g. per ring peer's K/V): `order` lists the flags' writes in the order their operations were issued, so that
  // no write waits for a later transfer; write {f, g, ops} sets flag f's word to value + g once `ops` (and the
  // writes before it) have completed, releasing heads [0, (g+1)·heads_per_step) of chunk f. The caller writes each
  // flag's last step for its last head. Returns num_flags flags (at most kMaxStepFlags). Where the backend hands out
  // no flag it waits for every operation here and returns empty flags. Counted as one flag.
  static constexpr int kMaxStepFlags = 64;
  Result<std::vector<LandedFlag>> landed_steps(const std::vector<LandedStep>& order, int num_flags,
                                               int32_t heads_per_step) {
    ++flags_asked_;
    SF_RETURN_IF_ERROR(check_landed_steps(order, num_flags, heads_per_step));
    return landed_steps_impl(order, num_flags, heads_per_step);
  }

  // ---- ordering
  // Between begin_detached(lane, deps) and end_detached(lane), operations issued on `lane` are ordered after
  // `deps` (handles of this rank's earlier operations) and after each other, but no longer after the compute
  // issued so far: for transfers and barriers that no earlier compute feeds and that would otherwise wait
  // for it. Backends that complete operations as they are issued just wait for `deps`.
  virtual Status begin_detached(Lane lane, const std::vector<Handle>& deps) {
    (void)lane;
    return wait_all(deps);
  }
  virtual Status end_detached(Lane lane) {
    (void)lane;
    return Status::ok();
  }

  // ---- accounting
  const LinkBytes& bytes_moved() const { return bytes_; }
  const BarrierCounts& barriers_taken() const { return barriers_; }
  // landed_flag calls: where the algorithm lets a call start before its data has landed, if the backend can.
  uint64_t landed_flags_asked() const { return flags_asked_; }
  void reset_counters() {
    bytes_ = {};
    barriers_ = {};
    flags_asked_ = 0;
  }

 protected:
  virtual Status barrier_impl(const std::vector<int>& group, Lane lane) = 0;
  virtual Status prepare_barriers_impl(const std::vector<std::vector<int>>& groups) {
    (void)groups;
    return Status::ok();
  }
  virtual Result<LandedFlag> landed_flag_impl(const std::vector<Handle>& hs) {
    SF_RETURN_IF_ERROR(wait_all(hs));
    return LandedFlag{};
  }
  virtual Result<std::vector<LandedFlag>> landed_steps_impl(const std::vector<LandedStep>& order, int num_flags,
                                                            int32_t heads_per_step) {
    (void)heads_per_step;
    for (const LandedStep& w : order) SF_RETURN_IF_ERROR(wait_all(w.ops));
    return std::vector<LandedFlag>(static_cast<size_t>(num_flags));
  }
  void count(int peer, size_t n) {
    if (peer != rank()) bytes_.bytes[static_cast<int>(topology().link(rank(), peer))] += n;
  }

 private:
  LinkBytes bytes_;
  BarrierCounts barriers_;
  uint64_t flags_asked_ = 0;
};

}  // namespace sf
