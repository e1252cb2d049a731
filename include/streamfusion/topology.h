// The cluster: M machines × N GPUs, and which link class joins two ranks.
// Global rank g = m·N + n (machine m, local index n), as launchers number processes.
#pragma once

#include <cstdint>
#include <string>

#include "streamfusion/status.h"

namespace sf {

enum class LinkClass : uint8_t { kIntra = 0, kInter = 1 };  // NVLink inside a machine, network across
inline constexpr int kNumLinkClasses = 2;
const char* link_class_name(LinkClass c);

struct Topology {
  int machines = 1;         // M
  int gpus_per_machine = 1;  // N

  int world_size() const { return machines * gpus_per_machine; }
  int machine_of(int rank) const { return rank / gpus_per_machine; }
  int local_index(int rank) const { return rank % gpus_per_machine; }
  LinkClass link(int a, int b) const {
    return machine_of(a) == machine_of(b) ? LinkClass::kIntra : LinkClass::kInter;
  }
  std::string to_string() const;  // "2x4"

  // Checks M ≥ 1, N ≥ 1.
  Status validate() const;
  // Parses "MxN" (e.g. "2x4").
  static Result<Topology> parse(const std::string& s);
};

}  // namespace sf
