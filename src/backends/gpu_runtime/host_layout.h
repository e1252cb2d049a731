// Which hosts the job's ranks run on, against the machines of the topology a run asks for. On one host, machines
// beyond one are emulated (emulated_link.h): transfers between them really move over NVLink and are held to the
// setting. On several hosts the links between them are real, so the topology's machines must be the hosts: ranks
// of one machine on one host (they talk over NVLink), ranks of different machines on different hosts. A topology
// that disagrees is refused, never run on links other than the ones it names; emulation is off, and the inter-machine
// speed given (--gbps) is only what the planner assumes. Plain C++, so CPU tests reach it.
#pragma once

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
  int distinct = 0;
  for (size_t r = 0; r < hosts.size(); ++r) {
    bool seen = false;
    for (size_t s = 0; s < r && !seen; ++s) seen = hosts[s] == hosts[r];
    distinct += seen ? 0 : 1;
  }
  const std::string hint = " (on a job that spans hosts the machines are its hosts: " + std::to_string(distinct) +
                           " hosts here; emulated machines need a job on one host)";
  for (int r = 0; r < topo.world_size(); ++r) {
    for (int s = r + 1; s < topo.world_size(); ++s) {
      const bool same_machine = topo.machine_of(r) == topo.machine_of(s), same_host = hosts[r] == hosts[s];
      if (same_machine && !same_host)
        return infeasible("topology " + topo.to_string() + " puts ranks " + std::to_string(r) + " (host " + hosts[r] +
                          ") and " + std::to_string(s) + " (host " + hosts[s] + ") in machine " +
                          std::to_string(topo.machine_of(r)) + ", but ranks on different hosts have no NVLink" +
                          hint);
      if (!same_machine && same_host)
        return infeasible("topology " + topo.to_string() + " puts ranks " + std::to_string(r) + " and " +
                          std::to_string(s) + " of host " + hosts[r] + " in machines " +
                          std::to_string(topo.machine_of(r)) + " and " + std::to_string(topo.machine_of(s)) + hint);
    }
  }
  return Status::ok();
}

}  // namespace sf::gpu
