// Float32 multi-chunk attention on one CPU thread: for each (batch, Q row, head) the running accumulator
// (Õ, m, l) is loaded or initialized, every K/V chunk is folded in by online softmax over blocks of keys,
// and the row is stored back or finalized (DESIGN.md section 4). Shared calls (AttentionProblem::shared) hand
// out their (batch, head) pairs to the owner and its helpers on other rank threads.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <cmath>
#include <limits>
#include <vector>

#include "streamfusion/cpu_kernels.h"

namespace sf {
namespace {

constexpr int kKeyBlock = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(a − b) for a ≤ b, 0 when a is −inf (also when both are −inf: nothing was accumulated yet).
inline float rescale(float a, float b) { return a == kNegInf ? 0.f : std::exp(a - b); }

void load_row(const RowChunk& c, int64_t b, int64_t s, int64_t h, int64_t d, DType t, float* out) {
  const int64_t base = b * c.stride_b + s * c.stride_s + h * c.stride_h;
  if (t == DType::kF32) {
    std::copy_n(static_cast<const float*>(c.data) + base, d, out);
  } else {
    for (int64_t i = 0; i < d; ++i) out[i] = load_as_float(c.data, base + i, t);
  }
}

struct KVRows {  // one K/V chunk of one (batch, head), converted to float once
  std::vector<float> k, v;
  int64_t len = 0;
};

// Shared work on CPU devices (AttentionProblem::shared): the workspace starts with this header, and the call's
// blocks of work are its (batch, head) pairs, taken from `queue` by the owner's call and by helper calls on other
// rank threads. (A GPU device lays its workspace out its own way: every device of a world is of one kind.)
struct CpuSharedHeader {
  uint64_t go;           // the owner's epoch once the queue is armed
  uint32_t queue;        // the next (batch, head) pair
  uint32_t helped;       // pairs that helpers took
  uint32_t items;        // the owner's count of pairs: a helper with another count takes nothing
  uint64_t fingerprint;  // of the owner's Q and K/V contents (problem_fingerprint)
};

// A fingerprint of a problem's Q and K/V contents in chunk order (values sampled at the corners and thirds of every
// chunk), so that a helper whose problem is not its owner's (K/V blocks in another order, another owner's rows)
// fails loudly even when it takes no pair, instead of only where timing lets it take one.
uint64_t problem_fingerprint(const AttentionProblem& p) {
  uint64_t f = 1469598103934665603ull;
  const auto add = [&f](uint64_t v) {
    for (int i = 0; i < 8; ++i) f = (f ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  };
  const auto sample = [&](const RowChunk& c) {
    add(static_cast<uint64_t>(c.len));
    if (c.len == 0) return;
    for (const int64_t s : {int64_t{0}, c.len / 3, 2 * c.len / 3, c.len - 1})
      for (const int64_t b : {int64_t{0}, p.batch - 1})
        for (const int64_t h : {int64_t{0}, p.heads - 1})
          for (const int64_t d : {int64_t{0}, p.head_dim - 1}) {
            const float v = load_as_float(c.data, b * c.stride_b + s * c.stride_s + h * c.stride_h + d, p.dtype);
            uint32_t bits;
            std::memcpy(&bits, &v, sizeof bits);
            add(bits);
          }
  };
  for (int i = 0; i < p.num_q; ++i) sample(p.q[i].q);
  for (int j = 0; j < p.num_kv; ++j) {
    sample(p.kv[j].k);
    sample(p.kv[j].v);
  }
  return f;
}

}  // namespace

Status cpu_attention(const AttentionProblem& p, const CpuShareOptions& share) {
  SF_RETURN_IF_ERROR(validate_problem(p));
  const int64_t B = p.batch, H = p.heads, D = p.head_dim;
  std::vector<KVRows> kv(p.num_kv);
  std::vector<float> q(D), o(D), scores(kKeyBlock);
  const auto compute = [&](int64_t b, int64_t h) {
    for (int j = 0; j < p.num_kv; ++j) {  // gather this (b, h) of every K/V chunk
      const KVChunk& c = p.kv[j];
      kv[j].len = c.k.len;
      kv[j].k.resize(c.k.len * D);
      kv[j].v.resize(c.k.len * D);
      for (int64_t s = 0; s < c.k.len; ++s) {
        load_row(c.k, b, s, h, D, p.dtype, &kv[j].k[s * D]);
        load_row(c.v, b, s, h, D, p.dtype, &kv[j].v[s * D]);
      }
    }
    for (int i = 0; i < p.num_q; ++i) {
      const QChunk& qc = p.q[i];
      const int64_t len = qc.q.len;
      for (int64_t s = 0; s < len; ++s) {
        const int64_t ml = (b * len + s) * H + h;
        float m = kNegInf, l = 0.f;
        if (p.mode == AccumulatorMode::kResume) {
          m = qc.acc_m[ml];
          l = qc.acc_l[ml];
          std::copy_n(qc.acc_o + ml * D, D, o.data());
        } else {
          std::fill(o.begin(), o.end(), 0.f);
        }
        load_row(qc.q, b, s, h, D, p.dtype, q.data());
        for (int j = 0; j < p.num_kv; ++j) {
          const KVRows& c = kv[j];
          for (int64_t t0 = 0; t0 < c.len; t0 += kKeyBlock) {
            const int64_t n = std::min<int64_t>(kKeyBlock, c.len - t0);
            float block_max = kNegInf;
            for (int64_t t = 0; t < n; ++t) {
              const float* kr = &c.k[(t0 + t) * D];
              float dot = 0.f;
              for (int64_t d = 0; d < D; ++d) dot += q[d] * kr[d];
              scores[t] = dot * p.scale;
              block_max = std::max(block_max, scores[t]);
            }
            const float m_new = std::max(m, block_max);
            const float corr = rescale(m, m_new);
            l *= corr;
            for (int64_t d = 0; d < D; ++d) o[d] *= corr;
            for (int64_t t = 0; t < n; ++t) {
              const float e = std::exp(scores[t] - m_new);
              l += e;
              const float* vr = &c.v[(t0 + t) * D];
              for (int64_t d = 0; d < D; ++d) o[d] += e * vr[d];
            }
            m = m_new;
          }
        }
        if (p.finalize) {
          const float inv = l > 0.f ? 1.f / l : 0.f;
          const int64_t base = b * qc.out.stride_b + s * qc.out.stride_s + h * qc.out.stride_h;
          for (int64_t d = 0; d < D; ++d) store_from_float(qc.out.data, base + d, p.dtype, o[d] * inv);
          if (qc.lse) qc.lse[ml] = l > 0.f ? m + std::log(l) : kNegInf;
        } else {
          qc.acc_m[ml] = m;
          qc.acc_l[ml] = l;
          std::copy_n(o.data(), D, qc.acc_o + ml * D);
        }
      }
    }
  };
  if (p.shared == nullptr) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) compute(b, h);
    return Status::ok();
  }
  auto* header = static_cast<CpuSharedHeader*>(p.shared->workspace);
  std::atomic_ref<uint64_t> go(header->go);
  std::atomic_ref<uint32_t> queue(header->queue), helped(header->helped), items(header->items);
  const auto pairs = static_cast<uint32_t>(B * H);
  if (p.shared->helper) {  // wait for the owner to arm, as a GPU helper does; a bounded wait, never a hang
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(share.wait_s);
    while (go.load(std::memory_order_acquire) < p.shared->epoch) {
      if (std::chrono::steady_clock::now() > deadline)
        return Status(ErrorCode::kTimeout, "shared attention call: the owner did not arm epoch " +
                                 std::to_string(p.shared->epoch) + " within " + std::to_string(share.wait_s) + " s");
      std::this_thread::yield();
    }
    if (items.load(std::memory_order_relaxed) != pairs) return Status::ok();  // not the owner's call: take nothing
    if (header->fingerprint != problem_fingerprint(p))
      return internal_error("shared attention call: this helper's Q or K/V differ from its owner's (epoch " +
                            std::to_string(p.shared->epoch) + ")");
  } else {
    if (share.arm_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(share.arm_delay_ms));
    queue.store(0, std::memory_order_relaxed);
    helped.store(0, std::memory_order_relaxed);
    items.store(pairs, std::memory_order_relaxed);
    header->fingerprint = problem_fingerprint(p);
    go.store(p.shared->epoch, std::memory_order_release);
    // Tests: the owner pauses once armed, so that helpers take its pairs (CpuDevice::set_share_pause_ms).
    if (share.owner_pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(share.owner_pause_ms));
  }
  for (;;) {
    const uint32_t i = queue.fetch_add(1, std::memory_order_relaxed);
    if (i >= pairs) break;
    if (p.shared->helper) helped.fetch_add(1, std::memory_order_relaxed);
    compute(i / H, i % H);
  }
  return Status::ok();
}

int64_t cpu_shared_helped(const SharedWork& work) {
  auto* header = static_cast<CpuSharedHeader*>(work.workspace);
  return header == nullptr ? 0 : std::atomic_ref<uint32_t>(header->helped).load(std::memory_order_relaxed);
}

std::vector<double> reference_attention(const void* q, const void* k, const void* v, DType dtype, int64_t batch,
                                        int64_t seq_q, int64_t seq_kv, int64_t heads, int64_t head_dim,
                                        double scale) {
  const int64_t H = heads, D = head_dim;
  std::vector<double> out(batch * seq_q * H * D, 0.0), s(seq_kv);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < seq_q; ++i) {
        const int64_t qi = ((b * seq_q + i) * H + h) * D;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < seq_kv; ++j) {
          const int64_t kj = ((b * seq_kv + j) * H + h) * D;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(load_as_float(q, qi + d, dtype)) * load_as_float(k, kj + d, dtype);
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < seq_kv; ++j) sum += (s[j] = std::exp(s[j] - mx));
        double* o = &out[qi];
        for (int64_t j = 0; j < seq_kv; ++j) {
          const int64_t vj = ((b * seq_kv + j) * H + h) * D;
          const double w = s[j] / sum;
          for (int64_t d = 0; d < D; ++d) o[d] += w * load_as_float(v, vj + d, dtype);
        }
      }
  return out;
}

}  // namespace sf
