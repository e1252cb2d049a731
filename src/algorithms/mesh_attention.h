// MeshAttention: the one SpAttention implementation. Every scheme is a mesh of up to three levels (see
// mesh.h); each rank runs the same schedule (DESIGN.md section 2, paper Algorithm 1):
//
//  A. Ulysses: pack Q, K, V into head blocks and scatter them inside the Ulysses group (all-to-all /
//     ScatterPush + BarrierAll). Afterwards the rank holds the rows of its whole Ulysses group for a slice of
//     heads, as a RowBlock per Torus sub-block.
//  B. Torus: issue every Pull Q, then every Pull KV transfer of the Torus group (stage by stage in issue
//     order; one-sided: all GatherPulls at once).
//  C. Compute: Pull Q stages against the stationary K/V, then Pull KV stages against all Q; each "compute" is
//     a ring over the Ring group (one-sided: pull every ring peer's block after a ring barrier; two-sided:
//     pass blocks hop by hop). Each attention call costs a GPU its tiles' set-up and a partly empty last wave,
//     so work whose data is there shares a call: a ring inside a machine takes all its peers' blocks at once,
//     and a compute-bound layer (one segment per Torus transfer) merges stages: Pull Q stages in groups
//     {1}, {2, 3}, {4..7} (each group's last Q lands while the stages before it compute), the foreign rows
//     take each Pull KV set as it lands and the own rows all sets in one call (bench/sp/TRACES.md). The GPU kernel
//     itself splits the last wave of a call along K/V (src/backends/cuda/tail_split.h).
//  D. Push O: the last call finalizes the foreign rows first and pushes each output piece straight to the
//     rank that owns those rows (Torus push and the Ulysses return in one hop), then the rank's own rows.
//  With the local diagonal (SpAttentionConfig::local_diagonal, mesh_attention_diagonal.cpp) C and D change: each
//  rank first computes its own rows against its own ring group's keys for every head block, the foreign rows
//  skip their own machine's set and push a partial (O and lse) as soon as the rest is in, and the owner merges
//  each as its arrival signal comes. No barrier ends that layer: A packs into two symmetric sets in turn.
//
// Degree-1 levels vanish: Ring = R_P, Ulysses = U_P, USP = R·U, TAS = U·R, SFU = T·R (+U inside).
#pragma once

#include <memory>

#include "streamfusion/sp_attention.h"

namespace sf {

Result<std::unique_ptr<SpAttention>> create_mesh_attention(Comm& comm, Device& device, const AttentionShape& shape,
                                                           const SpAttentionConfig& config);

}  // namespace sf
