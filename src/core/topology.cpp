#include "streamfusion/topology.h"

#include "streamfusion/attention_shape.h"
#include "core/parse.h"

namespace sf {

const char* link_class_name(LinkClass c) { return c == LinkClass::kIntra ? "intra" : "inter"; }

std::string Topology::to_string() const {
  return std::to_string(machines) + "x" + std::to_string(gpus_per_machine);
}

Status Topology::validate() const {
  if (machines < 1 || gpus_per_machine < 1)
    return invalid_argument("topology must have at least 1 machine and 1 GPU per machine, found " +
                            std::to_string(machines) + "x" + std::to_string(gpus_per_machine));
  if (world_size() > 4096)
    return invalid_argument("topology " + to_string() + " has more than 4096 GPUs");
  return Status::ok();
}

Result<Topology> Topology::parse(const std::string& s) {
  const auto x = s.find_first_of("xX");
  int64_t m = 0, n = 0;
  if (x == std::string::npos || !parse_positive(s.substr(0, x), &m) || !parse_positive(s.substr(x + 1), &n))
    return invalid_argument("topology must look like MxN (machines x GPUs per machine, e.g. 2x4), found '" +
                            s + "'");
  Topology t{static_cast<int>(m), static_cast<int>(n)};
  SF_RETURN_IF_ERROR(t.validate());
  return t;
}

Status AttentionShape::validate() const {
  auto positive = [](const char* what, int64_t v) -> Status {
    if (v < 1) return invalid_argument(std::string(what) + " must be at least 1, found " + std::to_string(v));
    return Status::ok();
  };
  SF_RETURN_IF_ERROR(positive("batch", batch));
  SF_RETURN_IF_ERROR(positive("sequence length", seq_len));
  SF_RETURN_IF_ERROR(positive("heads", heads));
  SF_RETURN_IF_ERROR(positive("head dim", head_dim));
  if (head_dim > 256) return invalid_argument("head dim must be at most 256, found " + std::to_string(head_dim));
  return Status::ok();
}

Status AttentionShape::validate_split(int world) const {
  // A rank without tokens would have nothing to send where its peers expect a piece, and no rows to own.
  if (world >= 1 && seq_len < world)
    return infeasible("sequence length S=" + std::to_string(seq_len) + " is shorter than the " + std::to_string(world) +
                      " GPUs it is split over: every GPU must hold at least one token (S >= " +
                      std::to_string(world) + "); run it on at most " + std::to_string(seq_len) + " GPUs");
  return Status::ok();
}

std::string AttentionShape::to_string() const {
  return "B=" + std::to_string(batch) + " S=" + std::to_string(seq_len) + " H=" + std::to_string(heads) +
         " D=" + std::to_string(head_dim) + " " + dtype_name(dtype);
}

}  // namespace sf
