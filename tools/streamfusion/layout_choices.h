// The layout options both attention commands take over a plan (the CPU `attention` and `plan`, and
// `gpu-attention`): --torus-chunks and --local-diagonal.
#pragma once

#include <string>

#include "streamfusion/sp_attention.h"

namespace sf::cli {

// torus_chunks: -1 keeps the planner's; local_diagonal: "auto" keeps the planner's, else "on" or "off". Explicit
// segments (> 1) turn the planner's local diagonal off, since it moves whole Torus blocks; both asked for
// explicitly, the layer refuses the pair with a message.
inline void apply_layout_choices(int torus_chunks, const std::string& local_diagonal, SpAttentionConfig* config) {
  if (torus_chunks >= 0) config->torus_chunks = torus_chunks;
  if (local_diagonal != "auto") {
    config->local_diagonal = local_diagonal == "on";
  } else if (torus_chunks > 1) {
    config->local_diagonal = false;
  }
}

}  // namespace sf::cli
