// Settings of the emulated inter-machine links (DESIGN.md section 6); no CUDA types.
#pragma once

namespace sf::gpu {

struct EmulationSettings {
  double inter_gbps = 0.0;  // GB/s (1e9 bytes/s) per GPU and direction; 0 = no emulation
  double latency_us = 5.0;  // added to every inter-machine transfer
  bool enabled() const { return inter_gbps > 0.0; }
};

}  // namespace sf::gpu
