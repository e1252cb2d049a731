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
  int cut;     // lead pieces: the K/V tile where piece 1 starts, pieces 1.. in equal shares after it; -1: all
               // pieces in equal shares
};

// Block bx of the linear grid; tiles: Q tiles per (head, batch). Args: AttentionArgs (blocks, heads, split_from,
// splits, lead_items, lead_tiles, lead_rest).
template <class Args>
SF_WORK_FN WorkItem work_item(const Args& args, int tiles, int bx) {
  WorkItem w;
  int item;
  w.cut = -1;
  if (args.lead_items > 0) {  // first pieces, whole items, rest pieces (AttentionArgs::lead_items)
    const int lead = args.lead_items, rest = args.lead_rest, whole_end = args.blocks - lead * rest;
    if (bx < lead) {
      item = bx, w.piece = 0;
    } else if (bx < whole_end) {
      item = bx, w.piece = -1;
    } else {
      const int k = (bx - whole_end) / rest;
      item = k, w.piece = 1 + (bx - whole_end - k * rest);
    }
    w.pieces = w.piece < 0 ? 1 : 1 + rest;
    w.slot0 = w.piece < 0 ? 0 : item * (1 + rest);
    w.cut = w.piece < 0 ? -1 : args.lead_tiles;
    if (w.piece < 0) w.piece = 0;
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
  if (w.cut >= 0) {  // lead pieces: [0, cut), then [cut, num_tiles) in pieces - 1 equal shares
    if (w.piece == 0) {
      count = w.cut;
      return 0;
    }
    const int64_t rest_tiles = num_tiles - w.cut, shares = w.pieces - 1;
    const int t0 = w.cut + static_cast<int>(rest_tiles * (w.piece - 1) / shares);
    count = w.cut + static_cast<int>(rest_tiles * w.piece / shares) - t0;
    return t0;
  }
  const int t0 = static_cast<int>(static_cast<int64_t>(num_tiles) * w.piece / w.pieces);
  const int t1 = static_cast<int>(static_cast<int64_t>(num_tiles) * (w.piece + 1) / w.pieces);
  count = t1 - t0;
  return t0;
}

}  // namespace sf::cuda::detail
