// Where this process sits in the job, read from the launcher's environment: torchrun / our own launcher
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), Open MPI's mpirun (OMPI_COMM_WORLD_*), Slurm's srun
// (SLURM_PROCID, ...). MASTER_ADDR/MASTER_PORT name rank 0's bootstrap store (MASTER_PORT+1 under a torchrun
// whose agent already serves its own store on MASTER_PORT: TORCHELASTIC_USE_AGENT_STORE=True).
#pragma once

#include <string>

#include "streamfusion/status.h"

namespace sf::gpu {

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "none";  // which launcher's variables were found: "RANK/WORLD_SIZE" (streamfusion launch,
                                // or set by hand), "torchrun", "Open MPI", "Slurm"
  std::string hostname;
};

// No launcher variables at all means one process (rank 0 of 1).
Result<LaunchInfo> read_launch_env();

}  // namespace sf::gpu
