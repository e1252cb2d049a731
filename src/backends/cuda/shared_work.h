// Work that GPUs of one machine share while a call runs (sf::SharedWork, AttentionProblem::shared): the layout of
// the owner's workspace and the plan of a shared launch of the warp-specialized kernel. Host and device code,
// plain C++ so that CPU tests reach the plan.
//
// Why: four GPUs at their power cap do not run equally fast (their identical calls in a 1x4 ring end up to 0.5 ms
// apart at Flux S=65536, bench/sp/TRACES.md), and a layer ends with the slowest. Loans fixed from a measurement
// cannot follow speeds that drift within seconds (session 16). Here the GPUs that finish first take the rest of
// a slower one's call while it runs: in a lone ring every GPU holds every K/V block by then.
//
// How: the owner's launch and every helper's launch take their blocks of work (tail_split.h: items whole, the
// last ones in pieces along K/V) from one counter in the owner's memory, the first block too, with atomics at
// system scope; the pieces' partials meet in the owner's workspace as a tail split's do (split_merge.cuh), at
// system scope. A helper reads the owner's Q rows and accumulator and writes its output through NVLink (peer
// pointers), and its own copies of the K/V blocks, in the owner's order. The tail is cut finer than one GPU's tail
// split would be, so that a helper that arrives a few hundred microseconds before the owner's end still finds
// work to take.
//
// What a helper takes: only blocks beyond the owner's last round. Once no more blocks are left unclaimed than the
// owner has thread blocks, each of its SMs takes at most one more and ends within about a block's time; a helper
// taking one of those would end no sooner (its block reads Q and the accumulator over NVLink, its launch starts
// cold), and did end later in the first traces (4x H200, Flux S=65536: helper launches ran 0.45 ms past the owner's
// own end). So helpers shorten the owner's call by whole rounds of its tail's pieces. That argument holds only for
// the owner's last round: earlier, a block that a helper takes moves the owner's end forward by its share of a
// round, as long as the owner has rounds left beside it that outlast the helper's block; how much helpers leave
// the owner (`reserve`, in blocks of work) is therefore a setting (SF_CUDA_SHARE_RESERVE, percent of the owner's
// thread blocks; the default a whole round), measured in bench/sp/TRACES.md.
//
// Order: the owner's stream arms the queue (zero, the plan, then `go` = the call's epoch, released at system
// scope) after the call that wrote its accumulator; a helper's producer threads wait for `go` to reach the
// epoch, then take work only if the owner's plan is theirs (the same blocks, split and geometry): a mismatch, or
// an owner that could not share (another kernel, a fallback) and armed with no plan, leaves all the work to it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sf::cuda::detail {

struct SharedHeader {
  unsigned long long go;  // the owner's epoch once the queue below is armed
  unsigned queue;         // the next block of work (past `plan[0]`: none left)
  unsigned helped;        // blocks of work that helpers took (a diagnostic)
  unsigned plan[4];       // the owner's blocks, split_from, splits, geometry signature; blocks 0: no sharing
  unsigned reserve;       // helpers leave the owner the last that many blocks of work (SF_CUDA_SHARE_RESERVE)
};
constexpr size_t kSharedHeaderBytes = 256;
static_assert(sizeof(SharedHeader) <= kSharedHeaderBytes, "the shared workspace's header outgrew its room");

// Where the split pieces' arrival counts, (m, l) pairs and Õ rows sit in a workspace of `bytes` (offsets from
// its start), and how many pieces of rows_m × head_dim rows fit.
struct SharedLayout {
  size_t counts = 0, ml = 0, o = 0;
  int64_t max_pieces = 0;
};
inline SharedLayout shared_layout(size_t bytes, int rows_m, int head_dim) {
  SharedLayout l;
  const size_t per_piece = sizeof(unsigned) + static_cast<size_t>(rows_m) * (2 + head_dim) * sizeof(float);
  if (bytes <= kSharedHeaderBytes + 512) return l;
  const auto pieces = static_cast<int64_t>((bytes - kSharedHeaderBytes - 512) / per_piece);  // 512: alignment
  const auto align = [](size_t x) { return (x + 255) / 256 * 256; };
  l.counts = kSharedHeaderBytes;
  l.ml = align(l.counts + static_cast<size_t>(pieces) * sizeof(unsigned));
  l.o = align(l.ml + static_cast<size_t>(pieces) * rows_m * 2 * sizeof(float));
  l.max_pieces = pieces;
  return l;
}

// A 32-bit signature of a launch's geometry (FNV-1a over the values): owner and helper must cut the same work.
struct GeometrySignature {
  uint32_t h = 2166136261u;
  void add(int64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ static_cast<uint32_t>((v >> (8 * i)) & 0xff)) * 16777619u;
  }
};

}  // namespace sf::cuda::detail
