// The emulated NICs of every GPU of one host (emulated_link.h), shared by the host's rank processes: each GPU's
// egress and ingress queue, as the time its last booked transfer ends.
//
// Why shared: a one-sided transfer crosses two NICs, its initiator's and its peer's. A get moves the peer's data
// out of the peer's egress into our ingress; a put, ours into the peer's. Booked on the initiator's queue alone,
// the peer's side would be free: two ranks pulling from one GPU at once would each get the full bandwidth out of
// it, twice what its NIC sends. So the initiator books both queues together and the transfer starts when both
// are free. (Two-sided transfers need no such thing: sender and receiver each book their own side.)
//
// Plain C++ over a small block of memory: rank 0 creates it in POSIX shared memory, the others map it by name
// (create_shared, open_shared); a process alone, or ranks on several hosts, use a private one (the far end is
// then not modeled). A spin lock guards the tails: bookings are a few per layer and take nanoseconds.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "streamfusion/status.h"

namespace sf::gpu {

class NicBoard {
 public:
  static constexpr int kMaxRanks = 64;
  static constexpr int kNone = -1;

  ~NicBoard();
  NicBoard(const NicBoard&) = delete;
  NicBoard& operator=(const NicBoard&) = delete;

  // In this process's memory (tests; a process alone; ranks on several hosts).
  static Result<std::unique_ptr<NicBoard>> create_private(int ranks);
  // In shared memory under `name` ("/..."), zeroed: rank 0, before the others open it.
  static Result<std::unique_ptr<NicBoard>> create_shared(const std::string& name, int ranks);
  static Result<std::unique_ptr<NicBoard>> open_shared(const std::string& name, int ranks);
  // Removes the name (the mappings stay valid): once every rank has opened it, so that nothing outlives the job.
  static void unlink(const std::string& name);

  // Books `duration_ns` on queue (rank, fifo) and, unless far_rank is kNone, on (far_rank, far_fifo) too, from
  // `now_ns` or when the later of them is free. Returns the start; both queues are busy until start + duration.
  uint64_t book(uint64_t now_ns, int rank, int fifo, int far_rank, int far_fifo, uint64_t duration_ns);
  // Empties rank's two queues.
  void reset(int rank);
  int ranks() const { return ranks_; }

 private:
  struct Shared {
    std::atomic<uint32_t> lock;
    uint32_t ranks;
    uint64_t tail_ns[kMaxRanks][2];
  };
  static_assert(std::atomic<uint32_t>::is_always_lock_free, "the lock must work across processes");

  NicBoard(Shared* s, int ranks, bool mapped) : s_(s), ranks_(ranks), mapped_(mapped) {}
  static Status check_ranks(int ranks);

  Shared* s_;
  int ranks_;
  bool mapped_;  // munmap at destruction; else delete
};

}  // namespace sf::gpu
