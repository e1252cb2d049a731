// `streamfusion plan`: the mesh each scheme would use on a topology, and what it moves where.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "shape_options.h"

namespace sf::cli {
namespace {

int g_exit_code = 0;

nlohmann::json plan_json(const Plan& p) {
  return {{"scheme", scheme_name(p.scheme)},
          {"mesh", p.config.mesh.to_string()},
          {"transport", transport_name(p.config.transport)},
          {"intra_bytes_per_gpu", p.bytes_per_gpu.intra()},
          {"inter_bytes_per_gpu", p.bytes_per_gpu.inter()},
          {"modeled_comm_ms", p.comm_time_ms},
          {"modeled_compute_ms", p.compute_ms},
          {"modeled_layer_ms", p.layer_ms},
          {"explanation", p.explanation}};
}

int run_plan(const ShapeOptions& o) {
  Result<std::vector<Plan>> plans = o.plans();
  if (!plans) return report_error(plans.status());
  Result<Plan> best = recommend_plan(*o.topo(), *o.shape(), LinkSpeeds{o.intra_gbps, o.inter_gbps});
  if (o.json) {
    nlohmann::json j = {{"topology", o.topology}, {"shape", o.shape()->to_string()}, {"plans", nlohmann::json::array()}};
    for (const Plan& p : *plans) j["plans"].push_back(plan_json(p));
    if (best) j["recommended"] = plan_json(*best);
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("# topology %s, %s, links: intra %.0f GB/s, inter %.1f GB/s per GPU\n", o.topology.c_str(),
              o.shape()->to_string().c_str(), o.intra_gbps, o.inter_gbps);
  std::printf("%-8s %-10s %-10s %14s %14s %12s\n", "scheme", "mesh", "transport", "intra MB/GPU", "inter MB/GPU",
              "model ms");
  for (const Plan& p : *plans)
    std::printf("%-8s %-10s %-10s %14.3f %14.3f %12.3f\n", scheme_name(p.scheme), p.config.mesh.to_string().c_str(),
                transport_name(p.config.transport), p.bytes_per_gpu.intra() / 1e6, p.bytes_per_gpu.inter() / 1e6,
                p.layer_ms);
  for (const Plan& p : *plans) std::printf("- %s\n", p.explanation.c_str());
  if (best) std::printf("%s\n", best->explanation.c_str());
  return 0;
}

}  // namespace

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

void register_plan(CLI::App& app) {
  auto opts = std::make_shared<ShapeOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "print each scheme's mesh and bytes per GPU per link class");
  opts->add_to(cmd);
  cmd->callback([opts] { set_exit_code(run_plan(*opts)); });
}

}  // namespace sf::cli
