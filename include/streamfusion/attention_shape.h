// The shape of one attention layer as a user gives it, and how its sequence is split over ranks.
#pragma once

#include <cstdint>
#include <string>

#include "streamfusion/dtype.h"
#include "streamfusion/status.h"

namespace sf {

struct AttentionShape {
  int64_t batch = 1;
  int64_t seq_len = 0;  // S, the global sequence length (all tokens, text and image/video)
  int64_t heads = 0;    // H
  int64_t head_dim = 0; // D
  DType dtype = DType::kBF16;

  Status validate() const;  // every size ≥ 1 (head_dim ≤ 256)
  // Split over `world` ranks, every rank holds at least one token (S ≥ world); infeasible otherwise.
  Status validate_split(int world) const;
  std::string to_string() const;  // "B=1 S=4096 H=24 D=128 bf16"
};

// Uneven sequence split: rank g of P holds tokens [seq_offset(g), seq_offset(g)+seq_count(g)).
// The first S mod P ranks hold one token more. No padding is ever added: attention without a mask is
// exact under any split as long as every key is seen once, and every algorithm handles ragged chunks.
inline int64_t seq_count(int64_t seq_len, int world, int rank) {
  return seq_len / world + (rank < seq_len % world ? 1 : 0);
}
inline int64_t seq_offset(int64_t seq_len, int world, int rank) {
  const int64_t base = seq_len / world, extra = seq_len % world;
  return rank * base + (rank < extra ? rank : extra);
}

}  // namespace sf
