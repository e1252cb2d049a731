// The attention-kernel interface every backend implements (CPU, CUDA): one call computes
//   softmax(scale · Q Kᵀ) V
// for a *list* of Q chunks against a *list* of K/V chunks, merging into a running per-row accumulator
// (Õ, m, l) so that callers (Ring, Torus, ...) can feed K/V chunks over several calls and finalize once.
// Paper Appendix C; DESIGN.md section 4.
//
// Plain structs over raw pointers, no CUDA types: host code builds problems without a CUDA compiler.
#pragma once

#include <cstdint>
#include <string>

#include "streamfusion/dtype.h"
#include "streamfusion/landed_flag.h"
#include "streamfusion/status.h"

namespace sf {

// Rows [0, len) of a [B, len, H, D] tensor living anywhere: element (b, s, h, d) is at
// data + b*stride_b + s*stride_s + h*stride_h + d (strides in elements; d is contiguous).
struct RowChunk {
  void* data = nullptr;
  int64_t len = 0;
  int64_t stride_b = 0, stride_s = 0, stride_h = 0;
};

// Makes a RowChunk over a dense [B, len, H, D] block.
inline RowChunk dense_rows(void* data, int64_t len, int64_t heads, int64_t head_dim) {
  return RowChunk{data, len, len * heads * head_dim, heads * head_dim, head_dim};
}

// One block of query rows with its running accumulator and (optionally) its final output.
// The accumulator is dense fp32: acc_o is [B, len, H, D], acc_m and acc_l are [B, len, H]
// (index (b*len + s)*H + h). m is the running row max of scale·qkᵀ, l the running sum of exp(s − m),
// Õ the unnormalized Σ exp(s − m)·v.
struct QChunk {
  RowChunk q;
  float* acc_o = nullptr;
  float* acc_m = nullptr;
  float* acc_l = nullptr;
  RowChunk out;  // written (O = Õ / l, in the problem's dtype) only when finalize is set; len must equal q.len
  // Optional, finalize only: also write each row's log-sum-exp, lse = m + ln(l) (−inf for rows that saw no keys),
  // dense fp32 [B, len, H] like acc_m. With O it is the partial in LSE form that another rank merges with its own
  // (Device::merge_partial).
  float* lse = nullptr;
};

struct KVChunk {
  RowChunk k;  // k.len == v.len
  RowChunk v;
  // Where the chunk may still be landing when the call is issued (a GPU Comm's landed_flag): the call reads it
  // only once the flag is set. Only the CUDA device takes such chunks; the CPU kernels refuse them.
  LandedFlag ready{};
};

enum class AccumulatorMode : uint8_t {
  kInit,    // start from (Õ=0, m=−inf, l=0): the accumulator's previous contents are ignored
  kResume,  // load (Õ, m, l) written by an earlier call and keep merging into it
};

// A call whose work devices of one machine share while it runs (SpAttentionConfig::ring_share): the owner's call,
// and helper calls on other devices that have finished their own work, take the call's blocks of work from one
// counter in `workspace`, which lives in the owner's memory (a helper gets it mapped into its own address space).
// A helper's problem is the owner's: the same Q rows, accumulator and output (the owner's, mapped), the same K/V
// rows in the same chunks and order (the helper's own copies). A helper call may take none of the work (it is
// late, or its device cannot share) and returns once what it took is done; the owner's call computes whatever no
// helper took, and its rows are complete only once every helper call toward it has completed (the caller orders
// that, e.g. by a barrier). Devices that cannot share a call (a kernel other than the CUDA device's default, a
// problem it cannot take in one launch) leave it whole to the owner: a helper's call then computes nothing. The
// result is the same either way, up to rounding. CPU devices share (batch, head) pairs, CUDA devices blocks of work
// (src/backends/cuda/shared_work.h).
struct SharedWork {
  void* workspace = nullptr;  // the owner's, in memory every helper device can address
  size_t bytes = 0;           // at least kMinSharedWorkspace; more lets more of the call's tail run in pieces
  uint64_t epoch = 0;         // > 0 and one more for each shared call of the owner: helpers wait for its call
  bool helper = false;
  static constexpr size_t kMinSharedWorkspace = 4096;
};

struct AttentionProblem {
  DType dtype = DType::kF32;  // of q, k, v and out
  int64_t batch = 0, heads = 0, head_dim = 0;
  float scale = 0.f;  // softmax scale, usually 1/sqrt(head_dim)
  const QChunk* q = nullptr;
  int32_t num_q = 0;
  const KVChunk* kv = nullptr;
  int32_t num_kv = 0;  // may be 0: then the accumulator is only initialized/finalized
  AccumulatorMode mode = AccumulatorMode::kInit;
  // Write O = Õ/l into each q[i].out. Rows with l == 0 (no keys seen) get O = 0, never NaN.
  // When finalizing, the accumulator need not be written back.
  bool finalize = false;
  // Work shared with other devices of the machine (SharedWork), or null.
  const SharedWork* shared = nullptr;
  // The device's compute lane that runs the call (Device::compute_lanes; a device with one lane runs every call
  // on it). Calls on one lane run in issue order; calls on different lanes may run at the same time, so that one
  // call's blocks fill the other's last wave. The caller puts two calls on different lanes only when neither
  // writes what the other reads or writes, and orders the lanes (Device::order_lanes) before a call that depends
  // on the other lane's work.
  int32_t lane = 0;
};

// The shared-work description's own check.
inline Status validate_shared(const AttentionProblem& p) {
  if (p.shared == nullptr) return Status::ok();
  const SharedWork& w = *p.shared;
  if (w.workspace == nullptr || w.bytes < SharedWork::kMinSharedWorkspace)
    return invalid_argument("shared work needs a workspace of at least " +
                            std::to_string(SharedWork::kMinSharedWorkspace) + " bytes, found " +
                            (w.workspace == nullptr ? std::string("none") : std::to_string(w.bytes) + " bytes"));
  if (w.epoch == 0) return invalid_argument("shared work needs an epoch > 0, found 0");
  return Status::ok();
}

// Partials in LSE form, as FlashAttention/cuDNN return them: normalized O and lse = m + log(l)
// (lse = −inf for rows that saw no keys). Used by the merge kernels.
//   merge of (Õ_a, m_a, l_a) and (Õ_b, m_b, l_b):  m = max(m_a, m_b),
//   l = e^{m_a−m} l_a + e^{m_b−m} l_b,  Õ = e^{m_a−m} Õ_a + e^{m_b−m} Õ_b   (guarded for m = −inf).

}  // namespace sf
