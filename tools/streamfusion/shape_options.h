// Options shared by the subcommands that take a layer shape and a topology.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "layout_choices.h"
#include "streamfusion/attention_shape.h"
#include "streamfusion/planner.h"
#include "streamfusion/topology.h"

namespace sf::cli {

struct ShapeOptions {
  std::string topology = "2x4";
  int64_t batch = 1, seq_len = 520, heads = 24, head_dim = 128;
  std::string dtype = "fp32";
  std::vector<std::string> schemes = {"all"};
  std::string mesh;       // explicit mesh for a single scheme
  std::string transport;  // "", "one-sided", "two-sided"
  int torus_chunks = -1;  // -1: the planner decides; 0: automatic by call size; n: n segments
  std::string local_diagonal = "auto";  // auto (the planner), on or off: SpAttentionConfig::local_diagonal
  double intra_gbps = 300, inter_gbps = 50;
  bool json = false;

  void add_to(CLI::App* cmd);
  // Parses and validates; every error says what was expected and what was found.
  Result<Topology> topo() const;
  Result<AttentionShape> shape() const;
  Result<std::vector<Scheme>> scheme_list() const;
  Result<std::optional<Transport>> transport_override() const;
  // One plan per scheme (the mesh override applies when exactly one scheme is named).
  Result<std::vector<Plan>> plans() const;
};

// Prints a failed Status as "streamfusion: <message>" and returns the exit code for it.
int report_error(const Status& s);

}  // namespace sf::cli
