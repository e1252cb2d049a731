// Emulated machines (DESIGN.md section 6): on one host of M·N GPUs, transfers between GPUs of different
// "machines" really happen (over NVLink), but their completion is held back as if they had crossed a NIC of
// the configured bandwidth and latency. Each GPU has two FIFOs, egress and ingress, like a full-duplex NIC.
//
// How: right before the real transfer, a one-thread kernel on the same stream reads the GPU clock and books
// the transfer on the FIFO (start = max(now, FIFO tail), tail = start + bytes/bandwidth; the completion time
// is tail + latency). Right after the transfer, a second one-thread kernel spins until that completion time.
// Everything ordered after the transfer on that stream (its handle, later transfers, the compute that waits on
// it) therefore sees the emulated link, and both lanes of a GPU share its FIFOs as they would share a NIC.
// Intra-machine transfers are never touched.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "emulated_link_settings.h"
#include "streamfusion/status.h"

namespace sf::gpu {

enum class LinkDirection : int { kEgress = 0, kIngress = 1 };

class EmulatedLinks {
 public:
  EmulatedLinks() = default;
  ~EmulatedLinks();
  EmulatedLinks(const EmulatedLinks&) = delete;
  EmulatedLinks& operator=(const EmulatedLinks&) = delete;

  Status init();

  // Books `bytes` on the FIFO (enqueued on `stream` before the transfer); returns the booking's slot.
  Result<uint32_t> book(cudaStream_t stream, LinkDirection dir, size_t bytes, const EmulationSettings& s);
  // Enqueued after the transfer: the stream waits until the booked completion time.
  Status hold(cudaStream_t stream, uint32_t slot);
  // A latency-only hold (e.g. after a barrier across machines).
  Status hold_latency(cudaStream_t stream, const EmulationSettings& s);
  // Empties both FIFOs (synchronous; call while no transfer is in flight).
  Status reset();

 private:
  static constexpr uint32_t kSlots = 1u << 16;
  unsigned long long* state_ = nullptr;  // [0..1]: FIFO tails (ns, GPU global timer); then kSlots completions
  uint32_t next_slot_ = 0;
};

}  // namespace sf::gpu
