// Device over host memory: the compute side of CPU ranks (threads backend) and the tests' oracle.
#pragma once

#include "streamfusion/cpu_kernels.h"
#include "streamfusion/device.h"

namespace sf {

class CpuDevice final : public Device {
 public:
  const char* name() const override { return "cpu"; }
  Status attention(const AttentionProblem& p) override;
  Status copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads, int64_t head_dim,
                   DType dtype) override;
  Status merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads, int64_t head_dim,
                        DType dtype) override;
  Result<void*> alloc(size_t bytes) override;
  void free(void* p) override;
  Status copy_to_device(void* dst, const void* src_host, size_t bytes) override;
  Status copy_to_host(void* dst_host, const void* src, size_t bytes) override;
  Status fill(void* dst, uint8_t byte, size_t bytes) override;
  Status synchronize() override { return Status::ok(); }
  Result<int64_t> shared_blocks_helped(const SharedWork& work) override;
  // Tests: as the owner of a shared call, pause this long once armed (CpuShareOptions::owner_pause_ms).
  void set_share_pause_ms(int ms) { share_.owner_pause_ms = ms; }
  // Tests: as the owner of a shared call, pause this long before arming it (CpuShareOptions::arm_delay_ms).
  void set_share_arm_delay_ms(int ms) { share_.arm_delay_ms = ms; }

 private:
  CpuShareOptions share_;
};

}  // namespace sf
