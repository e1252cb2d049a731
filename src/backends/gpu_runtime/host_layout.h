// Which hosts the job's ranks run on, against the machines of the topology a run asks for. On one host, machines
// beyond one are emulated (emulated_link.h): transfers between them really move over NVLink and are held to the
// setting. On several hosts the links between them are real, so the topology's machines must be the hosts: ranks
// of one machine on one host (they talk over NVLink), ranks of different machines on different hosts. A topology
// that disagrees is refused, never run on links other than the ones it names; emulation is off, and the inter-machine
// speed given (--gbps) is only what the planner assumes. Plain C++, so CPU tests reach it.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "streamfusion/status.h"
#include "streamfusion/topology.h"

namespace sf::gpu {

// hosts[r]: rank r's host name.
inline bool spans_hosts(const std::vector<std::string>& hosts) {
  for (const std::string& h : hosts)
    if (h != hosts.front()) return true;
  return false;
}

inline Status check_machines_on_hosts(const Topology& topo, const std::vector<std::string>& hosts) {
  if (static_cast<int>(hosts.size()) != topo.world_size())
    return invalid_argument("topology " + topo.to_string() + " has " + std::to_string(topo.world_size()) +
                            " GPUs but the job has " + std::to_string(hosts.size()) + " ranks");
  if (!spans_hosts(hosts)) return Status::ok();
  const std::string hint = " (on a job that spans hosts the machines are its hosts: " +
                           std::to_string(std::set<std::string>(hosts.begin(), hosts.end()).size()) +
                           " hosts here; emulated machines need a job on one host)";
  // Each machine on the host of its first rank, and no two machines on one host.
  const int N = topo.gpus_per_machine;
  for (int r = 0; r < topo.world_size(); ++r) {
    const int lead = topo.machine_of(r) * N;
    if (hosts[r] != hosts[lead])
      return infeasible("topology " + topo.to_string() + " puts ranks " + std::to_string(lead) + " (host " +
                        hosts[lead] + ") and " + std::to_string(r) + " (host " + hosts[r] + ") in machine " +
                        std::to_string(topo.machine_of(r)) + ", but ranks on different hosts have no NVLink" + hint);
  }
  for (int a = 0; a < topo.machines; ++a)
    for (int b = a + 1; b < topo.machines; ++b)
      if (hosts[a * N] == hosts[b * N])
        return infeasible("topology " + topo.to_string() + " puts ranks " + std::to_string(a * N) + " and " +
                          std::to_string(b * N) + " of host " + hosts[a * N] + " in machines " + std::to_string(a) +
                          " and " + std::to_string(b) + hint);
  return Status::ok();
}

}  // namespace sf::gpu
