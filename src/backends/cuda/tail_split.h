// Splitting the last wave of an attention launch along K/V (host side, plain C++ so that CPU tests reach it).
//
// A launch of the warp-specialized kernel is `items` thread blocks, one per (Q tile, head, batch), each walking
// all `kv_tiles` K/V tiles; the GPU runs `slots` of them at once (SMs × blocks per SM, one on an H100). When
// items is not a multiple of slots, the last wave runs with idle SMs: 4104 items on 132 SMs (Flux S=32768, one
// GPU) are 31 full waves and 12 blocks alone in a 32nd, 3 % of the launch; a distributed layer's short calls lose
// up to a quarter (288 items = 2.2 waves, bench/sp/TRACES.md). Here the items of the last wave (and of a few
// waves before it, when that balances better) are cut along K/V into `splits` pieces that run side by side; the
// last piece of an item to finish merges the others' partial (Õ, m, l) (split_merge.cuh).
#pragma once

#include <algorithm>
#include <cstdint>

namespace sf::cuda::detail {

struct TailSplit {
  int64_t split_from = 0;  // items [split_from, items) run in `splits` pieces; [0, split_from) whole
  int splits = 1;          // 1: no split
  int64_t pieces(int64_t items) const { return splits > 1 ? (items - split_from) * splits : 0; }
};

// Cost model, in units of one K/V tile of one Q tile: a whole item costs kv_tiles + 2 (loading Q, filling the K/V
// pipeline, storing O); a piece costs its share of the tiles + 2, plus 0.4 per piece of its item (every piece
// writes its partial Õ, the last reads all the others': about 100 KB each at D=128, 0.4 of a tile's time from
// L2). Blocks run in waves of `slots`, the whole items first.
inline double modeled_launch_time(int64_t items, int64_t kv_tiles, int64_t slots, const TailSplit& t) {
  constexpr double kSetup = 2.0, kMergePerPiece = 0.4;
  const auto waves = [&](int64_t blocks) { return static_cast<double>((blocks + slots - 1) / slots); };
  const double whole = static_cast<double>(kv_tiles) + kSetup;
  if (t.splits <= 1) return waves(items) * whole;
  const double piece = static_cast<double>((kv_tiles + t.splits - 1) / t.splits) + kSetup + kMergePerPiece * t.splits;
  return waves(t.split_from) * whole + waves(t.pieces(items)) * piece;
}

// The plan takes the last r + k·slots items (r = items mod slots, k <= 3) in s pieces (2 <= s <= 16, at most
// max_pieces pieces in all: each needs a workspace slot) when the model says that shortens the launch by at least
// 1 % of a whole item; otherwise it splits nothing.
inline TailSplit plan_tail_split(int64_t items, int64_t kv_tiles, int64_t slots, int64_t max_pieces) {
  TailSplit best;
  if (items <= 0 || kv_tiles < 2 || slots <= 0) return best;
  double best_time = modeled_launch_time(items, kv_tiles, slots, best) - 0.01 * (static_cast<double>(kv_tiles) + 2.0);
  const int64_t r = items % slots;
  for (int64_t k = 0; k <= 3; ++k) {
    const int64_t tail = r + k * slots;
    if (tail == 0 || tail > items) continue;
    for (int s = 2; s <= 16 && s <= kv_tiles && tail * s <= max_pieces; ++s) {
      const TailSplit t{items - tail, s};
      const double time = modeled_launch_time(items, kv_tiles, slots, t);
      if (time < best_time) best_time = time, best = t;
    }
  }
  return best;
}

// The last wave's items (items mod slots, or a whole wave when the items fill their waves) in `splits` pieces
// (SF_CUDA_SPLIT_TAIL=tail:n, for comparisons), no more pieces than K/V tiles.
inline TailSplit forced_last_wave_split(int64_t items, int64_t kv_tiles, int64_t slots, int splits) {
  TailSplit t;
  const int64_t r = items % slots;
  t.split_from = items - (r == 0 ? std::min(items, slots) : r);
  t.splits = static_cast<int>(std::min<int64_t>(splits, kv_tiles));
  if (t.splits < 2 || items <= 0) t = TailSplit{};
  return t;
}

// Every item in `splits` pieces (SF_CUDA_SPLIT_TAIL=n, for tests), no more pieces than K/V tiles.
inline TailSplit forced_tail_split(int64_t kv_tiles, int splits) {
  TailSplit t;
  t.splits = static_cast<int>(std::min<int64_t>(splits, kv_tiles));
  if (t.splits < 2) t.splits = 1;
  return t;
}

// A shared call's tail (shared_work.h): the last items mod slots plus `waves` whole waves in `pieces` pieces (at
// most one per K/V tile), as many of them as `max_pieces` workspace slots hold. Cut finer than the tail split's
// model would for one GPU: helpers arriving late find pieces left (at Flux S=65536 one item of the 1x4 ring's
// second call takes about 1 ms, the GPUs' ends spread 0.5 ms). Nothing split with pieces < 2.
inline TailSplit plan_shared_tail(int64_t items, int64_t kv_tiles, int64_t slots, int64_t max_pieces, int waves,
                                  int pieces) {
  TailSplit t;
  const int splits = static_cast<int>(std::min<int64_t>(pieces, kv_tiles));
  if (items <= 0 || slots <= 0 || splits < 2) return t;
  int64_t tail = std::min(items, items % slots + int64_t{waves} * slots);
  tail = std::min(tail, max_pieces / splits);
  if (tail <= 0) return t;
  t.split_from = items - tail;
  t.splits = splits;
  return t;
}

}  // namespace sf::cuda::detail
