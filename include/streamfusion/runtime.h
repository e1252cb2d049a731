// A rank's runtime: the Comm and Device one SPMD rank works with. Backends (threads in one process,
// NCCL/NVSHMEM with one process per GPU) hand these to the algorithms and the CLI.
#pragma once

#include "streamfusion/comm.h"
#include "streamfusion/device.h"

namespace sf {

class RankRuntime {
 public:
  virtual ~RankRuntime() = default;
  virtual Comm& comm() = 0;
  virtual Device& device() = 0;
  virtual const char* backend_name() const = 0;  // "threads", "nccl", "nvshmem"
};

}  // namespace sf
