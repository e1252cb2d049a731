// The host-side clock of the emulated inter-machine links (emulated_link.h), plain C++ so that CPU tests reach it.
//
// Why a host clock: the first emulation booked and held each transfer with one-thread kernels, which need an SM.
// A NIC needs none, so an emulation that competes for SMs (with NCCL's kernels, with a persistent attention call)
// can only make the links look worse than they are. Measured (bench/sp/results/h200x4-2026-11-27-link-clock/):
// beside a call that holds every SM the kernels still got SMs and one-sided transfers landed on time under either
// clock, but two-sided (NCCL) layers on 4 emulated machines ran 1.03-1.15x faster with this one. Here the stream
// only writes and waits on flags (stream memory operations, executed by the GPU's front end without an SM) and a
// host thread keeps the time:
//
//   stream:  write reached[slot] = ticket  →  the real transfer  →  wait until released[slot] == ticket
//   host:    sees reached[slot] == ticket at time t: the transfer joins its FIFO (start = t or when the FIFO is
//            free, end = start + bytes / bandwidth); at end + latency writes released[slot] = ticket
//
// Tickets count up from 1, so a slot's flags never need resetting (a slot is reused kSlots tickets later, with a
// different value). Both lanes of a GPU book on the same two FIFOs (egress, ingress), as they would share a NIC.
// The FIFOs live on a NicBoard (nic_board.h) beside every other GPU's of the host, so that a one-sided transfer
// also goes through its peer's side (a get: the peer's egress) and waits for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nic_board.h"

namespace sf::gpu {

class LinkClock {
 public:
  static constexpr uint32_t kSlots = 1u << 16;
  static constexpr int kNoFifo = -1;  // a latency-only hold: no bandwidth booked
  using Nanoseconds = std::function<uint64_t()>;

  // reached, released: kSlots flags each, written by the GPU (reached) and by this clock (released); they must
  // stay valid while the clock lives. board, rank: where the FIFOs live and which GPU's they are (null: a
  // board of this clock's own with one GPU, rank 0). now: the time in ns (steady_clock unless a test gives its
  // own; ranks sharing a board must share the clock: steady_clock is CLOCK_MONOTONIC, one per host).
  LinkClock(volatile uint32_t* reached, volatile uint32_t* released, NicBoard* board = nullptr, int rank = 0,
            Nanoseconds now = {});
  ~LinkClock();
  LinkClock(const LinkClock&) = delete;
  LinkClock& operator=(const LinkClock&) = delete;

  // Registers a transfer of `duration_ns` on FIFO `fifo` (0 or 1; kNoFifo for latency only), released
  // `latency_ns` after its booked end; with far_rank, also on that GPU's FIFO far_fifo (a one-sided transfer's
  // peer side), starting when both are free. Returns its ticket; its slot is ticket % kSlots.
  uint32_t book(int fifo, uint64_t duration_ns, uint64_t latency_ns, int far_rank = NicBoard::kNone,
                int far_fifo = 0);
  // Starts the thread that polls the flags; without it, poll() drives the clock (tests).
  void start();
  // One pass: books every outstanding ticket whose reached flag is set, releases every booked one that is due.
  // Returns whether any ticket is still outstanding.
  bool poll();
  // Tickets booked on the host and not yet released.
  size_t outstanding() const;
  // From now on nothing is released: every transfer stays held, as over a link that died. For fault tests, which
  // check that a rank waiting on such a transfer is stopped by its watchdog with a message, not left hanging.
  void stall();

  // What happened to one ticket, in the clock's ns (diagnosis: gpu-links --trace). `reached` is when the clock saw
  // the stream get there; `start` and `due` what it booked; `released` when it wrote the release; `resumed` when
  // it saw the stream past its hold (0 if the stream does not say: EmulatedLinks writes the resumed flag only
  // while records are kept).
  struct Record {
    uint32_t ticket;
    int fifo;
    uint64_t reached_ns, start_ns, due_ns, released_ns, resumed_ns;
  };
  // Keeps the records of the next `max` released tickets (0: none, the default), watching `resumed` (kSlots
  // flags, or null) for the moment the stream got past each hold; take_records() hands the records over and
  // starts again.
  void keep_records(size_t max, const volatile uint32_t* resumed = nullptr);
  bool keeping_records() const;
  std::vector<Record> take_records();

 private:
  struct Pending {
    uint32_t ticket;
    int fifo;
    uint64_t duration_ns, latency_ns;
    int far_rank = NicBoard::kNone, far_fifo = 0;
    bool reached = false;
    int flow = NicBoard::kNone;  // on the board, from when the stream reached it until it finished
    bool due = false;            // due_ns known
    uint64_t reached_ns = 0, start_ns = 0, due_ns = 0;
  };
  void run();

  volatile uint32_t* reached_;
  volatile uint32_t* released_;
  Nanoseconds now_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::deque<Pending> pending_;  // in booking order
  std::unique_ptr<NicBoard> own_board_;  // when none was given
  NicBoard* board_;
  int rank_;
  uint32_t next_ticket_ = 1;
  size_t keep_records_ = 0;
  const volatile uint32_t* resumed_ = nullptr;
  std::vector<Record> records_;
  std::atomic<bool> stop_{false};
  bool stalled_ = false;  // under mutex_
  std::thread thread_;
};

// Records as a markdown table in the order the streams reached them, in microseconds from the first arrival (-1:
// not known): where each transfer's delivery went beyond its booked time. `late`: released after the booked due
// time (the clock's thread); `resume`: the stream past its hold after the release (the GPU's front end seeing the
// flag); `next`: the next transfer on the same FIFO reached after that (the hand-over, when both are on one
// stream). Empty records: a line saying so (the kernel clock keeps none).
std::string format_link_records(std::vector<LinkClock::Record> records);

}  // namespace sf::gpu
