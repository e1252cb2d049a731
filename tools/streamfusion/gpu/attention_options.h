// The options of `streamfusion gpu-attention` (attention_command.cpp registers them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sf::cli {

struct AttentionOptions {
  std::vector<std::string> seqs = {"16384"};
  int64_t heads = 24, head_dim = 128, batch = 1;
  std::string dtype = "bf16";
  std::vector<std::string> topologies = {"job"};  // "job": hosts x ranks per host, 1xP on one host
  std::vector<std::string> gbps = {"50"};
  double latency_us = 5.0;
  std::vector<std::string> schemes = {"ring", "ulysses", "usp", "tas", "torus", "sfu"};
  std::string transports = "auto";  // auto | two-sided | one-sided | both
  std::vector<std::string> custom_meshes;  // extra cases: scheme custom with these meshes
  int torus_chunks = -1;                   // -1: the planner decides; else SpAttentionConfig::torus_chunks
  std::string foreign_push = "auto";       // auto (the planner), staggered or together: stagger_foreign_push
  std::string foreign_rows = "auto";       // auto (the planner), by-block or by-set: foreign_rows_by_block
  std::string ring_share = "auto";         // auto (the planner), on or off: ring_share, where it applies
  int ring_heads_per_step = -1;            // < 0: the planner decides; else SpAttentionConfig::ring_heads_per_step
  int ring_first_wave_heads = 0;           // SpAttentionConfig::ring_first_wave_heads (0: automatic)
  int compute_lanes = 0;                   // SpAttentionConfig::compute_lanes (0: the layer's choice)
  std::string merge_sets = "auto";         // auto (the planner), merged or each: merge_kv_sets
  std::string diagonal = "auto";           // auto (the planner), on or off: local_diagonal
  double pause_s = 0.0;                    // idle seconds between the baselines and the layers of each shape
  double sustain_s = 0.0;                  // seconds of its own load before each timing, on top of the warm-ups
  std::string balance = "off";             // off | layer | share: row loans by the ranks' measured speeds
  std::vector<double> rank_speeds;         // given: row loans by these speeds instead
  int warmup = 2, iters = 5;
  bool single = true;      // time the one-GPU layer too
  bool concurrent = true;  // time every rank's compute share with all ranks at once too
  bool trace = false;      // print every rank's timeline of the last timed forward
  bool free_links = false;  // time each multi-machine case again with its links at NVLink speed (same plan)
  uint64_t seed = 7;
  std::string json;
  std::string label;  // free text copied into every JSON row (e.g. the model)
  double tol_rel = 1e-2, tol_abs = 6e-2;
};

}  // namespace sf::cli
