// RowBlock: the unit every level moves. After the Ulysses level a rank holds the rows of every member of its
// Ulysses group, one *piece* per member ([B, n_member, heads, D] each, in member order), for a slice of the
// heads. Pieces are stored back to back so that a whole block is one contiguous transfer; the attention
// kernel takes the pieces as separate chunks, so nothing is ever concatenated or re-laid out.
#pragma once

#include <cstdint>
#include <vector>

#include "streamfusion/attention_problem.h"

namespace sf {

struct RowBlock {
  std::vector<int64_t> piece_len;  // rows of each piece
  int64_t batch = 0, heads = 0, head_dim = 0;

  int64_t rows() const {
    int64_t n = 0;
    for (int64_t l : piece_len) n += l;
    return n;
  }
  int pieces() const { return static_cast<int>(piece_len.size()); }
  int64_t elems() const { return batch * rows() * heads * head_dim; }
  // Element offset of piece i inside the block (also the float offset of its Õ accumulator).
  int64_t piece_offset(int i) const {
    int64_t n = 0;
    for (int j = 0; j < i; ++j) n += piece_len[j];
    return batch * n * heads * head_dim;
  }
  int64_t piece_elems(int i) const { return batch * piece_len[i] * heads * head_dim; }
  // Offset of piece i's m/l accumulator rows ([B, n, heads] per piece).
  int64_t piece_ml_offset(int i) const { return piece_offset(i) / head_dim; }
  // Dense view of piece i inside a block stored at `base` with `elem_bytes` per element.
  RowChunk piece(void* base, int i, int elem_bytes) const {
    return dense_rows(static_cast<char*>(base) + piece_offset(i) * elem_bytes, piece_len[i], heads, head_dim);
  }
};

}  // namespace sf
