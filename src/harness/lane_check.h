// A Device that offers two compute lanes (Device::compute_lanes) and checks how an algorithm uses them: it runs
// every call at once on the device it wraps, and fails the first call that touches memory which a call on the
// other lane, one the GPU may run at the same time, writes (or writes memory that one reads). What the GPU
// orders (GpuStreams::call_stream): a lane-1 call follows every lane-0 call but the latest one issued since the
// last ordering point; a lane-0 call follows no lane-1 call issued since then; order_lanes() and every operation
// other than a call (copies, merges, fills) order both lanes. Comm operations order neither lane against the
// other, so the check needs no view of them. Footprints are address intervals (a strided view's first to last
// byte), so views that interleave in one buffer count as touching.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "streamfusion/device.h"

namespace sf {

class LaneCheckingDevice final : public Device {
 public:
  explicit LaneCheckingDevice(Device& inner) : inner_(inner) {}
  // The calls each lane got since construction.
  int64_t calls_on_lane(int lane) const { return lane == 1 ? calls_[1] : calls_[0]; }

  const char* name() const override { return inner_.name(); }
  int compute_lanes() const override { return 2; }
  Status order_lanes() override;
  Status attention(const AttentionProblem& p) override;
  Status copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads, int64_t head_dim,
                   DType dtype) override;
  Status copy_rows_batch(const std::vector<RowCopy>& copies, int64_t batch, int64_t heads, int64_t head_dim,
                         DType dtype) override;
  Status merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads, int64_t head_dim,
                        DType dtype) override;
  Result<void*> alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void free(void* p) override { inner_.free(p); }
  Status copy_to_device(void* dst, const void* src_host, size_t bytes) override;
  Status copy_to_host(void* dst_host, const void* src, size_t bytes) override;
  Status fill(void* dst, uint8_t byte, size_t bytes) override;
  int64_t busy_query_tiles() const override { return inner_.busy_query_tiles(); }
  Status synchronize() override;
  Result<int64_t> shared_blocks_helped(const SharedWork& work) override { return inner_.shared_blocks_helped(work); }

  // A byte interval [begin, end) of one operand.
  struct Span {
    uintptr_t begin = 0, end = 0;
  };
  struct Footprint {
    std::vector<Span> reads, writes;
    std::string what;  // for the error message
  };
  // What a call reads and writes, as intervals.
  static Footprint footprint(const AttentionProblem& p);

 private:
  Status check_against(const Footprint& f, const std::vector<Footprint>& others, int other_lane) const;
  void ordering_point();

  Device& inner_;
  int64_t calls_[2] = {0, 0};
  std::vector<Footprint> unordered_lane1_;  // lane-1 calls since the last ordering point
  std::vector<Footprint> latest_lane0_;     // the latest lane-0 call since then (none or one)
};

}  // namespace sf
