#include "launch_env.h"

#include <cstdlib>
#include <unistd.h>

namespace sf::gpu {
namespace {

bool env_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0') return false;
  *out = static_cast<int>(x);
  return true;
}

}  // namespace

Result<LaunchInfo> read_launch_env() {
  LaunchInfo info;
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  info.hostname = host;

  bool found = false;
  if (env_int("RANK", &info.rank) && env_int("WORLD_SIZE", &info.world_size)) {
    info.source = std::getenv("TORCHELASTIC_RUN_ID") ? "torchrun" : "RANK/WORLD_SIZE";
    found = true;
    if (!env_int("LOCAL_RANK", &info.local_rank)) info.local_rank = info.rank;
    if (!env_int("LOCAL_WORLD_SIZE", &info.local_world_size)) info.local_world_size = info.world_size;
  } else if (env_int("OMPI_COMM_WORLD_RANK", &info.rank) && env_int("OMPI_COMM_WORLD_SIZE", &info.world_size)) {
    info.source = "Open MPI";
    found = true;
    if (!env_int("OMPI_COMM_WORLD_LOCAL_RANK", &info.local_rank)) info.local_rank = info.rank;
    if (!env_int("OMPI_COMM_WORLD_LOCAL_SIZE", &info.local_world_size)) info.local_world_size = info.world_size;
  } else if (env_int("SLURM_PROCID", &info.rank) && env_int("SLURM_NTASKS", &info.world_size)) {
    info.source = "Slurm";
    found = true;
    if (!env_int("SLURM_LOCALID", &info.local_rank)) info.local_rank = info.rank;
    int nodes = 1;
    if (env_int("SLURM_NNODES", &nodes) && nodes > 0) info.local_world_size = info.world_size / nodes;
    else info.local_world_size = info.world_size;
  }
  if (!found) return info;

  if (info.world_size < 1 || info.rank < 0 || info.rank >= info.world_size) {
    return invalid_argument("launcher environment (" + info.source + "): rank " + std::to_string(info.rank) +
                            " is not in [0, world size " + std::to_string(info.world_size) + ")");
  }
  if (info.local_world_size < 1 || info.local_rank < 0 || info.local_rank >= info.local_world_size) {
    return invalid_argument("launcher environment (" + info.source + "): local rank " +
                            std::to_string(info.local_rank) + " is not in [0, local size " +
                            std::to_string(info.local_world_size) + ")");
  }
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) {
    info.master_addr = a;
  } else if (info.local_world_size != info.world_size) {
    return invalid_argument("launcher environment (" + info.source + "): " + std::to_string(info.world_size) +
                            " ranks over several hosts but MASTER_ADDR is not set (rank 0's host name)");
  }
  int port = 0;
  if (env_int("MASTER_PORT", &port)) {
    if (port <= 0 || port > 65535) return invalid_argument("MASTER_PORT " + std::to_string(port) + " is not a port");
    info.master_port = port;
  }
  // torchrun (PyTorch 2.4 on) serves its own store on MASTER_PORT and tells its workers to share it; rank 0
  // could not listen there, so ours takes the next port (same rule on every rank, every host).
  if (const char* shared = std::getenv("TORCHELASTIC_USE_AGENT_STORE"); shared && std::string(shared) == "True") {
    if (info.master_port >= 65535) return invalid_argument("torchrun's MASTER_PORT 65535 leaves no port for ours");
    info.master_port += 1;
    info.source += " (store on MASTER_PORT+1: torchrun's agent holds MASTER_PORT)";
  }
  return info;
}

}  // namespace sf::gpu
