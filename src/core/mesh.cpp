#include "streamfusion/mesh.h"

#include <set>

#include "core/parse.h"

namespace sf {

char level_letter(LevelKind k) {
  switch (k) {
    case LevelKind::kTorus: return 'T';
    case LevelKind::kUlysses: return 'U';
    case LevelKind::kRing: return 'R';
  }
  return '?';
}

Result<Mesh> Mesh::make(std::vector<MeshLevel> levels, int world_size) {
  if (world_size < 1) return invalid_argument("world size must be at least 1, found " + std::to_string(world_size));
  std::set<LevelKind> seen;
  int64_t product = 1;
  Mesh mesh;
  for (const MeshLevel& l : levels) {
    if (l.degree < 1)
      return invalid_argument(std::string("mesh level ") + level_letter(l.kind) + " has degree " +
                              std::to_string(l.degree) + "; degrees must be at least 1");
    if (!seen.insert(l.kind).second)
      return invalid_argument(std::string("mesh names level ") + level_letter(l.kind) +
                              " twice; each of T, U, R may appear once");
    product *= l.degree;
    if (l.degree > 1) mesh.levels_.push_back(l);
  }
  if (product != world_size)
    return infeasible("mesh degrees multiply to " + std::to_string(product) + " but there are " +
                      std::to_string(world_size) + " GPUs; the degrees must multiply to the GPU count");
  mesh.world_ = world_size;
  return mesh;
}

Result<Mesh> Mesh::parse(const std::string& s, int world_size) {
  std::vector<MeshLevel> levels;
  size_t i = 0;
  const std::string expected = "a mesh like U4R2, R4U2, T4R2 or T2U2R2 (levels T/U/R, outermost first)";
  if (s.empty()) return invalid_argument("empty mesh string; expected " + expected);
  while (i < s.size()) {
    LevelKind kind;
    switch (s[i]) {
      case 'T': case 't': kind = LevelKind::kTorus; break;
      case 'U': case 'u': kind = LevelKind::kUlysses; break;
      case 'R': case 'r': kind = LevelKind::kRing; break;
      default:
        return invalid_argument("mesh '" + s + "': unexpected '" + std::string(1, s[i]) + "' at position " +
                                std::to_string(i) + "; expected " + expected);
    }
    size_t j = ++i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    int64_t degree = 0;
    if (!parse_positive(s.substr(i, j - i), &degree))
      return invalid_argument("mesh '" + s + "': level " + level_letter(kind) +
                              " needs a degree from 1 to 999999999 after it; expected " + expected);
    levels.push_back({kind, static_cast<int>(degree)});
    i = j;
  }
  return make(std::move(levels), world_size);
}

int Mesh::degree(LevelKind k) const {
  for (const MeshLevel& l : levels_)
    if (l.kind == k) return l.degree;
  return 1;
}

int Mesh::stride(LevelKind k) const {
  int s = 1;
  for (auto it = levels_.rbegin(); it != levels_.rend(); ++it) {
    if (it->kind == k) return s;
    s *= it->degree;
  }
  return s;  // absent level: degree 1, any stride works
}

int Mesh::index_in(LevelKind k, int rank) const { return (rank / stride(k)) % degree(k); }

std::vector<int> Mesh::group(LevelKind k, int rank) const {
  const int d = degree(k), st = stride(k), base = rank - index_in(k, rank) * st;
  std::vector<int> g(d);
  for (int i = 0; i < d; ++i) g[i] = base + i * st;
  return g;
}

bool Mesh::level_within_machines(LevelKind k, const Topology& topo) const {
  for (int r = 0; r < world_; ++r)
    for (int peer : group(k, r))
      if (topo.machine_of(peer) != topo.machine_of(r)) return false;
  return true;
}

bool Mesh::level_across_machines(LevelKind k, const Topology& topo) const {
  for (int r = 0; r < world_; ++r) {
    std::set<int> machines;
    for (int peer : group(k, r))
      if (!machines.insert(topo.machine_of(peer)).second) return false;
  }
  return true;
}

std::string Mesh::to_string() const {
  if (levels_.empty()) return "R1";
  std::string s;
  for (const MeshLevel& l : levels_) s += level_letter(l.kind) + std::to_string(l.degree);
  return s;
}

}  // namespace sf
