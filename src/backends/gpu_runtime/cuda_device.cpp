#include "cuda_device.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "device_kernels.cuh"
#include "gpu_check.h"
#include "../cuda/shared_work.h"
#ifdef SF_HAVE_CUDA_KERNELS
#include "streamfusion/cuda_kernels.h"
#endif

namespace sf::gpu {
namespace {

std::atomic<int64_t> g_fallback_calls{0};

bool aligned(const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }
bool strides_multiple(const RowChunk& c, int64_t m) {
  return c.stride_b % m == 0 && c.stride_s % m == 0 && c.stride_h % m == 0;
}

// The fallback kernel does not poll landed flags (KVChunk::ready): the stream waits for them before it.
Status wait_landed_flags(const AttentionProblem& p, cudaStream_t stream) {
  for (int32_t j = 0; j < p.num_kv; ++j) {
    const LandedFlag& f = p.kv[j].ready;
    if (!f.pending()) continue;
    SF_RETURN_IF_ERROR(driver_status(cuStreamWaitValue32(reinterpret_cast<CUstream>(stream),
                                                         reinterpret_cast<CUdeviceptr>(f.word),
                                                         f.value_for_head(p.heads - 1),
                                                         CU_STREAM_WAIT_VALUE_GEQ),
                                     "attention: waiting for a landed flag (cuStreamWaitValue32)"));
  }
  return Status::ok();
}

// "attention q 16384 rows (1 chunk) x kv 16384 rows (1 chunk), 24 heads, resume, finalize" for traces.
std::string describe(const AttentionProblem& p, bool fast) {
  int64_t q_rows = 0, kv_rows = 0;
  for (int32_t i = 0; i < p.num_q; ++i) q_rows += p.q[i].q.len;
  for (int32_t j = 0; j < p.num_kv; ++j) kv_rows += p.kv[j].k.len;
  char s[200];
  std::snprintf(s, sizeof s, "attention%s q %lld rows (%d chunks) x kv %lld rows (%d chunks), %lld heads, %s%s",
                fast ? "" : " [fallback]", static_cast<long long>(q_rows), p.num_q, static_cast<long long>(kv_rows),
                p.num_kv, static_cast<long long>(p.heads * p.batch),
                p.mode == AccumulatorMode::kInit ? "init" : "resume", p.finalize ? ", finalize" : "");
  return s;
}

}  // namespace

bool CudaDevice::fast_kernel_built() {
#ifdef SF_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool CudaDevice::fast_kernel_covers(const AttentionProblem& p) {
  if (!fast_kernel_built()) return false;
  if (p.dtype != DType::kBF16 && p.dtype != DType::kF16) return false;
  if (p.head_dim != 64 && p.head_dim != 128) return false;
  for (int32_t i = 0; i < p.num_q; ++i) {
    const QChunk& q = p.q[i];
    if (!aligned(q.q.data, 16) || !strides_multiple(q.q, 8)) return false;
    if (p.finalize && (!aligned(q.out.data, 4) || !strides_multiple(q.out, 2))) return false;
    if (q.acc_o && !aligned(q.acc_o, 8)) return false;
    const bool needs_acc = !(p.mode == AccumulatorMode::kInit && p.finalize);
    if (needs_acc && (!q.acc_o || !q.acc_m || !q.acc_l)) return false;
  }
  for (int32_t j = 0; j < p.num_kv; ++j) {
    const KVChunk& kv = p.kv[j];
    if (!aligned(kv.k.data, 16) || !aligned(kv.v.data, 16) || !strides_multiple(kv.k, 8) ||
        !strides_multiple(kv.v, 8))
      return false;
  }
  return true;
}

Status CudaDevice::attention(const AttentionProblem& p) {
  if (p.num_q == 0) return Status::ok();
  if (p.lane < 0 || p.lane >= compute_lanes())
    return invalid_argument("attention: compute lane " + std::to_string(p.lane) + " of a device with " +
                            std::to_string(compute_lanes()) + " (0 or 1)");
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, streams_->call_stream(p.lane));
  StreamTrace& trace = streams_->trace();
  SF_RETURN_IF_ERROR(trace.mark_begin(stream));
  bool fast = false;
#ifdef SF_HAVE_CUDA_KERNELS
  fast = !force_fallback_ && fast_kernel_covers(p);
#endif
  Status st;
  if (fast) {
#ifdef SF_HAVE_CUDA_KERNELS
    st = sf::cuda::attention(p, stream);
#endif
  } else if (p.shared != nullptr && p.shared->helper) {
    return Status::ok();  // helpers share a call only through the fast kernel (AttentionProblem::shared)
  } else {
    g_fallback_calls.fetch_add(1, std::memory_order_relaxed);
    st = wait_landed_flags(p, stream);
    if (st.is_ok()) st = fallback_attention(p, stream);
#ifdef SF_HAVE_CUDA_KERNELS
    // An owner that computed everything itself: helpers waiting on its queue take nothing.
    if (st.is_ok() && p.shared != nullptr) st = sf::cuda::arm_shared_unplanned(*p.shared, stream);
#endif
  }
  SF_RETURN_IF_ERROR(st);
  return trace.on() ? trace.mark_end(stream, describe(p, fast)) : Status::ok();
}

Status CudaDevice::order_lanes() { return streams_->order_call_lanes(); }

Status CudaDevice::copy_rows_batch(const std::vector<RowCopy>& copies, int64_t batch, int64_t heads,
                                   int64_t head_dim, DType dtype) {
  if (copies.empty()) return Status::ok();
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, streams_->work_stream());
  StreamTrace& trace = streams_->trace();
  SF_RETURN_IF_ERROR(trace.mark_begin(stream));
  for (size_t first = 0; first < copies.size(); first += kMaxBatchedCopies) {
    const size_t n = std::min<size_t>(kMaxBatchedCopies, copies.size() - first);
    std::vector<RowChunk> dst(n), src(n);
    for (size_t i = 0; i < n; ++i) dst[i] = copies[first + i].dst, src[i] = copies[first + i].src;
    SF_RETURN_IF_ERROR(copy_rows_batch_kernel(dst.data(), src.data(), static_cast<int>(n), batch, heads, head_dim,
                                              dtype, stream));
  }
  if (!trace.on()) return Status::ok();
  return trace.mark_end(stream, "copy_rows x" + std::to_string(copies.size()) + ", " +
                                                  std::to_string(batch * copies[0].src.len) + " rows x " +
                                                  std::to_string(heads) + " heads each");
}

// Merges of one row count share a launch (a layer's merges are its Torus peers' head blocks of our rows).
Status CudaDevice::merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads,
                                  int64_t head_dim, DType dtype) {
  if (merges.empty()) return Status::ok();
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, streams_->work_stream());
  StreamTrace& trace = streams_->trace();
  SF_RETURN_IF_ERROR(trace.mark_begin(stream));
  for (size_t first = 0; first < merges.size();) {
    size_t n = 1;
    while (first + n < merges.size() && n < kMaxBatchedMerges && merges[first + n].out.len == merges[first].out.len)
      ++n;
    SF_RETURN_IF_ERROR(merge_partials_kernel(merges.data() + first, static_cast<int>(n), batch, heads, head_dim, dtype,
                                             stream));
    first += n;
  }
  if (!trace.on()) return Status::ok();
  return trace.mark_end(stream, "merge_partials x" + std::to_string(merges.size()) + ", " +
                                                  std::to_string(batch * merges[0].out.len) + " rows x " +
                                                  std::to_string(heads) + " heads each");
}

int64_t CudaDevice::fallback_calls() { return g_fallback_calls.load(std::memory_order_relaxed); }

Status CudaDevice::copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads,
                             int64_t head_dim, DType dtype) {
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, streams_->work_stream());
  StreamTrace& trace = streams_->trace();
  SF_RETURN_IF_ERROR(trace.mark_begin(stream));
  SF_RETURN_IF_ERROR(copy_rows_kernel(dst, src, batch, heads, head_dim, dtype, stream));
  if (!trace.on()) return Status::ok();
  return trace.mark_end(stream, "copy_rows " + std::to_string(batch * src.len) + " rows x " +
                                                  std::to_string(heads) + " heads");
}

Result<void*> CudaDevice::alloc(size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) return p;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return Status(err == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kBackendError,
                  "cudaMalloc of " + std::to_string(bytes >> 20) + " MiB on GPU " +
                      std::to_string(streams_->device()) + " failed: " + cudaGetErrorString(err) + " (" +
                      std::to_string(free_b >> 20) + " of " + std::to_string(total_b >> 20) + " MiB free)");
  }
  return p;
}

void CudaDevice::free(void* p) {
  if (p) cudaFree(p);  // synchronizes the device: setup/teardown only
}

// On the host-work stream (GpuStreams::begin_host_work: the compute stream by default).
Status CudaDevice::copy_to_device(void* dst, const void* src_host, size_t bytes) {
  SF_ASSIGN_OR_RETURN(cudaStream_t s, streams_->begin_host_work());
  SF_CUDA_RETURN(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, s));
  return streams_->end_host_work("Device::copy_to_device");
}

Status CudaDevice::copy_to_host(void* dst_host, const void* src, size_t bytes) {
  SF_ASSIGN_OR_RETURN(cudaStream_t s, streams_->begin_host_work());
  SF_CUDA_RETURN(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, s));
  return streams_->end_host_work("Device::copy_to_host");
}

Status CudaDevice::fill(void* dst, uint8_t byte, size_t bytes) {
  SF_ASSIGN_OR_RETURN(cudaStream_t s, streams_->begin_host_work());
  SF_CUDA_RETURN(cudaMemsetAsync(dst, byte, bytes, s));
  return streams_->end_host_work("Device::fill");
}

Status CudaDevice::synchronize() { return streams_->synchronize("Device::synchronize"); }

Result<int64_t> CudaDevice::shared_blocks_helped(const SharedWork& work) {
  if (work.workspace == nullptr || work.bytes < sizeof(sf::cuda::detail::SharedHeader))
    return invalid_argument("shared_blocks_helped: no shared workspace");
  SF_RETURN_IF_ERROR(synchronize());
  unsigned helped = 0;
  const char* at = static_cast<const char*>(work.workspace) + offsetof(sf::cuda::detail::SharedHeader, helped);
  SF_RETURN_IF_ERROR(copy_to_host(&helped, at, sizeof(helped)));
  return static_cast<int64_t>(helped);
}

int64_t CudaDevice::busy_query_tiles() const {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 0;
  return 2 * static_cast<int64_t>(sms);
}

}  // namespace sf::gpu
