#include "streamfusion/cpu_device.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "streamfusion/cpu_kernels.h"

namespace sf {

Status CpuDevice::attention(const AttentionProblem& p) { return cpu_attention(p, share_); }

Result<int64_t> CpuDevice::shared_blocks_helped(const SharedWork& work) { return cpu_shared_helped(work); }

Status CpuDevice::copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads,
                            int64_t head_dim, DType dtype) {
  if (dst.len != src.len)
    return invalid_argument("copy_rows: destination has " + std::to_string(dst.len) + " rows, source " +
                            std::to_string(src.len));
  const int64_t elem = dtype_size(dtype), row_bytes = head_dim * elem;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < src.len; ++s)
      for (int64_t h = 0; h < heads; ++h)
        std::memcpy(static_cast<char*>(dst.data) + (b * dst.stride_b + s * dst.stride_s + h * dst.stride_h) * elem,
                    static_cast<const char*>(src.data) + (b * src.stride_b + s * src.stride_s + h * src.stride_h) * elem,
                    row_bytes);
  return Status::ok();
}

Status CpuDevice::merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads,
                                 int64_t head_dim, DType dtype) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (const PartialMerge& mg : merges) {
    if (mg.out.len != mg.part_o.len)
      return invalid_argument("merge_partials: out has " + std::to_string(mg.out.len) + " rows, the partial " +
                              std::to_string(mg.part_o.len));
    const int64_t len = mg.out.len;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < len; ++s)
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t row = (b * len + s) * heads + h;
          // acc: Σ e^{x−m}·v and l = Σ e^{x−m}; part: O_b normalized, lse_b. Both over a common max.
          const float m_a = mg.acc_l[row] > 0.f ? mg.acc_m[row] : kNegInf, lse_b = mg.part_lse[row];
          const float m = std::max(m_a, lse_b);
          const float wa = m_a == kNegInf ? 0.f : std::exp(m_a - m), wb = lse_b == kNegInf ? 0.f : std::exp(lse_b - m);
          const float l = wa * mg.acc_l[row] + wb;  // wa = 0 where the accumulator saw no keys
          const float inv = l > 0.f ? 1.f / l : 0.f;
          const int64_t po = b * mg.part_o.stride_b + s * mg.part_o.stride_s + h * mg.part_o.stride_h;
          const int64_t oo = b * mg.out.stride_b + s * mg.out.stride_s + h * mg.out.stride_h;
          for (int64_t d = 0; d < head_dim; ++d) {
            const float a = m_a == kNegInf ? 0.f : mg.acc_o[row * head_dim + d];
            const float pb = wb > 0.f ? load_as_float(mg.part_o.data, po + d, dtype) : 0.f;
            store_from_float(mg.out.data, oo + d, dtype, (wa * a + wb * pb) * inv);
          }
        }
  }
  return Status::ok();
}

Result<void*> CpuDevice::alloc(size_t bytes) {
  // 64-byte alignment like device allocations; never a null pointer for 0 bytes.
  void* p = std::aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
  if (!p) return Status(ErrorCode::kOutOfMemory, "host allocation of " + std::to_string(bytes) + " bytes failed");
  return p;
}

void CpuDevice::free(void* p) { std::free(p); }

Status CpuDevice::copy_to_device(void* dst, const void* src_host, size_t bytes) {
  if (bytes) std::memcpy(dst, src_host, bytes);
  return Status::ok();
}

Status CpuDevice::copy_to_host(void* dst_host, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst_host, src, bytes);
  return Status::ok();
}

Status CpuDevice::fill(void* dst, uint8_t byte, size_t bytes) {
  if (bytes) std::memset(dst, byte, bytes);
  return Status::ok();
}

}  // namespace sf
