#include "shape_options.h"

#include <iostream>

namespace sf::cli {

void ShapeOptions::add_to(CLI::App* cmd) {
  cmd->add_option("-t,--topology", topology, "machines x GPUs per machine, e.g. 2x4")->capture_default_str();
  cmd->add_option("-b,--batch", batch, "batch size")->capture_default_str();
  cmd->add_option("-s,--seq", seq_len, "global sequence length S (need not divide by the GPU count)")->capture_default_str();
  cmd->add_option("--heads", heads, "attention heads H")->capture_default_str();
  cmd->add_option("-d,--head-dim", head_dim, "head dimension D")->capture_default_str();
  cmd->add_option("--dtype", dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("-a,--scheme", schemes, "ring, ulysses, usp, tas, torus, sfu, custom, or all")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("-m,--mesh", mesh, "explicit mesh for one scheme, outermost level first (U4R2, R4U2, T2U2R2)");
  cmd->add_option("--transport", transport, "one-sided or two-sided (default: one-sided for sfu only)");
  cmd->add_option("--torus-chunks", torus_chunks,
                  "row segments per Torus transfer (-1: planner decides from the link speeds; 0: up to 4 as call "
                  "sizes allow)")
      ->check(CLI::Range(-1, 1024))
      ->capture_default_str();
  cmd->add_option("--local-diagonal", local_diagonal,
                  "one-sided Torus without Ulysses: auto (the planner), on (each rank computes its own rows against "
                  "its own machine's keys for every head; Torus peers push partial outputs merged by lse) or off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  cmd->add_option("--intra-gbps", intra_gbps, "intra-machine GB/s per GPU for the modeled time")->capture_default_str();
  cmd->add_option("--inter-gbps", inter_gbps, "inter-machine GB/s per GPU for the modeled time")->capture_default_str();
  cmd->add_flag("--json", json, "print JSON instead of a table");
}

Result<Topology> ShapeOptions::topo() const { return Topology::parse(topology); }

Result<AttentionShape> ShapeOptions::shape() const {
  AttentionShape s{batch, seq_len, heads, head_dim, DType::kF32};
  if (!parse_dtype(dtype, &s.dtype)) return invalid_argument("--dtype must be fp32, bf16 or fp16, found '" + dtype + "'");
  SF_RETURN_IF_ERROR(s.validate());
  return s;
}

Result<std::vector<Scheme>> ShapeOptions::scheme_list() const {
  std::vector<Scheme> out;
  for (const std::string& name : schemes) {
    if (name == "all") {
      for (Scheme s : all_schemes()) out.push_back(s);
      continue;
    }
    Scheme s;
    if (!parse_scheme(name, &s))
      return invalid_argument("--scheme must be ring, ulysses, usp, tas, torus, sfu, custom or all, found '" + name + "'");
    out.push_back(s);
  }
  if (!mesh.empty() && out.size() != 1)
    return invalid_argument("--mesh applies to exactly one scheme, but " + std::to_string(out.size()) +
                            " were named; add e.g. --scheme custom");
  return out;
}

Result<std::optional<Transport>> ShapeOptions::transport_override() const {
  if (transport.empty()) return std::optional<Transport>{};
  if (transport == "one-sided") return std::optional<Transport>{Transport::kOneSided};
  if (transport == "two-sided") return std::optional<Transport>{Transport::kTwoSided};
  return invalid_argument("--transport must be one-sided or two-sided, found '" + transport + "'");
}

Result<std::vector<Plan>> ShapeOptions::plans() const {
  SF_ASSIGN_OR_RETURN(Topology t, topo());
  SF_ASSIGN_OR_RETURN(AttentionShape s, shape());
  SF_RETURN_IF_ERROR(s.validate_split(t.world_size()));  // no scheme can run it: said once, not per scheme
  SF_ASSIGN_OR_RETURN(std::vector<Scheme> list, scheme_list());
  SF_ASSIGN_OR_RETURN(std::optional<Transport> tr, transport_override());
  std::vector<Plan> out;
  std::string last_skip;
  for (Scheme sch : list) {
    Result<Plan> p = make_plan(sch, t, s, mesh, tr, LinkSpeeds{intra_gbps, inter_gbps});
    // With "all", schemes this shape cannot use are skipped with a note; one named scheme must work.
    if (!p.is_ok() && list.size() > 1 && p.status().code() == ErrorCode::kInfeasible) {
      std::cerr << "note: skipping " << scheme_name(sch) << ": " << p.status().message() << "\n";
      last_skip = p.status().message();
      continue;
    }
    SF_RETURN_IF_ERROR(p.status());
    apply_layout_choices(torus_chunks, local_diagonal, &p->config);
    out.push_back(std::move(p).value());
  }
  if (out.empty())  // every scheme skipped: nothing to show is a failure, not an empty table
    return infeasible("no scheme can run " + s.to_string() + " on " + t.to_string() + " (the last one's reason: " +
                      last_skip + ")");
  return out;
}

int report_error(const Status& s) {
  std::cerr << "streamfusion: " << s.to_string() << "\n";
  return s.code() == ErrorCode::kInvalidArgument || s.code() == ErrorCode::kInfeasible ? 2 : 1;
}

}  // namespace sf::cli
