// The planner: picks the mesh of each scheme from the paper's rules, checks explicit meshes a user asks
// for, and explains the choice as bytes per GPU per link class (and a modeled communication time).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "streamfusion/attention_shape.h"
#include "streamfusion/comm.h"
#include "streamfusion/mesh.h"
#include "streamfusion/sp_attention.h"
#include "streamfusion/topology.h"

namespace sf {

enum class Scheme : uint8_t {
  kRing,     // R_P
  kUlysses,  // U_P
  kUsp,      // Ulysses inside machines, Ring across (Fang & Zhao 2024): R{P/u}U{u}, u = N or gcd(H, N)
  kTas,      // topology-aware: Ulysses across machines, Ring inside: U{u}R{P/u}, u = M or gcd(H, M)
  kTorus,    // TAS mesh with the cross-machine Ulysses overlapped as Torus stages, two-sided
  kSfu,      // StreamFusion: Torus mesh, one-sided communication (paper Algorithm 1)
  kCustom,   // any feasible explicit mesh
};
const char* scheme_name(Scheme s);  // "ring", "ulysses", "usp", "tas", "torus", "sfu", "custom"
bool parse_scheme(const std::string& s, Scheme* out);
std::vector<Scheme> all_schemes();  // every scheme but kCustom, in the order above

// Link speeds used to turn bytes into a modeled time (GB/s per GPU per direction).
struct LinkSpeeds {
  double intra_gbps = 300.0;
  double inter_gbps = 50.0;
  double attention_tflops = 400.0;  // attention compute rate per GPU, for the modeled overlap

  Status validate() const;  // every rate finite and > 0 (the modeled times divide by them)
};

struct Plan {
  Scheme scheme = Scheme::kSfu;
  SpAttentionConfig config;
  LinkBytes bytes_per_gpu;    // modeled from the schedule, even split, mean over ranks
  double comm_time_ms = 0.0;  // bytes / link speed, both link classes summed, nothing overlapped
  double compute_ms = 0.0;    // attention FLOPs per GPU / attention_tflops
  double layer_ms = 0.0;      // exposed transfers + max(compute, overlapped transfers)
  std::string explanation;    // one or two sentences: why this mesh, and what moves where
};

// Default mesh of a scheme on a topology for a head count (the paper's rules above).
Result<Mesh> default_mesh(Scheme scheme, const Topology& topo, int64_t heads);

// Checks a mesh against a scheme's structure, the topology and the shape; the message says why and
// what would work.
Status check_mesh(Scheme scheme, const Mesh& mesh, const Topology& topo, const AttentionShape& shape);

// Plans one scheme: mesh_override empty = the scheme's default mesh; transport override optional
// (default: one-sided for SFU, two-sided otherwise).
Result<Plan> make_plan(Scheme scheme, const Topology& topo, const AttentionShape& shape,
                       const std::string& mesh_override = "", std::optional<Transport> transport = {},
                       const LinkSpeeds& speeds = {});

// Picks the scheme and mesh with the lowest modeled layer time among every scheme's default mesh and the
// SFU meshes that keep part of the Ulysses degree inside the machine (T·U'·R).
Result<Plan> recommend_plan(const Topology& topo, const AttentionShape& shape, const LinkSpeeds& speeds = {});

// Bytes rank `rank` moves per link class for one forward, derived from each level's schedule with the
// sequence split evenly (E = B·(S/P)·H·D elements per tensor); see DESIGN.md section 5.
// local_diagonal: with SpAttentionConfig::local_diagonal (where the mesh and transport take it).
LinkBytes model_bytes(const Mesh& mesh, Transport transport, const Topology& topo, const AttentionShape& shape,
                      int rank, bool local_diagonal = false);

}  // namespace sf
