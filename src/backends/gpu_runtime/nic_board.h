// The emulated NICs of every GPU of one host (emulated_link.h), shared by the host's rank processes: who is
// sending what through each GPU's egress and ingress, and at what rate.
//
// Why shared: a one-sided transfer crosses two NICs, its initiator's and its peer's. A get moves the peer's data
// out of the peer's egress into our ingress; a put, ours into the peer's. Booked on the initiator's side alone,
// two ranks pulling from one GPU at once would each get the full bandwidth out of it, twice what its NIC sends
// (measured: gpu-links' fan-in). Two-sided transfers need no such thing: sender and receiver book their own side.
//
// The model: each transfer is a flow through one or two queues (rank, direction), needing its duration (bytes
// over the setting) of moving time. Every queue serves its flows in the order they were booked, one at a time,
// but holds nothing for a flow that its other queue still blocks: in booking order, a flow moves if neither of
// its queues is taken by an earlier moving flow. A single queue is thus a FIFO, and a flow waiting for a busy
// peer leaves its own queue to later flows. (Reserving future time on both queues at booking left queues idle
// while a flow waited for its other one, the processes booking in any order: SFU-NVSHMEM on four emulated
// machines ran up to 1.5x its transfer time, bench/sp/results/h100x4-2026-11-28-far-end/.)
//
// Another model, for comparison (SF_EMULATED_NIC=fair, NicSharing::kFair): flows between the same two queues (one
// connection, a queue pair) go one at a time in booking order, and every queue shares its bandwidth equally
// between the connections through it (max-min fair rates, each flow at the rate of its tighter queue), as a NIC
// serving RDMA reads from several queue pairs in turn would. The FIFO model lets a queue run ahead on the order in
// which ranks happened to book; under sharing every connection moves at once, each more slowly (bench/sp/TRACES.md,
// session 21).
//
// Plain C++ over one block of memory: rank 0 creates it in POSIX shared memory, the others map it by name
// (create_shared, open_shared); a process alone, or ranks on several hosts, use a private one (the far end is
// then not modeled). A spin lock guards it: bookings are a few per layer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "streamfusion/status.h"

namespace sf::gpu {

// How a queue divides its bandwidth between the flows through it.
enum class NicSharing : uint32_t {
  kFifo = 0,  // one flow at a time, in booking order (the default)
  kFair = 1,  // equal shares, max-min fair across both queues of a flow
};

class NicBoard {
 public:
  static constexpr int kMaxRanks = 64;
  static constexpr int kMaxFlows = 4096;  // in flight at once, over all ranks
  static constexpr int kNone = -1;

  ~NicBoard();
  NicBoard(const NicBoard&) = delete;
  NicBoard& operator=(const NicBoard&) = delete;

  // In this process's memory (tests; a process alone; ranks on several hosts).
  static Result<std::unique_ptr<NicBoard>> create_private(int ranks, NicSharing sharing = NicSharing::kFifo);
  // In shared memory under `name` ("/..."), zeroed: rank 0, before the others open it. The sharing model is the
  // creator's: open_shared checks that the opener expects the same.
  static Result<std::unique_ptr<NicBoard>> create_shared(const std::string& name, int ranks,
                                                         NicSharing sharing = NicSharing::kFifo);
  static Result<std::unique_ptr<NicBoard>> open_shared(const std::string& name, int ranks,
                                                       NicSharing sharing = NicSharing::kFifo);
  // SF_EMULATED_NIC: "fifo" or unset, or "fair"; anything else is an error.
  static Result<NicSharing> sharing_from_env();
  // Removes the name (the mappings stay valid): once every rank has opened it, so that nothing outlives the job.
  static void unlink(const std::string& name);

  // A transfer of `duration_ns` (at full bandwidth) through queue (rank, fifo) and, unless far_rank is kNone,
  // (far_rank, far_fifo), from `now_ns` on. Returns its flow id, or kNone when kMaxFlows are in flight.
  int start(uint64_t now_ns, int rank, int fifo, int far_rank, int far_fifo, uint64_t duration_ns);
  // Brings every flow up to `now_ns`.
  void advance_to(uint64_t now_ns);
  // Whether a flow of ours has finished (as far as the flows were brought), and if so when it started moving and
  // when it finished; a finished flow is freed.
  bool finished(int flow, uint64_t* started_ns, uint64_t* done_ns);

 private:
  static constexpr uint64_t kNotYet = UINT64_MAX;
  struct Flow {
    uint32_t state;  // 0 free, 1 moving or waiting, 2 finished
    int32_t queue[2];  // rank * 2 + fifo; -1 none
    uint64_t order;    // booking order: earlier flows take their queues first
    uint64_t left_ns;  // moving time still needed (kFifo)
    double fair_left_ns;  // the same under kFair, where flows move at fractional rates
    uint64_t started_ns, done_ns;
  };
  struct Shared {
    std::atomic<uint32_t> lock;
    uint32_t ranks;
    NicSharing sharing;
    uint64_t now_ns;  // how far the flows have been brought
    uint64_t next_order;
    int32_t high;     // flows [0, high) may be in use
    Flow flows[kMaxFlows];
  };
  static_assert(std::atomic<uint32_t>::is_always_lock_free, "the lock must work across processes");

  NicBoard(Shared* s, bool mapped) : s_(s), mapped_(mapped) {}
  static Status check_ranks(int ranks);
  void lock();
  void unlock();
  void advance(uint64_t now_ns);  // under the lock
  void advance_fifo(uint64_t now_ns);
  void advance_fair(uint64_t now_ns);

  Shared* s_;
  bool mapped_;  // munmap at destruction; else delete
};

}  // namespace sf::gpu
