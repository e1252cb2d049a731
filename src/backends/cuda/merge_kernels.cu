// Merge kernels and their host API (sf::cuda::merge_partials, sf::cuda::merge_lse).
#include <string>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_status.cuh"
#include "merge_kernels.cuh"

namespace sf::cuda {
namespace detail {
namespace {

constexpr int kMergeThreads = 256;
constexpr int kRowsPerBlock = kMergeThreads / 32;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

__global__ void merge_partials_kernel(AccumulatorRef a, AccumulatorRef b, AccumulatorRef out, int64_t rows,
                                      int head_dim) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float ma = a.m[row], mb = b.m[row], la = a.l[row], lb = b.l[row];
  const float m = fmaxf(ma, mb);
  const float base = m == -INFINITY ? 0.f : m;  // both empty: keep exp away from (−inf) − (−inf)
  const float fa = expf(ma - base), fb = expf(mb - base);
  __syncwarp();  // all lanes have read m and l before lane 0 may overwrite them (out may alias a or b)
  const float* oa = a.o + row * head_dim;
  const float* ob = b.o + row * head_dim;
  float* oo = out.o + row * head_dim;
  for (int d = lane; d < head_dim; d += 32) {
    const float va = fa > 0.f ? fa * oa[d] : 0.f;  // an empty side contributes nothing, whatever its Õ holds
    const float vb = fb > 0.f ? fb * ob[d] : 0.f;
    oo[d] = va + vb;
  }
  if (lane == 0) {
    out.m[row] = m;
    out.l[row] = (fa > 0.f ? fa * la : 0.f) + (fb > 0.f ? fb * lb : 0.f);
  }
}

template <typename T>
__global__ void merge_lse_kernel(LsePartial a, LsePartial b, LsePartial out, int64_t batch, int64_t heads,
                                 int head_dim) {
  const int64_t len = out.o.len;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= batch * len * heads) return;
  const int64_t h = row % heads;
  const int64_t s = (row / heads) % len;
  const int64_t bi = row / (heads * len);
  const float lse_a = a.lse[bi * a.lse_stride_b + s * a.lse_stride_s + h * a.lse_stride_h];
  const float lse_b = b.lse[bi * b.lse_stride_b + s * b.lse_stride_s + h * b.lse_stride_h];
  const float mx = fmaxf(lse_a, lse_b);
  float wa = 0.f, wb = 0.f, lse = -INFINITY;
  if (mx != -INFINITY) {
    wa = expf(lse_a - mx);
    wb = expf(lse_b - mx);
    const float sum = wa + wb;
    lse = mx + logf(sum);
    wa /= sum;
    wb /= sum;
  }
  __syncwarp();
  const T* oa = static_cast<const T*>(a.o.data) + bi * a.o.stride_b + s * a.o.stride_s + h * a.o.stride_h;
  const T* ob = static_cast<const T*>(b.o.data) + bi * b.o.stride_b + s * b.o.stride_s + h * b.o.stride_h;
  T* oo = static_cast<T*>(out.o.data) + bi * out.o.stride_b + s * out.o.stride_s + h * out.o.stride_h;
  for (int d = lane; d < head_dim; d += 32) {
    const float va = wa > 0.f ? wa * to_float(oa[d]) : 0.f;
    const float vb = wb > 0.f ? wb * to_float(ob[d]) : 0.f;
    oo[d] = from_float<T>(va + vb);
  }
  if (lane == 0) out.lse[bi * out.lse_stride_b + s * out.lse_stride_s + h * out.lse_stride_h] = lse;
}

unsigned blocks_for(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

cudaError_t launch_merge_partials(const AccumulatorRef& a, const AccumulatorRef& b, const AccumulatorRef& out,
                                  int64_t rows, int head_dim, cudaStream_t stream) {
  merge_partials_kernel<<<blocks_for(rows), kMergeThreads, 0, stream>>>(a, b, out, rows, head_dim);
  return cudaGetLastError();
}

cudaError_t launch_merge_lse(const LsePartial& a, const LsePartial& b, const LsePartial& out, DType dtype,
                             int64_t batch, int64_t heads, int head_dim, cudaStream_t stream) {
  const unsigned blocks = blocks_for(batch * out.o.len * heads);
  switch (dtype) {
    case DType::kF32:
      merge_lse_kernel<float><<<blocks, kMergeThreads, 0, stream>>>(a, b, out, batch, heads, head_dim);
      break;
    case DType::kBF16:
      merge_lse_kernel<__nv_bfloat16><<<blocks, kMergeThreads, 0, stream>>>(a, b, out, batch, heads, head_dim);
      break;
    case DType::kF16:
      merge_lse_kernel<__half><<<blocks, kMergeThreads, 0, stream>>>(a, b, out, batch, heads, head_dim);
      break;
  }
  return cudaGetLastError();
}

}  // namespace detail

Status merge_partials(const AccumulatorRef& a, const AccumulatorRef& b, const AccumulatorRef& out, int64_t rows,
                      int64_t head_dim, void* stream) {
  if (rows < 0 || head_dim < 1 || head_dim > 1024)
    return invalid_argument("merge_partials: need rows >= 0 and 1 <= head_dim <= 1024, got rows " +
                            std::to_string(rows) + ", head_dim " + std::to_string(head_dim));
  if (rows == 0) return Status::ok();
  for (const AccumulatorRef* r : {&a, &b, &out})
    if (r->o == nullptr || r->m == nullptr || r->l == nullptr)
      return invalid_argument("merge_partials: every accumulator needs o, m and l");
  if ((rows + detail::kRowsPerBlock - 1) / detail::kRowsPerBlock > 0x7fffffff)
    return invalid_argument("merge_partials: too many rows for one launch");
  return detail::cuda_status(detail::launch_merge_partials(a, b, out, rows, static_cast<int>(head_dim),
                                                           static_cast<cudaStream_t>(stream)),
                             "launching merge_partials");
}

Status merge_lse(const LsePartial& a, const LsePartial& b, const LsePartial& out, DType dtype, int64_t batch,
                 int64_t heads, int64_t head_dim, void* stream) {
  if (batch < 1 || heads < 1 || head_dim < 1 || head_dim > 1024)
    return invalid_argument("merge_lse: need batch, heads >= 1 and 1 <= head_dim <= 1024");
  if (a.o.len != out.o.len || b.o.len != out.o.len)
    return invalid_argument("merge_lse: lengths differ (" + std::to_string(a.o.len) + ", " +
                            std::to_string(b.o.len) + ", out " + std::to_string(out.o.len) + ")");
  if (out.o.len < 0) return invalid_argument("merge_lse: negative length");
  if (out.o.len == 0) return Status::ok();
  for (const LsePartial* p : {&a, &b, &out})
    if (p->o.data == nullptr || p->lse == nullptr) return invalid_argument("merge_lse: null O or lse");
  if ((batch * out.o.len * heads + detail::kRowsPerBlock - 1) / detail::kRowsPerBlock > 0x7fffffff)
    return invalid_argument("merge_lse: too many rows for one launch");
  return detail::cuda_status(detail::launch_merge_lse(a, b, out, dtype, batch, heads, static_cast<int>(head_dim),
                                                      static_cast<cudaStream_t>(stream)),
                             "launching merge_lse");
}

}  // namespace sf::cuda
