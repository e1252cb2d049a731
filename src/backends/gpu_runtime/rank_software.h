// What every rank of a job runs (StreamFusion's build, the NCCL and NVSHMEM libraries it loaded), gathered at
// start-up and compared before any library starts. Ranks that load different NCCL libraries fail inside
// ncclCommInitRank (NCCL's own check names version numbers, in its log only), NVSHMEM's unique id need not even
// parse between versions, and ranks that run different builds of StreamFusion can plan different schedules and
// wait for each other until the watchdog ends them. Refused up front instead, naming what differs, on which ranks
// and hosts. Plain C++, so CPU tests reach it.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "streamfusion/status.h"

namespace sf::gpu {

// (what, version) pairs in a fixed order, e.g. {"StreamFusion", "0.1.0 git 1e0a419"}, {"NCCL", "2.28.9"}.
using RankSoftware = std::vector<std::pair<std::string, std::string>>;

// One line per part, "what=version" (versions hold no newline; one that did would be cut there).
inline std::string encode_software(const RankSoftware& s) {
  std::string out;
  for (const auto& [what, version] : s) out += what + "=" + version.substr(0, version.find('\n')) + "\n";
  return out;
}

inline RankSoftware decode_software(const std::string& text) {
  RankSoftware s;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    const size_t eq = line.find('=');
    if (eq != std::string::npos) s.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    at = end + 1;
  }
  return s;
}

// "ranks 0-2, 5" or "rank 3".
inline std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(ranks[i]) + (j > i ? "-" + std::to_string(ranks[j]) : "");
    i = j + 1;
  }
  return (ranks.size() == 1 ? "rank " : "ranks ") + out;
}

// software[r] and hosts[r]: rank r's. The first part whose versions differ between ranks (a part that a rank lacks
// reads "none" there) is refused, with every version found, its ranks and their hosts.
inline Status check_same_software(const std::vector<RankSoftware>& software, const std::vector<std::string>& hosts) {
  std::vector<std::string> parts;  // every part any rank has, in first-seen order
  for (const RankSoftware& s : software)
    for (const auto& [what, version] : s)
      if (std::find(parts.begin(), parts.end(), what) == parts.end()) parts.push_back(what);
  for (const std::string& what : parts) {
    std::vector<std::pair<std::string, std::vector<int>>> versions;  // in the order of their first rank
    for (size_t r = 0; r < software.size(); ++r) {
      std::string v = "none";
      for (const auto& [w, version] : software[r])
        if (w == what) v = version;
      auto it = std::find_if(versions.begin(), versions.end(), [&](const auto& e) { return e.first == v; });
      if (it == versions.end()) it = versions.insert(versions.end(), {v, {}});
      it->second.push_back(static_cast<int>(r));
    }
    if (versions.size() == 1) continue;
    std::string found;
    for (const auto& [version, ranks] : versions) {
      std::vector<std::string> on;  // the hosts of those ranks, each once
      for (const int r : ranks)
        if (r < static_cast<int>(hosts.size()) && std::find(on.begin(), on.end(), hosts[r]) == on.end())
          on.push_back(hosts[r]);
      std::string where;
      for (size_t i = 0; i < on.size() && i < 3; ++i) where += (i ? ", " : "") + on[i];
      if (on.size() > 3) where += ", ...";
      found += (found.empty() ? "" : "; ") + version + " on " + rank_list(ranks) + " (host" +
               (on.size() > 1 ? "s " : " ") + where + ")";
    }
    const std::string fix = what == "StreamFusion"
                                ? "every rank must run the same build of streamfusion-gpu (builds can plan "
                                  "different schedules and then wait for each other)"
                                : "every rank must load the same " + what + " library (LD_LIBRARY_PATH on each host)";
    return backend_error("the job's ranks run different " + what + " versions: " + found + "; " + fix);
  }
  return Status::ok();
}

}  // namespace sf::gpu
