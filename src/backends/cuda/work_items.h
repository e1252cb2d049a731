// Which work a block of the warp-specialized kernel's linear grid does (attention_hopper_ws.cu): an item (Q tile,
// head, batch) whole, or one piece of it along K/V, a tail split's (tail_split.h: equal shares) or a lead split's
// (cut where the leading chunks end). Host and device code over any arguments with the fields it reads, so that
// CPU tests walk every block of a launch (tests/cpu/test_tail_split.cpp).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SF_WORK_FN __host__ __device__ __forceinline__
#else
#define SF_WORK_FN inline
#endif

namespace sf::cuda::detail {

// What a thread block of the linear grid computes.
struct WorkItem {
  int tile;    // Q tile index within the launch's chunks (as blockIdx.x for the other kernels)
  int h, b;
  int piece;   // 0 .. pieces-1
  int pieces;  // 1: the whole K/V walk
  int slot0;   // workspace slot of piece 0 of this item (split items only); its arrival count is slot0 / pieces
  int cut;     // lead pieces: the K/V tile where piece 1 starts; -1: pieces of equal shares
};

// Block bx of the linear grid; tiles: Q tiles per (head, batch). Args: AttentionArgs (blocks, heads, split_from,
// splits, lead_items, lead_tiles).
template <class Args>
SF_WORK_FN WorkItem work_item(const Args& args, int tiles, int bx) {
  WorkItem w;
  int item;
  w.cut = -1;
  if (args.lead_items > 0) {  // first pieces, whole items, second pieces (AttentionArgs::lead_items)
    const int lead = args.lead_items, whole_end = args.blocks - lead;
    const bool first = bx < lead, second = bx >= whole_end;
    item = second ? bx - whole_end : bx;
    w.piece = second ? 1 : 0;
    w.pieces = first || second ? 2 : 1;
    w.slot0 = w.pieces == 2 ? 2 * item : 0;
    if (w.pieces == 2) w.cut = args.lead_tiles;
  } else if (bx < args.split_from) {
    item = bx, w.piece = 0, w.pieces = 1, w.slot0 = 0;
  } else {
    const int k = (bx - args.split_from) / args.splits;
    item = args.split_from + k;
    w.piece = bx - args.split_from - k * args.splits;
    w.pieces = args.splits;
    w.slot0 = k * args.splits;
  }
  w.tile = item % tiles;
  const int hb = item / tiles;
  w.h = hb % args.heads;
  w.b = hb / args.heads;
  return w;
}

// The first K/V tile of the piece; `count` gets its number of tiles.
SF_WORK_FN int piece_tiles(const WorkItem& w, int num_tiles, int& count) {
  if (w.cut >= 0) {  // lead pieces: [0, cut) and [cut, num_tiles)
    count = w.piece == 0 ? w.cut : num_tiles - w.cut;
    return w.piece == 0 ? 0 : w.cut;
  }
  const int t0 = static_cast<int>(static_cast<int64_t>(num_tiles) * w.piece / w.pieces);
  const int t1 = static_cast<int>(static_cast<int64_t>(num_tiles) * (w.piece + 1) / w.pieces);
  count = t1 - t0;
  return t0;
}

}  // namespace sf::cuda::detail
