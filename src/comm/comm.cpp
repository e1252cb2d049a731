// Conveniences every Comm backend shares.
#include "streamfusion/comm.h"

namespace sf {

Status Comm::barrier_all(Lane lane) {
  std::vector<int> all(world_size());
  for (int i = 0; i < world_size(); ++i) all[i] = i;
  return barrier(all, lane);
}

Status Comm::wait_all(const std::vector<Handle>& hs) {
  for (Handle h : hs) SF_RETURN_IF_ERROR(wait(h));
  return Status::ok();
}

}  // namespace sf
