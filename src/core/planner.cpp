#include "streamfusion/planner.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace sf {

const char* scheme_name(Scheme s) {
  switch (s) {
    case Scheme::kRing: return "ring";
    case Scheme::kUlysses: return "ulysses";
    case Scheme::kUsp: return "usp";
    case Scheme::kTas: return "tas";
    case Scheme::kTorus: return "torus";
    case Scheme::kSfu: return "sfu";
    case Scheme::kCustom: return "custom";
  }
  return "?";
}

bool parse_scheme(const std::string& s, Scheme* out) {
  for (Scheme c : {Scheme::kRing, Scheme::kUlysses, Scheme::kUsp, Scheme::kTas, Scheme::kTorus, Scheme::kSfu,
                   Scheme::kCustom})
    if (s == scheme_name(c)) {
      *out = c;
      return true;
    }
  return false;
}

std::vector<Scheme> all_schemes() {
  return {Scheme::kRing, Scheme::kUlysses, Scheme::kUsp, Scheme::kTas, Scheme::kTorus, Scheme::kSfu};
}

namespace {

int gcd_int(int64_t a, int64_t b) { return static_cast<int>(std::gcd(a, b)); }


}  // namespace

Result<Mesh> default_mesh(Scheme scheme, const Topology& topo, int64_t heads) {
  SF_RETURN_IF_ERROR(topo.validate());
  if (heads < 1) return invalid_argument("heads must be at least 1, found " + std::to_string(heads));
  const int P = topo.world_size(), M = topo.machines, N = topo.gpus_per_machine;
  switch (scheme) {
    case Scheme::kRing: return Mesh::make({{LevelKind::kRing, P}}, P);
    case Scheme::kUlysses:
      if (heads % P != 0)
        return infeasible("Ulysses over " + std::to_string(P) + " GPUs needs heads divisible by " +
                          std::to_string(P) + ", found " + std::to_string(heads) +
                          " heads; try usp, tas or sfu, which mix in a ring");
      return Mesh::make({{LevelKind::kUlysses, P}}, P);
    case Scheme::kUsp: {
      const int u = heads % N == 0 ? N : gcd_int(heads, N);
      return Mesh::make({{LevelKind::kRing, P / u}, {LevelKind::kUlysses, u}}, P);
    }
    case Scheme::kTas:
    case Scheme::kTorus:
    case Scheme::kSfu: {
      const int u = heads % M == 0 ? M : gcd_int(heads, M);
      const LevelKind across = scheme == Scheme::kTas ? LevelKind::kUlysses : LevelKind::kTorus;
      return Mesh::make({{across, u}, {LevelKind::kRing, P / u}}, P);
    }
    case Scheme::kCustom:
      return invalid_argument("the custom scheme has no default mesh: give one with --mesh (e.g. T2U2R2)");
  }
  return internal_error("unknown scheme");
}

Status check_mesh(Scheme scheme, const Mesh& mesh, const Topology& topo, const AttentionShape& shape) {
  SF_RETURN_IF_ERROR(topo.validate());
  SF_RETURN_IF_ERROR(shape.validate());
  const int P = topo.world_size();
  const std::string name = mesh.to_string(), sch = scheme_name(scheme);
  if (mesh.world_size() != P)
    return infeasible("mesh " + name + " covers " + std::to_string(mesh.world_size()) + " GPUs but topology " +
                      topo.to_string() + " has " + std::to_string(P));
  auto hint = [&]() -> std::string {
    Result<Mesh> d = default_mesh(scheme, topo, shape.heads);
    return d ? "; " + sch + " on " + topo.to_string() + " with " + std::to_string(shape.heads) +
                   " heads would use " + d->to_string()
             : "";
  };
  const int U = mesh.degree(LevelKind::kUlysses), T = mesh.degree(LevelKind::kTorus),
            R = mesh.degree(LevelKind::kRing);
  if (shape.heads % (static_cast<int64_t>(U) * T) != 0)
    return infeasible("mesh " + name + " splits heads " + std::to_string(U * T) + " ways (Ulysses " +
                      std::to_string(U) + " x Torus " + std::to_string(T) + ") but " + std::to_string(shape.heads) +
                      " heads do not divide by " + std::to_string(U * T) + hint());
  auto refuse = [&](const std::string& why) { return infeasible(sch + " mesh " + name + ": " + why + hint()); };
  const bool ring_may_cross = shape.heads % topo.machines != 0;  // the paper's gcd case
  switch (scheme) {
    case Scheme::kRing:
      if (U != 1 || T != 1) return refuse("ring attention uses only a ring level (R" + std::to_string(P) + ")");
      break;
    case Scheme::kUlysses:
      if (R != 1 || T != 1) return refuse("Ulysses attention uses only a Ulysses level (U" + std::to_string(P) + ")");
      break;
    case Scheme::kUsp:
      if (T != 1) return refuse("USP has no Torus level");
      if (!mesh.level_within_machines(LevelKind::kUlysses, topo))
        return refuse("USP keeps each Ulysses group inside one machine, but this one spans machines");
      break;
    case Scheme::kTas:
      if (T != 1) return refuse("TAS has no Torus level (use torus or sfu for the overlapped form)");
      if (!ring_may_cross && !mesh.level_within_machines(LevelKind::kRing, topo))
        return refuse("TAS keeps each ring inside one machine (Ulysses across), but this ring spans machines");
      break;
    case Scheme::kTorus:
    case Scheme::kSfu:
      if (!mesh.level_across_machines(LevelKind::kTorus, topo))
        return refuse("a Torus group must have one GPU per machine (it overlaps the inter-machine all-to-all)");
      if (!mesh.level_within_machines(LevelKind::kUlysses, topo))
        return refuse("the plain Ulysses level of a Torus mesh stays inside each machine");
      if (!ring_may_cross && !mesh.level_within_machines(LevelKind::kRing, topo))
        return refuse("the ring of a Torus mesh stays inside one machine, but this ring spans machines");
      break;
    case Scheme::kCustom: break;
  }
  return Status::ok();
}

LinkBytes model_bytes(const Mesh& mesh, Transport transport, const Topology& topo, const AttentionShape& shape,
                      int rank) {
  LinkBytes out;
  const int P = topo.world_size();
  const double E = static_cast<double>(shape.batch) * shape.seq_len / P * shape.heads * shape.head_dim *
                   dtype_size(shape.dtype);
  auto add = [&](int peer, double bytes) {
    if (peer != rank) out.bytes[static_cast<int>(topo.link(rank, peer))] += static_cast<uint64_t>(bytes + 0.5);
  };
  // Ulysses and Torus: Q, K, V and O each send 1/degree of a tensor to every other member.
  for (LevelKind k : {LevelKind::kUlysses, LevelKind::kTorus}) {
    const int d = mesh.degree(k);
    for (int peer : mesh.group(k, rank)) add(peer, 4.0 * E / d);
  }
  // Ring: every K/V block of the ring group reaches every member once (2E per block); one-sided pulls it
  // from its owner, two-sided receives it from the predecessor, so this rank sends r−1 blocks to the next.
  const int r = mesh.degree(LevelKind::kRing);
  const std::vector<int> ring = mesh.group(LevelKind::kRing, rank);
  const int me = mesh.index_in(LevelKind::kRing, rank);
  if (transport == Transport::kOneSided) {
    for (int peer : ring) add(peer, 2.0 * E);
  } else if (r > 1) {
    add(ring[(me + 1) % r], 2.0 * E * (r - 1));
  }
  return out;
}

Result<Plan> make_plan(Scheme scheme, const Topology& topo, const AttentionShape& shape,
                       const std::string& mesh_override, std::optional<Transport> transport,
                       const LinkSpeeds& speeds) {
  SF_RETURN_IF_ERROR(topo.validate());
  SF_RETURN_IF_ERROR(shape.validate());
  Plan plan;
  plan.scheme = scheme;
  if (mesh_override.empty()) {
    SF_ASSIGN_OR_RETURN(plan.config.mesh, default_mesh(scheme, topo, shape.heads));
  } else {
    SF_ASSIGN_OR_RETURN(plan.config.mesh, Mesh::parse(mesh_override, topo.world_size()));
  }
  SF_RETURN_IF_ERROR(check_mesh(scheme, plan.config.mesh, topo, shape));
  plan.config.transport = transport.value_or(scheme == Scheme::kSfu ? Transport::kOneSided : Transport::kTwoSided);
  // Mean over ranks: ranks differ where a ring crosses a machine boundary hop by hop.
  LinkBytes total;
  for (int g = 0; g < topo.world_size(); ++g)
    total += model_bytes(plan.config.mesh, plan.config.transport, topo, shape, g);
  for (int c = 0; c < kNumLinkClasses; ++c) plan.bytes_per_gpu.bytes[c] = total.bytes[c] / topo.world_size();
  plan.comm_time_ms = plan.bytes_per_gpu.intra() / (speeds.intra_gbps * 1e6) +
                      plan.bytes_per_gpu.inter() / (speeds.inter_gbps * 1e6);
  const Mesh& m = plan.config.mesh;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s on %s: mesh %s (Torus %d, Ulysses %d, Ring %d), %s; mean per GPU %.3f MB intra-machine, "
                "%.3f MB inter-machine",
                scheme_name(scheme), topo.to_string().c_str(), m.to_string().c_str(), m.degree(LevelKind::kTorus),
                m.degree(LevelKind::kUlysses), m.degree(LevelKind::kRing), transport_name(plan.config.transport),
                plan.bytes_per_gpu.intra() / 1e6, plan.bytes_per_gpu.inter() / 1e6);
  plan.explanation = buf;
  if ((scheme == Scheme::kTas || scheme == Scheme::kTorus || scheme == Scheme::kSfu) &&
      shape.heads % topo.machines != 0)
    plan.explanation += "; heads " + std::to_string(shape.heads) + " do not divide by " +
                        std::to_string(topo.machines) + " machines, so the cross-machine Ulysses degree is gcd = " +
                        std::to_string(m.degree(scheme == Scheme::kTas ? LevelKind::kUlysses : LevelKind::kTorus)) +
                        " and the ring spans machines";
  return plan;
}

}  // namespace sf
