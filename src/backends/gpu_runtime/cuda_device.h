// Device on one CUDA GPU: everything is enqueued on the rank's compute stream (GpuStreams), attention calls on
// compute lane 1 on a second stream beside it (GpuStreams::call_stream). Attention runs the fast kernel
// (sf::cuda::attention, when the build has it and the case is one it covers) and otherwise the exact fallback
// kernel.
#pragma once

#include "gpu_streams.h"
#include "streamfusion/device.h"

namespace sf::gpu {

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(GpuStreams* streams) : streams_(streams) {}

  const char* name() const override { return "cuda"; }
  Status attention(const AttentionProblem& p) override;
  Status copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads, int64_t head_dim,
                   DType dtype) override;
  Status copy_rows_batch(const std::vector<RowCopy>& copies, int64_t batch, int64_t heads, int64_t head_dim,
                         DType dtype) override;
  Status merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads, int64_t head_dim,
                        DType dtype) override;
  Result<void*> alloc(size_t bytes) override;
  void free(void* p) override;
  Status copy_to_device(void* dst, const void* src_host, size_t bytes) override;
  Status copy_to_host(void* dst_host, const void* src, size_t bytes) override;
  Status fill(void* dst, uint8_t byte, size_t bytes) override;
  // Two: the compute stream and a second stream beside it (GpuStreams::call_stream).
  int compute_lanes() const override { return 2; }
  Status order_lanes() override;
  Status synchronize() override;
  Result<int64_t> shared_blocks_helped(const SharedWork& work) override;
  // Two waves of CTAs (one per 128-row query tile and head) over the GPU's multiprocessors.
  int64_t busy_query_tiles() const override;

  // Which kernel serves a problem: "fast" (sf::cuda::attention) or "fallback".
  static bool fast_kernel_covers(const AttentionProblem& p);
  static bool fast_kernel_built();
  // How many attention calls of this process went to the fallback kernel (benchmarks report it: the fallback
  // is far slower, so a case it serves must not pass for a measurement of the fast kernel).
  static int64_t fallback_calls();
  // Force the fallback kernel (tests of the fallback itself).
  void set_force_fallback(bool f) { force_fallback_ = f; }

 private:
  GpuStreams* streams_;
  bool force_fallback_ = false;
};

}  // namespace sf::gpu
