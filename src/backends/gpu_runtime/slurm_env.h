// What srun tells its tasks about the step, read where the other launchers' variables have no counterpart: the
// step's nodes as a Slurm host list ("gpu[001-004,010],login1": rank 0's store is on the first, where srun puts
// task 0 under its block and cyclic distributions) and its tasks per node ("4(x2),3": four on each of the first two
// nodes, three on the third). With them `srun` alone starts a multi-node job: no MASTER_ADDR to export, and a
// local size that is right when the nodes hold different numbers of tasks. Plain C++, so CPU tests reach it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "streamfusion/status.h"

namespace sf::gpu {

// The first host of a Slurm host list: its first comma-separated entry (commas inside brackets belong to the
// brackets), each bracketed range replaced by its first value ("gpu[001-004]" -> "gpu001", zero padding kept).
inline Result<std::string> slurm_first_host(const std::string& name, const std::string& list) {
  const auto bad = [&](const std::string& why) {
    return invalid_argument("launcher environment: " + name + " '" + list + "' is not a Slurm host list (" + why + ")");
  };
  std::string host;
  size_t i = 0;
  while (i < list.size() && list[i] != ',') {
    if (list[i] == ']') return bad("a ']' without its '['");
    if (list[i] != '[') {
      host += list[i++];
      continue;
    }
    const size_t close = list.find(']', i);
    if (close == std::string::npos) return bad("a '[' without its ']'");
    const std::string first = list.substr(i + 1, list.find_first_of(",-]", i + 1) - i - 1);
    if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos)
      return bad("a range that does not start with a number");
    host += first;
    i = close + 1;
  }
  if (host.empty()) return bad("no host before the first comma");
  return host;
}

// How many tasks the step runs on node `node` (SLURM_NODEID), from a tasks-per-node list: counts separated by
// commas, each "n" or "n(xk)" for k nodes in a row. The whole list is read first: a malformed one is an error
// whichever node asks.
inline Result<int> slurm_tasks_on_node(const std::string& name, const std::string& list, int node) {
  const auto bad = [&](const std::string& why) {
    return invalid_argument("launcher environment: " + name + " '" + list + "' " + why);
  };
  const auto number = [](const std::string& t) {  // digits only, at most 6 of them; else -1
    return !t.empty() && t.size() <= 6 && t.find_first_not_of("0123456789") == std::string::npos ? std::stoi(t) : -1;
  };
  std::vector<std::pair<int, int>> runs;  // (tasks, nodes)
  for (size_t i = 0; i <= list.size();) {
    size_t end = list.find(',', i);
    if (end == std::string::npos) end = list.size();
    const std::string entry = list.substr(i, end - i);
    const size_t open = entry.find("(x");
    const int tasks = number(entry.substr(0, open));
    const int nodes = open == std::string::npos ? 1
                      : entry.back() == ')' ? number(entry.substr(open + 2, entry.size() - open - 3))
                                            : -1;
    if (tasks < 0 || nodes < 0) return bad("is not a list of task counts like 4(x2),3");
    runs.emplace_back(tasks, nodes);
    i = end + 1;
  }
  int first_node = 0;  // of the run being looked at
  for (const auto& [tasks, nodes] : runs) {
    if (node >= first_node && node < first_node + nodes) return tasks;
    first_node += nodes;
  }
  return bad("names " + std::to_string(first_node) + " nodes, but this is node " + std::to_string(node) +
             " (SLURM_NODEID)");
}

}  // namespace sf::gpu
