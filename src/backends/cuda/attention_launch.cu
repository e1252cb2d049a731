// Host side of sf::cuda::attention: validates the problem, drops empty chunks, splits long chunk lists into
// launches (Q groups are independent; K/V groups are chained through the accumulator) and dispatches on
// (dtype, head_dim).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attention_kernel.cuh"
#include "cuda_status.cuh"
#include "streamfusion/cuda_kernels.h"

namespace sf::cuda {
namespace {

using detail::AttentionArgs;
using detail::KVChunkArgs;
using detail::QChunkArgs;

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

Status check_rows(const RowChunk& r, const std::string& what, int64_t stride_multiple, uintptr_t align) {
  if (r.len < 0) return invalid_argument(what + ": length must be >= 0, got " + std::to_string(r.len));
  if (r.len == 0) return Status::ok();
  if (r.data == nullptr) return invalid_argument(what + ": data is null but length is " + std::to_string(r.len));
  if (!aligned(r.data, align))
    return invalid_argument(what + ": data must be " + std::to_string(align) + "-byte aligned");
  if (r.stride_b % stride_multiple || r.stride_s % stride_multiple || r.stride_h % stride_multiple)
    return invalid_argument(what + ": strides must be multiples of " + std::to_string(stride_multiple) +
                            " elements, got (" + std::to_string(r.stride_b) + ", " + std::to_string(r.stride_s) + ", " +
                            std::to_string(r.stride_h) + ")");
  return Status::ok();
}

Status validate(const AttentionProblem& p) {
  if (p.dtype != DType::kBF16 && p.dtype != DType::kF16)
    return unimplemented("cuda attention supports bf16 and fp16 inputs only");
  if (p.head_dim != 64 && p.head_dim != 128)
    return unimplemented("cuda attention supports head_dim 64 or 128, got " + std::to_string(p.head_dim));
  if (p.batch < 1 || p.batch > 65535)
    return invalid_argument("batch must be in [1, 65535], got " + std::to_string(p.batch));
  if (p.heads < 1 || p.heads > 65535)
    return invalid_argument("heads must be in [1, 65535], got " + std::to_string(p.heads));
  if (!std::isfinite(p.scale)) return invalid_argument("scale must be finite");
  if (p.num_q < 0 || p.num_kv < 0) return invalid_argument("num_q and num_kv must be >= 0");
  if (p.num_q > 0 && p.q == nullptr) return invalid_argument("q is null but num_q > 0");
  if (p.num_kv > 0 && p.kv == nullptr) return invalid_argument("kv is null but num_kv > 0");
  SF_RETURN_IF_ERROR(validate_shared(p));
  for (int i = 0; i < p.num_q; ++i) {
    const QChunk& c = p.q[i];
    const std::string name = "q[" + std::to_string(i) + "]";
    SF_RETURN_IF_ERROR(check_rows(c.q, name + ".q", 8, 16));
    if (c.q.len == 0) continue;
    if (c.q.len > (int64_t{1} << 40)) return invalid_argument(name + ": length too large");
    if (p.finalize) {
      if (c.out.len != c.q.len)
        return invalid_argument(name + ": out.len (" + std::to_string(c.out.len) + ") must equal q.len (" +
                                std::to_string(c.q.len) + ")");
      SF_RETURN_IF_ERROR(check_rows(c.out, name + ".out", 2, 4));
    }
    const bool need_acc = p.mode == AccumulatorMode::kResume || !p.finalize ||
                          p.num_kv > detail::kMaxKVChunks;  // chained launches pass through the accumulator
    if (need_acc && (c.acc_o == nullptr || c.acc_m == nullptr || c.acc_l == nullptr))
      return invalid_argument(name + ": the accumulator (acc_o, acc_m, acc_l) is needed but null");
    if (c.acc_o != nullptr && !aligned(c.acc_o, 8)) return invalid_argument(name + ": acc_o must be 8-byte aligned");
  }
  for (int i = 0; i < p.num_kv; ++i) {
    const KVChunk& c = p.kv[i];
    const std::string name = "kv[" + std::to_string(i) + "]";
    if (c.k.len != c.v.len)
      return invalid_argument(name + ": k.len (" + std::to_string(c.k.len) + ") != v.len (" + std::to_string(c.v.len) +
                              ")");
    SF_RETURN_IF_ERROR(check_rows(c.k, name + ".k", 8, 16));
    SF_RETURN_IF_ERROR(check_rows(c.v, name + ".v", 8, 16));
  }
  return Status::ok();
}

QChunkArgs q_args(const QChunk& c) {
  QChunkArgs a;
  a.q = static_cast<const uint16_t*>(c.q.data);
  a.len = c.q.len;
  a.q_sb = c.q.stride_b, a.q_ss = c.q.stride_s, a.q_sh = c.q.stride_h;
  a.acc_o = c.acc_o, a.acc_m = c.acc_m, a.acc_l = c.acc_l;
  a.out = static_cast<uint16_t*>(c.out.data);
  a.out_sb = c.out.stride_b, a.out_ss = c.out.stride_s, a.out_sh = c.out.stride_h;
  a.lse = c.lse;
  return a;
}

KVChunkArgs kv_args(const KVChunk& c) {
  KVChunkArgs a;
  a.k = static_cast<const uint16_t*>(c.k.data);
  a.v = static_cast<const uint16_t*>(c.v.data);
  a.len = c.k.len;
  a.k_sb = c.k.stride_b, a.k_ss = c.k.stride_s, a.k_sh = c.k.stride_h;
  a.v_sb = c.v.stride_b, a.v_ss = c.v.stride_s, a.v_sh = c.v.stride_h;
  a.ready = c.ready.word, a.ready_value = c.ready.value, a.ready_heads_per_step = c.ready.heads_per_step;
  return a;
}

// Which kernel: SF_CUDA_ATTENTION_PATH = hopper_ws (default: warp-specialized, a TMA producer warpgroup and
// three or two consumer warpgroups, chosen per call by resolve_default), hopper_ws3 (three consumer warpgroups,
// 192-row Q tiles; at D=128 without the intra-warpgroup overlap, which 160 registers cannot hold, and with their
// Q·Kᵀ in rotation), hopper_ws2
// (two, 128-row tiles, next Q·Kᵀ overlapped with P·V and softmax), hopper_ws_pp (with consumer ping-pong),
// hopper_ws_seq_pp (ping-pong without the intra-warpgroup overlap), hopper_ws3_rot (three consumer warpgroups in
// rotation at both head dims: TurnRotation in wgmma_tiles.cuh), hopper_ws3_free (three, never in rotation: the
// D=128 kernel before session 9), hopper_tma (TMA by thread 0, no producer
// warpgroup), hopper_tma_pp (with warpgroup ping-pong), hopper (cp.async loads) or ampere (mma.sync); tests and
// benchmarks run all of them. hopper_ws became the default after GPU call 4 of session 1 (H100, 2026-11-27:
// 21/21 tests, 1.15–1.27× hopper_tma in the same run), with three warpgroups since session 2
// (bench/kernel/RESULTS.md). Read with the other settings by read_kernel_settings (kernel_settings.h).
// Rows per Q tile of the kernel the path runs (the host counts tiles in these units).
int q_tile_rows(KernelPath path) {
  const bool three = path == KernelPath::kHopperWs3 || path == KernelPath::kHopperWs3Rotation ||
                     path == KernelPath::kHopperWs3Free;
  return three ? 192 : detail::kBlockM;
}

// The default path picks, per call, between three consumer warpgroups (192-row Q tiles) and two (128 rows).
// Three are faster per row: 1.10–1.21× at D=64, 1.04–1.10× at D=128 on an H100 (2026-11-27, 07:17 and 07:37 UTC,
// bench/kernel/RESULTS.md). Both kernels fill their tiles with 64-row slices of any chunk (slice_q_tile in
// attention_hopper_ws.cu), so a call's rows are padded to 64 per chunk either way, and to a whole tile only once
// at the end: up to 128 rows with three warpgroups, 64 with two. Three unless that costs more than they gain
// (the low end of the range), which happens only for calls of a few hundred rows.
KernelPath resolve_default(KernelPath path, const std::vector<QChunkArgs>& qs, int64_t head_dim) {
  if (path != KernelPath::kHopperWs) return path;
  int64_t slices = 0;
  for (const QChunkArgs& q : qs) slices += (q.len + 63) / 64;
  const int64_t rows192 = (slices + 2) / 3 * 192, rows128 = (slices + 1) / 2 * 128;
  const double gain = head_dim == 64 ? 1.10 : 1.04;
  return static_cast<double>(rows192) <= gain * static_cast<double>(rows128) ? KernelPath::kHopperWs3
                                                                             : KernelPath::kHopperWs2;
}

// Tiles of each Q chunk of `args` recounted for block_m-row tiles; the number of tiles, or -1 past a 2^31 grid.
int64_t retile(AttentionArgs& args, int block_m) {
  int64_t tiles = 0;
  for (int i = 0; i < args.num_q; ++i) {
    args.tile_start[i] = static_cast<int32_t>(tiles);
    tiles += (args.q[i].len + block_m - 1) / block_m;
    if (tiles > 0x7fffffff) return -1;
  }
  args.tile_start[args.num_q] = static_cast<int32_t>(tiles);
  return tiles;
}

template <typename T, int D>
cudaError_t launch_fallback(const AttentionArgs& args, int tiles, int batch, KernelPath path,
                            const detail::WsOptions& base, cudaStream_t stream);

bool is_ws_path(KernelPath path) {
  return path == KernelPath::kHopperWs || path == KernelPath::kHopperWs2 || path == KernelPath::kHopperWs3 ||
         path == KernelPath::kHopperWs3Rotation || path == KernelPath::kHopperWs3Free ||
         path == KernelPath::kHopperWsPingPong || path == KernelPath::kHopperWsSeqPingPong;
}

// base: the call's settings and shared work (WsOptions::launch, shared); the path sets the rest.
template <typename T, int D>
cudaError_t launch(const AttentionArgs& args, int tiles, int batch, KernelPath path, const detail::WsOptions& base,
                   cudaStream_t stream) {
  // Only the warp-specialized kernel polls the chunks' landed flags (its producer, chunk by chunk); the others
  // start once every flagged chunk has landed.
  cudaError_t err = cudaSuccess;
  switch (path) {
    case KernelPath::kAmpere:
      if ((err = detail::wait_landed_on_stream(args, stream)) != cudaSuccess) return err;
      return detail::launch_attention_ampere<T, D>(args, tiles, batch, stream);
    case KernelPath::kHopper:
      if ((err = detail::wait_landed_on_stream(args, stream)) != cudaSuccess) return err;
      return detail::launch_attention_hopper<T, D>(args, tiles, batch, stream);
    case KernelPath::kHopperWs:
    case KernelPath::kHopperWs2:
    case KernelPath::kHopperWs3:
    case KernelPath::kHopperWs3Rotation:
    case KernelPath::kHopperWs3Free:
    case KernelPath::kHopperWsPingPong:
    case KernelPath::kHopperWsSeqPingPong: {
      detail::WsOptions o = base;
      // Three warpgroups at D=128 take turns for their Q·Kᵀ (TurnRotation): left free they sometimes fall into
      // step for a whole block; in rotation 1.03–1.09x faster (H200, 2026-11-27 15:38, bench/kernel/RESULTS.md).
      // At D=64 the overlapped loop's rotation gains only at S=4096 and loses ~1 % from 16384 on: free.
      o.ping_pong = path == KernelPath::kHopperWsPingPong || path == KernelPath::kHopperWsSeqPingPong ||
                    path == KernelPath::kHopperWs3Rotation || (path == KernelPath::kHopperWs3 && D == 128);
      o.consumer_warpgroups = q_tile_rows(path) / 64;
      o.overlap = path != KernelPath::kHopperWsSeqPingPong && !(o.consumer_warpgroups == 3 && D == 128);
      err = detail::launch_attention_hopper_ws<T, D>(args, batch, o, stream);
      break;
    }
    case KernelPath::kHopperTma:
    case KernelPath::kHopperTmaPingPong:
      if ((err = detail::wait_landed_on_stream(args, stream)) != cudaSuccess) return err;
      err =
          detail::launch_attention_hopper_tma<T, D>(args, tiles, batch, path == KernelPath::kHopperTmaPingPong, stream);
      break;
  }
  if (err != cudaErrorNotSupported) return err;
  // A helper of a shared call takes nothing through another kernel; its owner computes everything and arms its
  // queue with no plan (shared_work.h).
  if (base.shared != nullptr && base.shared->helper) return cudaSuccess;
  err = launch_fallback<T, D>(args, tiles, batch, path, base, stream);
  if (err == cudaSuccess && base.shared != nullptr) err = detail::arm_shared_unplanned(*base.shared, stream);
  return err;
}

// The cp.async kernel where the TMA kernels cannot describe some chunk.
template <typename T, int D>
cudaError_t launch_fallback(const AttentionArgs& args, int tiles, int batch, KernelPath path,
                            const detail::WsOptions& base, cudaStream_t stream) {
  cudaError_t err = cudaSuccess;
  // No tensor map for some chunk (or no driver entry point): the cp.async kernel takes any layout we accept.
  // Said once on stderr when the TMA kernel was asked for by name (tests and benchmarks), so it cannot pass
  // unnoticed through the fallback.
  static bool said = false;
  if (!said && base.launch.path_named) {
    said = true;
    std::fprintf(stderr, "sf::cuda::attention: no TMA tensor map for this problem, using the cp.async kernel\n");
  }
  if (path != KernelPath::kHopperTma && path != KernelPath::kHopperTmaPingPong &&
      (err = detail::wait_landed_on_stream(args, stream)) != cudaSuccess)
    return err;  // (the TMA kernel's fallback has waited above)
  if (q_tile_rows(path) == detail::kBlockM) return detail::launch_attention_hopper<T, D>(args, tiles, batch, stream);
  thread_local AttentionArgs args128;  // the host counted 192-row tiles: recount for the cp.async kernel's 128
  args128 = args;
  const int64_t tiles128 = retile(args128, detail::kBlockM);
  if (tiles128 < 0) return cudaErrorInvalidConfiguration;
  return detail::launch_attention_hopper<T, D>(args128, static_cast<int>(tiles128), batch, stream);
}

cudaError_t dispatch(DType dtype, int64_t head_dim, const AttentionArgs& args, int tiles, int batch, KernelPath path,
                     const detail::WsOptions& base, cudaStream_t stream) {
  if (dtype == DType::kBF16)
    return head_dim == 64 ? launch<__nv_bfloat16, 64>(args, tiles, batch, path, base, stream)
                          : launch<__nv_bfloat16, 128>(args, tiles, batch, path, base, stream);
  return head_dim == 64 ? launch<__half, 64>(args, tiles, batch, path, base, stream)
                        : launch<__half, 128>(args, tiles, batch, path, base, stream);
}

}  // namespace

Status arm_shared_unplanned(const SharedWork& work, void* stream) {
  if (work.workspace == nullptr || work.bytes < SharedWork::kMinSharedWorkspace)
    return invalid_argument("arm_shared_unplanned: the shared workspace is missing or too small");
  return detail::cuda_status(detail::arm_shared_unplanned(work, static_cast<cudaStream_t>(stream)),
                             "arming a shared call");
}

Status attention(const AttentionProblem& p, void* stream_ptr) {
  SF_RETURN_IF_ERROR(validate(p));
  detail::WsOptions base;  // what every launch of the call shares
  SF_ASSIGN_OR_RETURN(base.launch, read_kernel_settings());
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  std::vector<QChunkArgs> qs;
  for (int i = 0; i < p.num_q; ++i)
    if (p.q[i].q.len > 0) qs.push_back(q_args(p.q[i]));
  std::vector<KVChunkArgs> kvs;
  for (int i = 0; i < p.num_kv; ++i)
    if (p.kv[i].k.len > 0) kvs.push_back(kv_args(p.kv[i]));
  if (kvs.size() > static_cast<size_t>(detail::kMaxKVChunks)) {
    for (const QChunkArgs& q : qs)
      if (q.acc_o == nullptr || q.acc_m == nullptr || q.acc_l == nullptr)
        return invalid_argument("more than " + std::to_string(detail::kMaxKVChunks) +
                                " non-empty K/V chunks need the accumulator, which is null");
  }
  const int num_kv_groups =
      kvs.empty() ? 1 : static_cast<int>((kvs.size() + detail::kMaxKVChunks - 1) / detail::kMaxKVChunks);

  const KernelPath path = resolve_default(base.launch.path, qs, p.head_dim);
  const int block_m = q_tile_rows(path);
  // Shared work (AttentionProblem::shared) where one launch of the warp-specialized kernel takes the whole call.
  // Elsewhere a helper computes nothing and the owner everything, its queue armed with no plan at the end.
  if (p.shared != nullptr) {
    int64_t all_tiles = 0;
    for (const QChunkArgs& q : qs) all_tiles += (q.len + block_m - 1) / block_m;
    const bool one_launch = num_kv_groups == 1 && qs.size() <= static_cast<size_t>(detail::kMaxQChunks) &&
                            all_tiles * p.heads * p.batch <= (int64_t{1} << 30);
    if (one_launch && is_ws_path(path) && !qs.empty()) {
      base.shared = p.shared;
    } else if (p.shared->helper) {
      return Status::ok();
    }
  }
  AttentionArgs args;  // ~8 KB: reused across launches
  args.heads = static_cast<int32_t>(p.heads);
  args.scale_log2 = p.scale * 1.4426950408889634f;
  size_t qi = 0;
  while (qi < qs.size()) {
    // Take Q chunks while they fit in one launch: the chunk count, and 2^30 thread blocks (tiles × heads ×
    // batch: the warp-specialized kernel's grid is linear, with room left for its split pieces).
    args.num_q = 0;
    int64_t tiles = 0;
    while (qi < qs.size() && args.num_q < detail::kMaxQChunks) {
      const int64_t t = (qs[qi].len + block_m - 1) / block_m;
      if ((tiles + t) * p.heads * p.batch > (int64_t{1} << 30)) {
        if (args.num_q == 0)
          return invalid_argument("a Q chunk is too long for one launch: " + std::to_string(t) + " tiles of " +
                                  std::to_string(block_m) + " rows × " + std::to_string(p.heads) + " heads × " +
                                  std::to_string(p.batch) + " batch exceed 2^30 thread blocks");
        break;
      }
      args.tile_start[args.num_q] = static_cast<int32_t>(tiles);
      args.q[args.num_q++] = qs[qi++];
      tiles += t;
    }
    args.tile_start[args.num_q] = static_cast<int32_t>(tiles);
    for (int gk = 0; gk < num_kv_groups; ++gk) {
      const size_t first = static_cast<size_t>(gk) * detail::kMaxKVChunks;
      args.num_kv = 0;
      for (size_t k = first; k < kvs.size() && args.num_kv < detail::kMaxKVChunks; ++k) args.kv[args.num_kv++] = kvs[k];
      args.resume = (gk > 0 || p.mode == AccumulatorMode::kResume) ? 1 : 0;
      args.finalize = (gk == num_kv_groups - 1 && p.finalize) ? 1 : 0;
      SF_RETURN_IF_ERROR(detail::cuda_status(
          dispatch(p.dtype, p.head_dim, args, static_cast<int>(tiles), static_cast<int>(p.batch), path, base, stream),
          "launching the attention kernel"));
    }
  }
  if (p.shared != nullptr && base.shared == nullptr)  // the owner of a call it could not share
    SF_RETURN_IF_ERROR(detail::cuda_status(detail::arm_shared_unplanned(*p.shared, stream), "arming a shared call"));
  return Status::ok();
}

}  // namespace sf::cuda
