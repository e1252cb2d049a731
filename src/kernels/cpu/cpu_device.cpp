#include "streamfusion/cpu_device.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "streamfusion/cpu_kernels.h"

namespace sf {

Status CpuDevice::attention(const AttentionProblem& p) { return cpu_attention(p); }

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
