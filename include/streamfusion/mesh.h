// A mesh: how the P = M·N ranks are split into sequence-parallel levels.
//
// Three kinds of level, each with a degree:
//   T  Torus:   Ulysses across machines, its all-to-all cut into stages that overlap attention
//   U  Ulysses: plain all-to-all (heads scattered, sequence gathered)
//   R  Ring:    K/V chunks circulate, merged into a running accumulator
// A mesh string lists levels from the outermost (largest rank stride) to the innermost (contiguous ranks),
// e.g. on 4 machines × 2 GPUs: "U4R2" is TAS (Ulysses across machines, ring inside), "R4U2" is USP (ring
// across, Ulysses inside), "T4R2" is SFU's Torus mesh, "T2U2R2" on 2×4 splits the Ulysses degree across
// (Torus 2) and inside (U 2). Degree-1 levels may be omitted. The degrees multiply to P.
//
// Execution order does not follow the string: every rank first runs the plain Ulysses level, then Torus,
// and the Ring level is innermost (it is the attention compute of each Torus stage).
#pragma once

#include <string>
#include <vector>

#include "streamfusion/status.h"
#include "streamfusion/topology.h"

namespace sf {

enum class LevelKind : uint8_t { kTorus = 0, kUlysses = 1, kRing = 2 };
char level_letter(LevelKind k);  // 'T', 'U', 'R'

struct MeshLevel {
  LevelKind kind;
  int degree;
};

class Mesh {
 public:
  Mesh() = default;
  // Levels outermost first; each kind at most once; degrees ≥ 1.
  static Result<Mesh> make(std::vector<MeshLevel> levels, int world_size);
  // Parses "U4R2", "T2U2R2", "R8", ... and checks the degrees multiply to world_size.
  static Result<Mesh> parse(const std::string& s, int world_size);

  int world_size() const { return world_; }
  int degree(LevelKind k) const;  // 1 if the level is absent
  int stride(LevelKind k) const;  // rank distance between neighbours of this level
  int index_in(LevelKind k, int rank) const;  // this rank's coordinate in level k
  // Members of rank's group in level k, ordered by their coordinate (member i has index_in == i).
  std::vector<int> group(LevelKind k, int rank) const;
  // True if every group of level k lies inside one machine / every member is on a distinct machine.
  bool level_within_machines(LevelKind k, const Topology& topo) const;
  bool level_across_machines(LevelKind k, const Topology& topo) const;
  const std::vector<MeshLevel>& levels() const { return levels_; }
  std::string to_string() const;  // canonical, degree-1 levels dropped ("R1" for P == 1)

 private:
  std::vector<MeshLevel> levels_;
  int world_ = 1;
};

}  // namespace sf
