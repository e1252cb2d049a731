// Emulated machines (DESIGN.md section 6): on one host of M·N GPUs, transfers between GPUs of different
// "machines" really happen (over NVLink), but their completion is held back as if they had crossed a NIC of
// the configured bandwidth and latency. Each GPU has two FIFOs, egress and ingress, like a full-duplex NIC.
//
// How: right before the real transfer the stream books it on the FIFO (start = the moment the stream gets there,
// or the FIFO's tail if later; tail = start + bytes/bandwidth; completion = tail + latency); right after it, the
// stream waits until that completion time. Everything ordered after the transfer on that stream (its handle,
// later transfers, the compute that waits on it) therefore sees the emulated link, and both lanes of a GPU share
// its FIFOs as they would share a NIC. A one-sided transfer also goes through its peer's opposite FIFO (a get:
// the peer's egress), where the host clock shares every GPU's FIFOs between the rank processes (nic_board.h);
// a two-sided one is booked at each end by its own side. Intra-machine transfers are never touched.
//
// Two clocks do the booking and the waiting (SF_EMULATED_LINK_CLOCK):
//   host (default): the stream writes and waits on flags in mapped host memory (stream memory operations, no SM)
//     and a host thread keeps the FIFOs and releases each transfer when due (link_clock.h). Like a NIC, it never
//     competes with kernels for SMs.
//   kernel: one-thread kernels read the GPU clock to book and spin to hold; each needs a free SM, and only our
//     own side is booked. Kept for comparisons (bench/sp/link_clock_ab.sh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <cuda_runtime.h>

#include "emulated_link_settings.h"
#include "link_clock.h"
#include "nic_board.h"
#include "streamfusion/status.h"
#include "tcp_store.h"

namespace sf::gpu {

enum class LinkDirection : int { kEgress = 0, kIngress = 1 };

class EmulatedLinks {
 public:
  EmulatedLinks() = default;
  ~EmulatedLinks();
  EmulatedLinks(const EmulatedLinks&) = delete;
  EmulatedLinks& operator=(const EmulatedLinks&) = delete;

  // Reads SF_EMULATED_LINK_CLOCK ("host" or unset, or "kernel"); anything else is an error. Collective: with the
  // host clock and every rank on this host, the ranks share one NicBoard (nic_board.h; rank 0 creates it and
  // passes its name through `store`), so that a one-sided transfer books its peer's side too.
  Status init(int rank, int world, bool one_host, TcpStore* store);
  const char* clock_name() const { return host_ ? "host" : "kernel"; }

  // Books `bytes` on the FIFO (enqueued on `stream` before the transfer); returns the booking's ticket. far_rank:
  // a one-sided transfer's peer, whose opposite FIFO is booked too (where the ranks share a board).
  Result<uint32_t> book(cudaStream_t stream, LinkDirection dir, size_t bytes, const EmulationSettings& s,
                        int far_rank = NicBoard::kNone);
  // Enqueued after the transfer: the stream waits until the booked completion time.
  Status hold(cudaStream_t stream, uint32_t ticket);
  // A latency-only hold (e.g. after a barrier across machines).
  Status hold_latency(cudaStream_t stream, const EmulationSettings& s);
  // Empties both FIFOs (synchronous; call while no transfer is in flight). The host clock has nothing to empty.
  Status reset();
  // Diagnosis (host clock only; the kernel clock keeps none): keep what happens to the next `max` tickets, with
  // the moment each stream got past its hold (LinkClock::Record), and hand them over.
  Status keep_records(size_t max);
  std::vector<LinkClock::Record> take_records();
  // Fault tests (host clock only): the links stop delivering, as if they had died (LinkClock::stall).
  Status stall();

 private:
  static constexpr uint32_t kSlots = LinkClock::kSlots;
  Status init_host_clock(int rank, int world, bool one_host, TcpStore* store);
  // Enqueues the stream's "reached" write of `ticket` (host clock).
  Status write_reached(cudaStream_t stream, uint32_t ticket, const char* what);

  bool host_ = true;
  // Host clock: [0, kSlots) reached flags, [kSlots, 2 kSlots) released flags, [2 kSlots, 3 kSlots) resumed flags
  // (written after each hold while records are kept), in mapped host memory.
  uint32_t* flags_ = nullptr;
  uint32_t* flags_on_device_ = nullptr;
  std::unique_ptr<NicBoard> board_;  // shared by the host's ranks, or this rank's alone (SF_EMULATED_NIC's model)
  bool shared_board_ = false;        // false: only our own side of a transfer is booked
  std::unique_ptr<LinkClock> clock_;
  // Kernel clock: [0..1] FIFO tails (ns, GPU global timer), then kSlots completion times.
  unsigned long long* state_ = nullptr;
  uint32_t next_slot_ = 0;
};

}  // namespace sf::gpu
