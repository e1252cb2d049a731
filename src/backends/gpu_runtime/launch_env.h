// Where this process sits in the job, read from the launcher's environment: torchrun / our own launcher
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), Open MPI's mpirun (OMPI_COMM_WORLD_*), Slurm's srun
// (SLURM_PROCID, ...). MASTER_ADDR/MASTER_PORT name rank 0's bootstrap store. Under a torchrun whose agent already
// serves its own store on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True) ours takes the first free of
// MASTER_PORT+2, +4, +6, +8: torchrun picks MASTER_PORT as a listening socket's free port, which Linux takes from
// one parity of its ephemeral range and outgoing connections from the other, so MASTER_PORT+1 (used until
// 2026-11-28) was of the kind any connection on the host may hold at that moment (one failed start in about ten
// on a busy 4-GPU host); the ranks know our store by a greeting with torchrun's run id (tcp_store.h).
#pragma once

#include <string>
#include <vector>

#include "streamfusion/status.h"

namespace sf::gpu {

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::vector<int> store_ports{29500};  // where our store may listen, in order (MASTER_PORT, or the list above)
  std::string job;  // the job's name for the store's greeting (our launch's id, torchrun's run id, Open MPI's
                    // PMIx namespace, Slurm's job and step), or empty where nothing names it
  std::string source = "none";  // which launcher's variables were found: "RANK/WORLD_SIZE" (streamfusion launch,
                                // or set by hand), "torchrun", "Open MPI", "Slurm"
  std::string hostname;
};

// No launcher variables at all means one process (rank 0 of 1).
Result<LaunchInfo> read_launch_env();

// The store's ports for messages: "29500", or "29502 (or 29504, 29506, 29508)".
std::string store_ports_text(const LaunchInfo& info);

}  // namespace sf::gpu
