#include "launch_env.h"

#include "slurm_env.h"

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <string>
#include <unistd.h>

namespace sf::gpu {
namespace {

// An integer variable: absent (or empty) leaves *out alone and gives false; a value that is not an integer is an
// error naming the variable, rather than a variable silently ignored (a RANK=abc would otherwise start every process
// as rank 0 of a world of one).
Result<bool> env_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || errno == ERANGE || x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    return invalid_argument(std::string("launcher environment: ") + name + " must be an integer, found '" + v + "'");
  *out = static_cast<int>(x);
  return true;
}

// A launcher's (rank, size) pair: both set (true), neither (false), or one without the other: an error where the
// launcher always sets both (a job whose launcher set half of it would start every process as a world of one),
// else (`half_is_none`) as if neither were set: a Slurm allocation's shell has SLURM_NTASKS without SLURM_PROCID,
// which only srun's tasks get.
Result<bool> env_pair(const char* rank_name, const char* size_name, int* rank, int* size, bool half_is_none = false) {
  int r = 0, n = 0;
  SF_ASSIGN_OR_RETURN(const bool has_rank, env_int(rank_name, &r));
  SF_ASSIGN_OR_RETURN(const bool has_size, env_int(size_name, &n));
  if (has_rank != has_size && !half_is_none)
    return invalid_argument(std::string("launcher environment: ") + (has_rank ? rank_name : size_name) +
                            " is set but " + (has_rank ? size_name : rank_name) + " is not");
  if (!has_rank || !has_size) return false;
  *rank = r, *size = n;
  return true;
}

// The local rank and local size where the launcher names them, else those of a world on one host.
Status read_local(const char* rank_name, const char* size_name, LaunchInfo* info) {
  SF_ASSIGN_OR_RETURN(const bool has_rank, env_int(rank_name, &info->local_rank));
  if (!has_rank) info->local_rank = info->rank;
  if (size_name == nullptr) return Status::ok();
  SF_ASSIGN_OR_RETURN(const bool has_size, env_int(size_name, &info->local_world_size));
  if (!has_size) info->local_world_size = info->world_size;
  return Status::ok();
}

// The job's name as its launcher gives it, the same on every rank of the job and different between jobs: ranks
// greet the bootstrap store with it, so that two jobs on one host whose stores land on one port (two mpiruns with
// the default MASTER_PORT) do not join each other's. Empty where nothing names the job (variables set by hand).
std::string job_name(const std::string& source) {
  const auto var = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  if (!var("SF_LAUNCH_ID").empty()) return "streamfusion launch " + var("SF_LAUNCH_ID");
  if (!var("TORCHELASTIC_RUN_ID").empty()) return "torchrun " + var("TORCHELASTIC_RUN_ID");
  if (source == "Open MPI") {
    if (!var("PMIX_NAMESPACE").empty()) return "Open MPI " + var("PMIX_NAMESPACE");
    if (!var("OMPI_MCA_ess_base_jobid").empty()) return "Open MPI job " + var("OMPI_MCA_ess_base_jobid");
  }
  if (source == "Slurm" && !var("SLURM_JOB_ID").empty())
    return "Slurm " + var("SLURM_JOB_ID") + "." + (var("SLURM_STEP_ID").empty() ? "0" : var("SLURM_STEP_ID"));
  return "";
}

// Under srun with no MASTER_ADDR: the step's first node (slurm_env.h). Rank 0 checks that it runs there, so that
// a distribution placing task 0 elsewhere fails at once, naming both hosts, instead of every other rank waiting
// for a store nobody serves.
Status slurm_master_addr(LaunchInfo* info) {
  const char* name = nullptr;
  const char* list = nullptr;
  for (const char* n : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"})
    if (const char* v = std::getenv(n); v != nullptr && *v != '\0' && list == nullptr) name = n, list = v;
  if (list == nullptr)
    return invalid_argument("launcher environment (Slurm): " + std::to_string(info->world_size) +
                            " ranks over several hosts but neither MASTER_ADDR nor SLURM_STEP_NODELIST is set "
                            "(MASTER_ADDR: rank 0's host name)");
  SF_ASSIGN_OR_RETURN(info->master_addr, slurm_first_host(name, list));
  // Rank 0's node by Slurm's name for it (SLURMD_NODENAME, the names the node list uses, which need not be the
  // host's own), else its host name; short names, as host lists hold them.
  const char* slurm_name = std::getenv("SLURMD_NODENAME");
  const std::string mine = slurm_name != nullptr && *slurm_name != '\0' ? slurm_name : info->hostname;
  const auto short_name = [](const std::string& h) { return h.substr(0, h.find('.')); };
  if (info->rank == 0 && short_name(mine) != short_name(info->master_addr))
    return invalid_argument("launcher environment (Slurm): without MASTER_ADDR the store is on the step's first "
                            "node, " + info->master_addr + " (" + name + "), but rank 0 runs on " + mine +
                            "; set MASTER_ADDR to rank 0's host");
  info->source += " (MASTER_ADDR: the first node of " + std::string(name) + ")";
  return Status::ok();
}

}  // namespace

Result<LaunchInfo> read_launch_env() {
  LaunchInfo info;
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  info.hostname = host;

  bool found = false;
  SF_ASSIGN_OR_RETURN(const bool torch_style, env_pair("RANK", "WORLD_SIZE", &info.rank, &info.world_size));
  if (torch_style) {
    info.source = std::getenv("TORCHELASTIC_RUN_ID") ? "torchrun" : "RANK/WORLD_SIZE";
    found = true;
    SF_RETURN_IF_ERROR(read_local("LOCAL_RANK", "LOCAL_WORLD_SIZE", &info));
  }
  if (!found) {
    SF_ASSIGN_OR_RETURN(found, env_pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", &info.rank, &info.world_size));
    if (found) {
      info.source = "Open MPI";
      SF_RETURN_IF_ERROR(read_local("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", &info));
    }
  }
  if (!found) {
    SF_ASSIGN_OR_RETURN(found, env_pair("SLURM_PROCID", "SLURM_NTASKS", &info.rank, &info.world_size, true));
    if (found) {
      info.source = "Slurm";
      SF_RETURN_IF_ERROR(read_local("SLURM_LOCALID", nullptr, &info));
      // The local size: this node's tasks where srun lists them per node (slurm_env.h), else the tasks spread
      // evenly over SLURM_NNODES.
      int node = 0, nodes = 1;
      SF_ASSIGN_OR_RETURN(const bool has_node, env_int("SLURM_NODEID", &node));
      SF_ASSIGN_OR_RETURN(const bool has_nodes, env_int("SLURM_NNODES", &nodes));
      const char* per_node_name = "SLURM_STEP_TASKS_PER_NODE";  // the step's; else the job's
      const char* per_node = std::getenv(per_node_name);
      if (per_node == nullptr || *per_node == '\0') {
        per_node_name = "SLURM_TASKS_PER_NODE";
        per_node = std::getenv(per_node_name);
      }
      if (has_node && per_node != nullptr && *per_node != '\0') {
        SF_ASSIGN_OR_RETURN(info.local_world_size, slurm_tasks_on_node(per_node_name, per_node, node));
      } else {
        info.local_world_size = has_nodes && nodes > 0 ? info.world_size / nodes : info.world_size;
      }
    }
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
  info.job = job_name(info.source);  // before the notes below are added to the source
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) {
    info.master_addr = a;
  } else if (info.local_world_size != info.world_size && info.source == "Slurm") {
    SF_RETURN_IF_ERROR(slurm_master_addr(&info));
  } else if (info.local_world_size != info.world_size) {
    return invalid_argument("launcher environment (" + info.source + "): " + std::to_string(info.world_size) +
                            " ranks over several hosts but MASTER_ADDR is not set (rank 0's host name)");
  }
  int port = 0;
  SF_ASSIGN_OR_RETURN(const bool has_port, env_int("MASTER_PORT", &port));
  if (has_port) {
    if (port <= 0 || port > 65535) return invalid_argument("MASTER_PORT " + std::to_string(port) + " is not a port");
    info.master_port = port;
  }
  info.store_ports = {info.master_port};
  // torchrun (PyTorch 2.4 on) serves its own store on MASTER_PORT and tells its workers to share it; rank 0
  // could not listen there, so ours takes one of the ports beside it of the same parity (launch_env.h says why),
  // the same list on every rank and every host.
  if (const char* shared = std::getenv("TORCHELASTIC_USE_AGENT_STORE"); shared && std::string(shared) == "True") {
    info.store_ports.clear();
    for (int k = 1; k <= 4 && info.master_port + 2 * k <= 65535; ++k)
      info.store_ports.push_back(info.master_port + 2 * k);
    if (info.store_ports.empty())
      return invalid_argument("torchrun's MASTER_PORT " + std::to_string(info.master_port) +
                              " leaves no port above it for ours (we take MASTER_PORT+2 to +8)");
    info.source += " (store beside torchrun's own on MASTER_PORT)";
  }
  return info;
}

std::string store_ports_text(const LaunchInfo& info) {
  std::string s;
  for (size_t i = 0; i < info.store_ports.size(); ++i)
    s += (i == 0 ? "" : i == 1 ? " (or " : ", ") + std::to_string(info.store_ports[i]);
  return info.store_ports.size() > 1 ? s + ")" : s;
}

}  // namespace sf::gpu
