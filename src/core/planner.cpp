#include "streamfusion/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <utility>

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

Status LinkSpeeds::validate() const {
  for (const auto& [what, v] : {std::pair<const char*, double>{"intra-machine GB/s", intra_gbps},
                                {"inter-machine GB/s", inter_gbps},
                                {"attention TFLOP/s", attention_tflops}})
    if (!std::isfinite(v) || v <= 0.0)
      return invalid_argument(std::string(what) + " must be a finite number above 0 (the modeled times divide by it), "
                              "found " + std::to_string(v));
  return Status::ok();
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

namespace {

// Bytes of one rank split by whether the schedule can hide them behind attention compute: the plain
// Ulysses all-to-alls (and the output pieces returned inside the Ulysses group) are exposed; Torus stages
// and ring steps overlap with compute, except a two-sided ring inside one machine (between_calls): the layer
// computes the ring peers' blocks in one call once all have arrived, and the forwarding's NCCL kernels cannot
// start while the call on our own block holds every SM, so those transfers run between the two calls (1x4 at
// Flux S=65536 on 4x H200: R4 over NCCL 24.7 ms, over NVSHMEM 21.6-21.8, bench/sp/RESULTS.md and
// bench/sp/results/h200x4-2026-11-27-steady3/).
struct ModeledTraffic {
  LinkBytes exposed, overlapped, between_calls;
};

ModeledTraffic model_traffic(const Mesh& mesh, Transport transport, const Topology& topo, const AttentionShape& shape,
                             int rank, bool local_diagonal = false) {
  ModeledTraffic out;
  const int P = topo.world_size();
  const double E = static_cast<double>(shape.batch) * shape.seq_len / P * shape.heads * shape.head_dim *
                   dtype_size(shape.dtype);
  auto add = [&](LinkBytes& to, int peer, double bytes) {
    if (peer != rank) to.bytes[static_cast<int>(topo.link(rank, peer))] += static_cast<uint64_t>(bytes + 0.5);
  };
  const int u = mesh.degree(LevelKind::kUlysses), t = mesh.degree(LevelKind::kTorus);
  // Q, K, V: each Ulysses and each Torus peer gets 1/degree of the rank's tensor.
  for (int peer : mesh.group(LevelKind::kUlysses, rank)) add(out.exposed, peer, 3.0 * E / u);
  for (int peer : mesh.group(LevelKind::kTorus, rank)) add(out.overlapped, peer, 3.0 * E / t);
  // O: every output piece goes straight to the rank owning its rows, one hop: E/(u·t) to each member of
  // the combined Ulysses x Torus group.
  for (int tp : mesh.group(LevelKind::kTorus, rank))
    for (int peer : mesh.group(LevelKind::kUlysses, tp))
      add(mesh.index_in(LevelKind::kTorus, peer) == mesh.index_in(LevelKind::kTorus, rank) ? out.exposed : out.overlapped,
          peer, E / (u * t));
  // Ring: every K/V block of the ring group reaches every member once (2E per block); one-sided pulls it
  // from its owner, two-sided receives it from the predecessor, so this rank sends r-1 blocks to the next.
  const int r = mesh.degree(LevelKind::kRing);
  const std::vector<int> ring = mesh.group(LevelKind::kRing, rank);
  const int me = mesh.index_in(LevelKind::kRing, rank);
  bool ring_in_machine = true;
  for (int peer : ring) ring_in_machine = ring_in_machine && topo.link(rank, peer) == LinkClass::kIntra;
  // The local diagonal: an lse float per pushed row and head beside each foreign output piece, and the ring pulls
  // every head block of its peers' home K/V (t of them) where it pulled one.
  const bool diagonal = local_diagonal && t > 1 && u == 1 && transport == Transport::kOneSided;
  if (diagonal) {
    const double lse = E / (shape.head_dim * dtype_size(shape.dtype)) * sizeof(float) / t;
    for (int peer : mesh.group(LevelKind::kTorus, rank)) add(out.overlapped, peer, lse);
    for (int peer : mesh.group(LevelKind::kRing, rank)) add(out.overlapped, peer, 2.0 * E / t * (t - 1));
  }
  if (transport == Transport::kOneSided) {
    for (int peer : ring) add(out.overlapped, peer, 2.0 * E);
  } else if (r > 1) {
    add(ring_in_machine ? out.between_calls : out.overlapped, ring[(me + 1) % r], 2.0 * E * (r - 1));
  }
  return out;
}

}  // namespace

LinkBytes model_bytes(const Mesh& mesh, Transport transport, const Topology& topo, const AttentionShape& shape,
                      int rank, bool local_diagonal) {
  ModeledTraffic m = model_traffic(mesh, transport, topo, shape, rank, local_diagonal);
  m.exposed += m.overlapped;
  m.exposed += m.between_calls;
  return m.exposed;
}

Result<Plan> make_plan(Scheme scheme, const Topology& topo, const AttentionShape& shape,
                       const std::string& mesh_override, std::optional<Transport> transport,
                       const LinkSpeeds& speeds) {
  SF_RETURN_IF_ERROR(topo.validate());
  SF_RETURN_IF_ERROR(shape.validate());
  SF_RETURN_IF_ERROR(shape.validate_split(topo.world_size()));
  SF_RETURN_IF_ERROR(speeds.validate());
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
  const int P = topo.world_size();
  ModeledTraffic total;
  for (int g = 0; g < P; ++g) {
    const ModeledTraffic m = model_traffic(plan.config.mesh, plan.config.transport, topo, shape, g);
    total.exposed += m.exposed;
    total.overlapped += m.overlapped;
    total.between_calls += m.between_calls;
  }
  auto ms = [&](const LinkBytes& b) {
    return b.intra() / P / (speeds.intra_gbps * 1e6) + b.inter() / P / (speeds.inter_gbps * 1e6);
  };
  LinkBytes sum = total.exposed;
  sum += total.overlapped;
  sum += total.between_calls;
  for (int c = 0; c < kNumLinkClasses; ++c) plan.bytes_per_gpu.bytes[c] = sum.bytes[c] / P;
  plan.comm_time_ms = ms(sum);
  plan.compute_ms = 4.0 * shape.batch * shape.seq_len * static_cast<double>(shape.seq_len) * shape.heads *
                    shape.head_dim / P / (speeds.attention_tflops * 1e9);
  // Exposed transfers add up; overlapped ones (Torus stages, ring steps) hide behind compute. Both start on
  // local data, so no first chunk is modeled as exposed.
  plan.layer_ms = ms(total.exposed) + ms(total.between_calls) + std::max(plan.compute_ms, ms(total.overlapped));
  // Cutting Torus transfers into row segments pays when the inter-machine transfer is about as long as the
  // compute or longer; below that, the extra, smaller attention calls cost more than they hide (4xH100 and
  // 4xH200, bench/sp/TORUS_CHUNKS.md: one segment was 8 % faster at transfer/compute = 0.73, four 5 % faster
  // at 1.0). 0 lets the algorithm pick up to 4 segments that keep calls large.
  // (Weighed over every transfer a Torus layer's calls follow, the ring's between them included, as when the
  // threshold was measured.)
  LinkBytes followed = total.overlapped;
  followed += total.between_calls;
  const bool comm_bound = ms(followed) >= 0.85 * plan.compute_ms;
  if (plan.config.mesh.degree(LevelKind::kTorus) > 1) plan.config.torus_chunks = comm_bound ? 0 : 1;
  const int t = plan.config.mesh.degree(LevelKind::kTorus);
  // One rank's bytes of one tensor (Q, K, V or O): what the decisions below weigh against the link speeds.
  const double E = static_cast<double>(shape.batch) * shape.seq_len / P * shape.heads * shape.head_dim *
                   dtype_size(shape.dtype);
  // Compute-bound with three or more Torus stages: the foreign rows may take the later K/V sets in groups of
  // doubling size (SpAttentionConfig::merge_kv_sets) where no group waits for its last set. Modeled per rank with
  // u = one (stage, set) pair's compute and tau = one Torus block of one tensor over the inter-machine link: the
  // Q blocks land first (tau each), then set x at (t - 1 + 2x) tau; the compute reaches the sets after t u (its
  // t Q stages against our own set) and each group's call takes (t - 1) u per set. One-sided only: measured on 4
  // emulated machines at 50 GB/s, merging made SFU-NVSHMEM 0.2-1.2 % faster and SFU-NCCL 1-3 % slower (4x H200
  // and 4x H100, bench/sp/results/*-2026-11-27-merge-sets/).
  if (t > 2 && plan.config.torus_chunks == 1 && plan.config.transport == Transport::kOneSided) {
    const double tau = E / t / (speeds.inter_gbps * 1e6), unit = plan.compute_ms / (1.0 * t * t);
    double calls_end = std::max(t * unit, (t + 1) * tau) + (t - 1) * unit;  // the foreign rows' call on set 1
    bool in_time = true;
    for (int g = 2; g < t; g *= 2) {
      const int last = std::min(2 * g - 1, t - 1);
      in_time = in_time && (t - 1 + 2.0 * last) * tau <= calls_end;
      calls_end = std::max(calls_end, (t - 1 + 2.0 * last) * tau) + (last - g + 1) * (t - 1) * unit;
    }
    plan.config.merge_kv_sets = in_time;
  }
  // The foreign rows' output leaves after the last K/V set: (t-1)/t of this GPU's output bytes over the
  // inter-machine link, hidden only by our own rows' last call ((t-1)/t^2 of the compute). When the push is the
  // longer, finalize and push stage by stage (MeshAttention, one-sided).
  if (t > 2) {
    const double push_ms = (t - 1.0) / t * E / (speeds.inter_gbps * 1e6);
    plan.config.stagger_foreign_push = push_ms > plan.compute_ms * (t - 1.0) / (1.0 * t * t);
  }
  // With the ring inside each machine, a pulled K/V set is whole only once the ring peers' blocks have been
  // copied over after their own pulls. When the layer waits for that (every Torus pull then the last set's ring
  // copies outlast the compute that needs no later set: 1 + (t-1)^2 of the t^2 (stage, set) pairs), the foreign
  // rows take our own Torus block of each set first. It matters where the layer moves whole sets (one segment
  // per stage, which the layer also picks for small calls when torus_chunks is 0); segmented sets ignore it.
  // One-sided only: the ring peers' blocks then move by copy engine beside the call. Two-sided, they move in NCCL
  // kernels, which cannot start while the call holds every SM, so the early call delays them (4x H200, 19:52:
  // Flux S=16384 2x2 at 50 GB/s, SFU-NVSHMEM 1.59 -> 1.53 ms, SFU-NCCL 1.86 -> 1.94 ms;
  // bench/sp/results/h200x4-2026-11-27-foreign-rows/).
  const int r = plan.config.mesh.degree(LevelKind::kRing);
  if (t > 1 && r > 1 && plan.config.transport == Transport::kOneSided &&
      plan.config.mesh.level_within_machines(LevelKind::kRing, topo)) {
    const double landed_ms =
        3.0 * (t - 1) * E / t / (speeds.inter_gbps * 1e6) + (r - 1) * 2.0 * E / t / (speeds.intra_gbps * 1e6);
    const double before_ms = plan.compute_ms * (1.0 + (t - 1.0) * (t - 1.0)) / (1.0 * t * t);
    plan.config.foreign_rows_by_block = landed_ms > before_ms;
  }
  // The local diagonal (one-sided, a Torus level without Ulysses) where the inter-machine transfer is not small
  // next to the compute: its foreign output leaves a K/V set earlier, at the price of t more attention calls and a
  // merge. On 4 emulated machines (4x H100, 2026-11-28, bench/sp/results/h100x4-2026-11-28-diagonal/): 1.02-1.07x
  // faster where the transfer is at least 0.8 of the compute (Flux S=16384 at 50 GB/s, every Flux and CogVideoX cell
  // at 6.25 GB/s), 0.98-0.99x where it is about half or less (Flux S=36864 and CogVideoX S=81920 at 50 GB/s).
  // Measured again with the diagonal of session 29 (by head blocks on two machines, partials merged on arrival, no
  // final barrier; 4x H200, emulated 2x2 and 4x1 at 50 GB/s, bench/sp/results/h200x4-2026-11-28-session30/
  // diag-at-50/): still 0.97-1.00x at Flux S=36864 and 65536 and CogVideoX S=81920, so the rule stands.
  if (t > 1 && plan.config.mesh.degree(LevelKind::kUlysses) == 1 && plan.config.transport == Transport::kOneSided) {
    const double inter_ms = sum.inter() / P / (speeds.inter_gbps * 1e6);
    plan.config.local_diagonal = inter_ms >= 0.6 * plan.compute_ms;
    if (plan.config.local_diagonal) {  // its lse and ring bytes in the plan's figures (the modeled layer ignores them)
      LinkBytes with;
      for (int g = 0; g < P; ++g) with += model_bytes(plan.config.mesh, plan.config.transport, topo, shape, g, true);
      for (int c = 0; c < kNumLinkClasses; ++c) plan.bytes_per_gpu.bytes[c] = with.bytes[c] / P;
      plan.comm_time_ms = ms(with);
    }
  }
  // A lone one-sided ring inside one machine pulls its peers' K/V by heads and takes every block in one call
  // (SpAttentionConfig::ring_heads_per_step). Small steps, so that the call's first heads land early: as few heads
  // as make 512 bytes per row (2 at D=128 in 16 bits, 4 at D=64; copy engines moved such strided rows at 230 GB/s).
  // On 2x H200 (1x2, Flux S=16384-65536, bench/sp/results/h200x2-2026-11-28-ring-heads/) steps of 1 to 8 heads
  // ran 0.945-0.996x the two calls of whole blocks, one step of all 24 heads 0.980-1.001x.
  // Beside Torus stages without the local diagonal the same for the home K/V (set 0): our rows' first call takes
  // every home block. On 4x H200 (emulated 2x2 at 50 GB/s, SFU-NVSHMEM, two rounds each,
  // bench/sp/results/h200x4-2026-11-28-home-by-heads/): Flux S=36864 0.989x the two calls, S=65536 0.999x,
  // CogVideoX S=81920 1.003x.
  // With the local diagonal on two machines the same steps bring the ring peers' blocks of the head block that our
  // rows' first call takes against every home block (MeshAttention::diagonal_block_call).
  const bool diagonal_by_blocks = plan.config.local_diagonal && t == 2;
  if (r > 1 && plan.config.mesh.degree(LevelKind::kUlysses) == 1 &&
      (!plan.config.local_diagonal || diagonal_by_blocks) && plan.config.transport == Transport::kOneSided &&
      plan.config.mesh.level_within_machines(LevelKind::kRing, topo)) {
    const int64_t row_bytes = shape.head_dim * dtype_size(shape.dtype);
    plan.config.ring_heads_per_step = static_cast<int>(std::min<int64_t>(shape.heads, (511 + row_bytes) / row_bytes));
  }
  const Mesh& m = plan.config.mesh;
  char buf[640];
  std::snprintf(buf, sizeof buf,
                "%s on %s: mesh %s (Torus %d, Ulysses %d, Ring %d), %s; mean per GPU %.3f MB intra-machine, "
                "%.3f MB inter-machine; modeled layer %.3f ms (compute %.3f ms)",
                scheme_name(scheme), topo.to_string().c_str(), m.to_string().c_str(), m.degree(LevelKind::kTorus),
                m.degree(LevelKind::kUlysses), m.degree(LevelKind::kRing), transport_name(plan.config.transport),
                plan.bytes_per_gpu.intra() / 1e6, plan.bytes_per_gpu.inter() / 1e6, plan.layer_ms,
                plan.compute_ms);
  plan.explanation = buf;
  if (m.degree(LevelKind::kTorus) > 1)
    plan.explanation += plan.config.torus_chunks == 1
                            ? "; compute-bound: one transfer per Torus stage"
                            : "; communication-bound: Torus transfers cut into up to 4 row segments";
  if (plan.config.stagger_foreign_push)
    plan.explanation += "; the foreign output is pushed stage by stage (it outlasts our own rows' last call)";
  if (plan.config.merge_kv_sets && !plan.config.foreign_rows_by_block)
    plan.explanation += "; the foreign rows take the later K/V sets in groups of doubling size (they land in time)";
  if (plan.config.local_diagonal)
    plan.explanation += "; each rank computes its own rows against its own machine's keys for every head, and the "
                        "foreign rows' partial output leaves a K/V set earlier (the transfers are not small next to "
                        "the compute)";
  if (plan.config.foreign_rows_by_block)
    plan.explanation += "; the foreign rows take each K/V set's Torus block before its ring copies (the layer "
                        "waits for the set)";
  if (plan.config.ring_heads_per_step > 0 && diagonal_by_blocks)
    plan.explanation += "; our rows' first call takes one head block against every home block, the ring peers' "
                        "blocks of it pulled " + std::to_string(plan.config.ring_heads_per_step) + " heads at a time";
  else if (plan.config.ring_heads_per_step > 0)
    plan.explanation += "; the ring pulls its peers' " + std::string(t > 1 ? "home " : "") + "K/V " +
                        std::to_string(plan.config.ring_heads_per_step) + " heads at a time and our rows take every " +
                        (t > 1 ? "home " : "") + "block in one call";
  if ((scheme == Scheme::kTas || scheme == Scheme::kTorus || scheme == Scheme::kSfu) &&
      shape.heads % topo.machines != 0)
    plan.explanation += "; heads " + std::to_string(shape.heads) + " do not divide by " +
                        std::to_string(topo.machines) + " machines, so the cross-machine Ulysses degree is gcd = " +
                        std::to_string(m.degree(scheme == Scheme::kTas ? LevelKind::kUlysses : LevelKind::kTorus)) +
                        " and the ring spans machines";
  return plan;
}

}  // namespace sf

namespace sf {

Result<Plan> recommend_plan(const Topology& topo, const AttentionShape& shape, const LinkSpeeds& speeds) {
  SF_RETURN_IF_ERROR(topo.validate());
  SF_RETURN_IF_ERROR(shape.validate());
  SF_RETURN_IF_ERROR(shape.validate_split(topo.world_size()));
  SF_RETURN_IF_ERROR(speeds.validate());
  std::vector<Plan> candidates;
  for (Scheme s : all_schemes()) {
    Result<Plan> p = make_plan(s, topo, shape, "", {}, speeds);
    if (p) candidates.push_back(std::move(p).value());
  }
  // SFU meshes with part of the Ulysses degree inside the machine: T{M}U{u'}R{N/u'}.
  const int M = topo.machines, N = topo.gpus_per_machine;
  for (int up = 2; up <= N; ++up) {
    if (N % up != 0 || M < 2) continue;
    std::string mesh = "T";  // built piecewise: GCC 12 warns falsely (-Wrestrict) on "T" + std::to_string
    mesh += std::to_string(M);
    mesh += "U";
    mesh += std::to_string(up);
    mesh += "R";
    mesh += std::to_string(N / up);
    Result<Plan> p = make_plan(Scheme::kSfu, topo, shape, mesh, {}, speeds);
    if (p) candidates.push_back(std::move(p).value());
  }
  if (candidates.empty()) return infeasible("no scheme fits " + shape.to_string() + " on " + topo.to_string());
  // Lowest modeled time; among plans within 1 % of it, the fewest inter-machine bytes (the scarce link; within 1 %
  // counts as equal: the local diagonal's lse floats add about 1/(8D) to Q, K, V and O), then the one-sided
  // transport (copy engines, no SMs: SFU over NVSHMEM beat SFU over NCCL in all 25 settings of run 23,
  // bench/sp/RESULTS.md).
  double fastest = candidates[0].layer_ms;
  for (const Plan& p : candidates) fastest = std::min(fastest, p.layer_ms);
  const Plan* best = nullptr;
  auto better = [](const Plan& a, const Plan& b) {
    const double ai = static_cast<double>(a.bytes_per_gpu.inter()), bi = static_cast<double>(b.bytes_per_gpu.inter());
    if (std::abs(ai - bi) > 0.01 * std::max(ai, bi)) return ai < bi;
    return a.config.transport == Transport::kOneSided && b.config.transport != Transport::kOneSided;
  };
  for (const Plan& p : candidates)
    if (p.layer_ms <= fastest * 1.01 && (!best || better(p, *best))) best = &p;
  Plan out = *best;
  out.explanation = "recommended (lowest modeled layer time of " + std::to_string(candidates.size()) +
                    " candidates): " + out.explanation;
  return out;
}

}  // namespace sf
