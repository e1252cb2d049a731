// Which work a block of the warp-specialized kernel's linear grid does (attention_hopper_ws.cu): an item (Q tile,
// head, batch) whole, or one piece of it along K/V (a tail split's, tail_split.h: equal shares). Host and device
// code over any arguments with the fields it reads, so that CPU tests walk every block of a launch
// (tests/cpu/test_tail_split.cpp).
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
};

// Block bx of the linear grid; tiles: Q tiles per (head, batch). Args: AttentionArgs (heads, split_from, splits).
template <class Args>
SF_WORK_FN WorkItem work_item(const Args& args, int tiles, int bx) {
  WorkItem w;
  int item;
  if (bx < args.split_from) {
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
  const int t0 = static_cast<int>(static_cast<int64_t>(num_tiles) * w.piece / w.pieces);
  const int t1 = static_cast<int>(static_cast<int64_t>(num_tiles) * (w.piece + 1) / w.pieces);
  count = t1 - t0;
  return t0;
}

}  // namespace sf::cuda::detail
