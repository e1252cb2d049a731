// Conveniences every Comm backend shares.
#include "streamfusion/comm.h"

namespace sf {

Status check_landed_steps(const std::vector<LandedStep>& order, int num_flags, int32_t heads_per_step) {
  if (heads_per_step < 1)
    return invalid_argument("landed_steps: heads_per_step must be at least 1, found " + std::to_string(heads_per_step));
  if (num_flags < 1 || num_flags > Comm::kMaxStepFlags)
    return invalid_argument("landed_steps: between 1 and " + std::to_string(Comm::kMaxStepFlags) +
                            " flags, found " + std::to_string(num_flags));
  std::vector<int32_t> last(static_cast<size_t>(num_flags), -1);
  for (const LandedStep& w : order) {
    if (w.flag < 0 || w.flag >= num_flags)
      return invalid_argument("landed_steps: a write to flag " + std::to_string(w.flag) + " of " +
                              std::to_string(num_flags));
    int32_t& prev = last[static_cast<size_t>(w.flag)];
    if (w.step <= prev)
      return invalid_argument("landed_steps: flag " + std::to_string(w.flag) + "'s steps must rise, found step " +
                              std::to_string(w.step) + " after step " + std::to_string(prev));
    prev = w.step;
  }
  for (int f = 0; f < num_flags; ++f)
    if (last[static_cast<size_t>(f)] < 0)
      return invalid_argument("landed_steps: flag " + std::to_string(f) + " is never written");
  return Status::ok();
}

Status Comm::barrier(const std::vector<int>& group, Lane lane) {
  bool inter = false;
  for (int r : group) inter |= r >= 0 && r < world_size() && topology().link(rank(), r) == LinkClass::kInter;
  ++(inter ? barriers_.inter : barriers_.intra);
  return barrier_impl(group, lane);
}

Status Comm::barrier_all(Lane lane) {
  std::vector<int> all(world_size());
  for (int i = 0; i < world_size(); ++i) all[i] = i;
  return barrier(all, lane);
}

Status Comm::prepare_barriers(const std::vector<std::vector<int>>& groups) {
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::vector<int>& group = groups[g];
    const std::string which = "prepare_barriers: group " + std::to_string(g);
    if (group.empty()) return invalid_argument(which + " is empty");
    std::vector<bool> seen(static_cast<size_t>(world_size()), false);
    for (int r : group) {
      if (r < 0 || r >= world_size())
        return invalid_argument(which + " names rank " + std::to_string(r) + ", outside the world of " +
                                std::to_string(world_size()));
      if (seen[static_cast<size_t>(r)]) return invalid_argument(which + " names rank " + std::to_string(r) + " twice");
      seen[static_cast<size_t>(r)] = true;
    }
  }
  return prepare_barriers_impl(groups);
}

Status Comm::wait_all(const std::vector<Handle>& hs) {
  for (Handle h : hs) SF_RETURN_IF_ERROR(wait(h));
  return Status::ok();
}

Result<std::vector<Handle>> Comm::all_to_all(const std::vector<int>& group,
                                             const std::vector<std::vector<ConstPiece>>& sends,
                                             const std::vector<std::vector<MutablePiece>>& recvs, Lane lane) {
  if (sends.size() != group.size() || recvs.size() != group.size())
    return invalid_argument("all_to_all: group has " + std::to_string(group.size()) + " members but " +
                            std::to_string(sends.size()) + " send lists and " + std::to_string(recvs.size()) +
                            " receive lists were given");
  std::vector<Handle> handles;
  SF_RETURN_IF_ERROR(begin_batch());
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i] == rank()) continue;
    for (const ConstPiece& p : sends[i])
      if (p.bytes) SF_RETURN_IF_ERROR(send(group[i], p.data, p.bytes, lane).status());
    for (const MutablePiece& p : recvs[i]) {
      if (!p.bytes) continue;
      SF_ASSIGN_OR_RETURN(Handle h, recv(group[i], p.data, p.bytes, lane));
      handles.push_back(h);
    }
  }
  SF_RETURN_IF_ERROR(end_batch());
  return handles;
}

}  // namespace sf
