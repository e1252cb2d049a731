// sf::cpu_attention (float32 multi-chunk attention with a running (Õ, m, l) accumulator),
// sf::reference_attention (float64) and sf::validate_problem.
//
// Every case uses fresh random inputs in [-2, 2] (never zeros), poisons outputs and accumulators with NaN before
// each run so unwritten elements show, and compares against float64 (DESIGN.md sections 4 and 7).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "streamfusion/attention_problem.h"
#include "streamfusion/cpu_kernels.h"
#include "streamfusion/dtype.h"
#include "streamfusion/status.h"

namespace sf {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A logical [B, S, H, D] tensor of dtype t stored as heads [h0, h0 + H) of a bigger [B, S, Htot, D] buffer, so
// that its rows are non-contiguous views whenever Htot > H; or, head-major, of a [B, Htot, S, D] buffer (then
// stride_h = S·D and stride_s = D). Elements outside the view hold a sentinel.
class HostTensor {
 public:
  HostTensor(DType t, int64_t batch, int64_t seq, int64_t heads, int64_t dim, int64_t heads_total = -1,
             int64_t head_offset = 0, bool head_major = false)
      : t_(t),
        B_(batch),
        S_(seq),
        H_(heads),
        D_(dim),
        Htot_(heads_total < 0 ? heads : heads_total),
        h0_(head_offset),
        head_major_(head_major) {
    const size_t n = static_cast<size_t>(B_ * S_ * Htot_ * D_);
    if (t_ == DType::kF32)
      f32_.assign(n, 0.f);
    else
      h16_.assign(n, 0);
    for (size_t i = 0; i < n; ++i) store_from_float(raw(), static_cast<int64_t>(i), t_, kSentinel);
  }

  static constexpr float kSentinel = 3.0f;  // exact in every dtype

  DType dtype() const { return t_; }
  int64_t seq() const { return S_; }
  int64_t index(int64_t b, int64_t s, int64_t h, int64_t d) const {
    return head_major_ ? ((b * Htot_ + h0_ + h) * S_ + s) * D_ + d : ((b * S_ + s) * Htot_ + h0_ + h) * D_ + d;
  }
  void* raw() { return t_ == DType::kF32 ? static_cast<void*>(f32_.data()) : static_cast<void*>(h16_.data()); }
  const void* raw() const {
    return t_ == DType::kF32 ? static_cast<const void*>(f32_.data()) : static_cast<const void*>(h16_.data());
  }
  float get(int64_t b, int64_t s, int64_t h, int64_t d) const { return load_as_float(raw(), index(b, s, h, d), t_); }
  void set(int64_t b, int64_t s, int64_t h, int64_t d, float v) { store_from_float(raw(), index(b, s, h, d), t_, v); }

  template <typename F>
  void for_each(F&& f) {
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t s = 0; s < S_; ++s)
        for (int64_t h = 0; h < H_; ++h)
          for (int64_t d = 0; d < D_; ++d) f(b, s, h, d);
  }

  // Uniform in [-2, 2], rounded to the dtype; exact zeros are replaced so no element is 0.
  void fill_random(std::mt19937_64& rng) {
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) {
      float v = u(rng);
      if (v == 0.f) v = 0.5f;
      set(b, s, h, d, v);
    });
  }
  void poison() {
    for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { set(b, s, h, d, kNaN); });
  }
  // True when every element outside the view still holds the sentinel.
  bool outside_intact() const {
    const int64_t n = B_ * S_ * Htot_ * D_;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t head = head_major_ ? (i / (S_ * D_)) % Htot_ : (i / D_) % Htot_;
      if (head >= h0_ && head < h0_ + H_) continue;
      if (load_as_float(raw(), i, t_) != kSentinel) return false;
    }
    return true;
  }
  // Rows [s0, s0 + len) as a (possibly strided) RowChunk.
  RowChunk rows(int64_t s0, int64_t len) {
    char* base = static_cast<char*>(raw()) + index(0, s0, 0, 0) * dtype_size(t_);
    if (head_major_) return RowChunk{base, len, S_ * Htot_ * D_, D_, S_ * D_};
    return RowChunk{base, len, S_ * Htot_ * D_, Htot_ * D_, D_};
  }
  // A dense [B, S, H, D] copy of the view, same dtype, same bits.
  HostTensor dense() const {
    HostTensor out(t_, B_, S_, H_, D_);
    out.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) {
      if (t_ == DType::kF32)
        out.f32_[out.index(b, s, h, d)] = f32_[index(b, s, h, d)];
      else
        out.h16_[out.index(b, s, h, d)] = h16_[index(b, s, h, d)];
    });
    return out;
  }

 private:
  DType t_;
  int64_t B_, S_, H_, D_, Htot_, h0_;
  bool head_major_;
  std::vector<float> f32_;
  std::vector<uint16_t> h16_;
};

void fill_random(std::mt19937_64& rng, std::initializer_list<HostTensor*> tensors) {
  for (HostTensor* t : tensors) t->fill_random(rng);
}

// Per Q chunk: its dense fp32 accumulator, poisoned with NaN.
struct Acc {
  std::vector<float> o, m, l;
  Acc(int64_t batch, int64_t len, int64_t heads, int64_t dim)
      : o(static_cast<size_t>(batch * len * heads * dim), kNaN),
        m(static_cast<size_t>(batch * len * heads), kNaN),
        l(static_cast<size_t>(batch * len * heads), kNaN) {}
  void poison() {  // in place: QChunks keep pointing at these vectors
    std::fill(o.begin(), o.end(), kNaN);
    std::fill(m.begin(), m.end(), kNaN);
    std::fill(l.begin(), l.end(), kNaN);
  }
};

// The float64 partial (m, l, Õ) of one query row against keys [k0, k1) of dense q, k, v.
struct Partial {
  double m = -kInf, l = 0;
  std::vector<double> o;
};
Partial ref_partial(const HostTensor& q, const HostTensor& k, const HostTensor& v, int64_t b, int64_t s, int64_t h,
                    int64_t dim, double scale, int64_t k0, int64_t k1) {
  Partial p;
  p.o.assign(static_cast<size_t>(dim), 0.0);
  std::vector<double> sc;
  for (int64_t j = k0; j < k1; ++j) {
    double dot = 0;
    for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(q.get(b, s, h, d)) * k.get(b, j, h, d);
    sc.push_back(dot * scale);
    p.m = std::max(p.m, sc.back());
  }
  for (int64_t j = k0; j < k1; ++j) {
    const double e = std::exp(sc[static_cast<size_t>(j - k0)] - p.m);
    p.l += e;
    for (int64_t d = 0; d < dim; ++d) p.o[static_cast<size_t>(d)] += e * v.get(b, j, h, d);
  }
  return p;
}

// DESIGN.md section 4, in double: m = max, l and Õ rescaled by e^{m_i − m}; guarded for m = −inf on both sides.
Partial merge(const Partial& a, const Partial& b) {
  Partial r;
  r.m = std::max(a.m, b.m);
  const double ca = a.m == -kInf ? 0.0 : std::exp(a.m - r.m);
  const double cb = b.m == -kInf ? 0.0 : std::exp(b.m - r.m);
  r.l = ca * a.l + cb * b.l;
  r.o.resize(a.o.size());
  for (size_t d = 0; d < a.o.size(); ++d) r.o[d] = ca * a.o[d] + cb * b.o[d];
  return r;
}
std::vector<double> finalize(const Partial& p) {
  std::vector<double> o(p.o.size(), 0.0);
  if (p.l > 0)
    for (size_t d = 0; d < o.size(); ++d) o[d] = p.o[d] / p.l;
  return o;
}

// LSE form: normalized O and lse = m + log l (−inf when no keys).
struct LsePartial {
  double lse = -kInf;
  std::vector<double> o;
};
LsePartial to_lse(const Partial& p) { return {p.l > 0 ? p.m + std::log(p.l) : -kInf, finalize(p)}; }
std::vector<double> merge_lse(const LsePartial& a, const LsePartial& b) {
  const double mx = std::max(a.lse, b.lse);
  std::vector<double> o(a.o.size(), 0.0);
  if (mx == -kInf) return o;
  const double lse = mx + std::log(std::exp(a.lse - mx) + std::exp(b.lse - mx));
  const double wa = a.lse == -kInf ? 0.0 : std::exp(a.lse - lse), wb = b.lse == -kInf ? 0.0 : std::exp(b.lse - lse);
  for (size_t d = 0; d < o.size(); ++d) o[d] = wa * a.o[d] + wb * b.o[d];
  return o;
}

// A problem over Q chunks q[0, num_q) and K/V chunks kv[0, num_kv), kInit, no finalize.
AttentionProblem make_problem(DType t, int64_t batch, int64_t heads, int64_t dim, float scale, const QChunk* q,
                              int32_t num_q, const KVChunk* kv, int32_t num_kv) {
  AttentionProblem p;
  p.dtype = t;
  p.batch = batch;
  p.heads = heads;
  p.head_dim = dim;
  p.scale = scale;
  p.q = q;
  p.num_q = num_q;
  p.kv = kv;
  p.num_kv = num_kv;
  return p;
}

struct Case {
  DType dtype = DType::kF32;
  int64_t batch = 2, heads = 3, head_dim = 64;
  std::vector<int64_t> q_lens{7};
  std::vector<int64_t> kv_lens{50};
  bool strided = false;          // Q, K, V and O are head-offset views into bigger tensors
  bool head_major = false;       // ... stored [B, H, S, D] (stride_h = S·D, stride_s = D)
  std::vector<int> kv_per_call;  // K/V chunks fed per call (kInit, then kResume...); empty: a single call
  double scale = 0;              // 0: 1/sqrt(head_dim)
  uint64_t seed = 1;
};

struct Outcome {
  std::vector<float> out;   // the output view, [B, Sq, H, D] as float
  std::vector<double> ref;  // reference_attention on the same values
  double rel_err = 0;       // max |out − ref| / max |ref|
  int64_t non_finite = 0;
  bool outside_intact = true;
  Status status;
};

Outcome run_case(const Case& c) {
  Outcome r;
  const int64_t B = c.batch, H = c.heads, D = c.head_dim;
  const int64_t Sq = std::accumulate(c.q_lens.begin(), c.q_lens.end(), int64_t{0});
  const int64_t Skv = std::accumulate(c.kv_lens.begin(), c.kv_lens.end(), int64_t{0});
  const double scale = c.scale > 0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(D));
  std::mt19937_64 rng(c.seed);
  // Strided: Q heads [1, 1+H) of H+2, K [2, 2+H) of H+3, V [1, 1+H) of H+1, O [3, 3+H) of H+4.
  HostTensor q(c.dtype, B, Sq, H, D, c.strided ? H + 2 : H, c.strided ? 1 : 0, c.head_major);
  HostTensor k(c.dtype, B, Skv, H, D, c.strided ? H + 3 : H, c.strided ? 2 : 0, c.head_major);
  HostTensor v(c.dtype, B, Skv, H, D, c.strided ? H + 1 : H, c.strided ? 1 : 0, c.head_major);
  HostTensor o(c.dtype, B, Sq, H, D, c.strided ? H + 4 : H, c.strided ? 3 : 0, c.head_major);
  fill_random(rng, {&q, &k, &v});
  o.poison();

  std::vector<Acc> accs;
  std::vector<QChunk> qc;
  int64_t s0 = 0;
  for (int64_t len : c.q_lens) {
    accs.emplace_back(B, len, H, D);
    s0 += len;
  }
  s0 = 0;
  for (size_t i = 0; i < c.q_lens.size(); ++i) {
    const int64_t len = c.q_lens[i];
    QChunk x;
    x.q = q.rows(s0, len);
    x.out = o.rows(s0, len);
    x.acc_o = accs[i].o.data();
    x.acc_m = accs[i].m.data();
    x.acc_l = accs[i].l.data();
    qc.push_back(x);
    s0 += len;
  }
  // K/V chunks are listed in reverse memory order: attention does not care about key order.
  std::vector<KVChunk> kvc;
  s0 = 0;
  for (int64_t len : c.kv_lens) {
    kvc.insert(kvc.begin(), KVChunk{k.rows(s0, len), v.rows(s0, len)});
    s0 += len;
  }

  AttentionProblem p =
      make_problem(c.dtype, B, H, D, static_cast<float>(scale), qc.data(), static_cast<int32_t>(qc.size()), nullptr, 0);
  std::vector<int> per_call = c.kv_per_call;
  if (per_call.empty()) per_call.push_back(static_cast<int>(kvc.size()));
  size_t first = 0;
  for (size_t call = 0; call < per_call.size(); ++call) {
    p.kv = kvc.data() + first;
    p.num_kv = per_call[call];
    p.mode = call == 0 ? AccumulatorMode::kInit : AccumulatorMode::kResume;
    p.finalize = call + 1 == per_call.size();
    first += static_cast<size_t>(per_call[call]);
    r.status = cpu_attention(p);
    if (!r.status.is_ok()) return r;
  }
  EXPECT_EQ(first, kvc.size()) << "kv_per_call must cover every K/V chunk";

  // The reference gets the very same values (same dtype bits), dense; scale as float like the kernel gets it.
  const HostTensor qd = q.dense(), kd = k.dense(), vd = v.dense();
  r.ref = reference_attention(qd.raw(), kd.raw(), vd.raw(), c.dtype, B, Sq, Skv, H, D,
                              static_cast<double>(static_cast<float>(scale)));
  double max_err = 0, max_ref = 0;
  size_t i = 0;
  r.out.resize(r.ref.size());
  o.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) {
    const float x = o.get(b, s, h, d);
    i = static_cast<size_t>(((b * Sq + s) * H + h) * D + d);
    r.out[i] = x;
    if (!std::isfinite(x)) ++r.non_finite;
    max_err = std::max(max_err, std::abs(static_cast<double>(x) - r.ref[i]));
    max_ref = std::max(max_ref, std::abs(r.ref[i]));
  });
  r.rel_err = max_ref > 0 ? max_err / max_ref : max_err;
  r.outside_intact = o.outside_intact();
  return r;
}

void expect_close(const Outcome& r, double tol) {
  ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
  EXPECT_EQ(r.non_finite, 0) << "NaN/inf or unwritten output elements";
  EXPECT_LT(r.rel_err, tol);
  EXPECT_TRUE(r.outside_intact) << "the kernel wrote outside the output view";
}

// ---------------------------------------------------------------- reference_attention

TEST(ReferenceAttention, MatchesNaiveSoftmax) {
  for (int64_t D : {4, 64}) {
    std::mt19937_64 rng(77 + D);
    const int64_t B = 2, Sq = 5, Skv = 9, H = 3;
    HostTensor q(DType::kF32, B, Sq, H, D), k(DType::kF32, B, Skv, H, D), v(DType::kF32, B, Skv, H, D);
    fill_random(rng, {&q, &k, &v});
    const double scale = 0.3;
    const std::vector<double> ref =
        reference_attention(q.raw(), k.raw(), v.raw(), DType::kF32, B, Sq, Skv, H, D, scale);
    ASSERT_EQ(ref.size(), static_cast<size_t>(B * Sq * H * D));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < Sq; ++s)
        for (int64_t h = 0; h < H; ++h) {
          // Naive: no max subtraction (scores are small here).
          std::vector<double> w(static_cast<size_t>(Skv));
          double sum = 0;
          for (int64_t j = 0; j < Skv; ++j) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(q.get(b, s, h, d)) * k.get(b, j, h, d);
            sum += (w[static_cast<size_t>(j)] = std::exp(scale * dot));
          }
          for (int64_t d = 0; d < D; ++d) {
            double x = 0;
            for (int64_t j = 0; j < Skv; ++j) x += w[static_cast<size_t>(j)] / sum * v.get(b, j, h, d);
            EXPECT_NEAR(ref[static_cast<size_t>(((b * Sq + s) * H + h) * D + d)], x, 1e-12);
          }
        }
  }
}

TEST(ReferenceAttention, AnalyticCases) {
  const int64_t D = 8, H = 2;
  std::mt19937_64 rng(5);
  // One key: the output is that key's value row exactly.
  HostTensor q(DType::kF32, 1, 3, H, D), k(DType::kF32, 1, 1, H, D), v(DType::kF32, 1, 1, H, D);
  fill_random(rng, {&q, &k, &v});
  std::vector<double> ref = reference_attention(q.raw(), k.raw(), v.raw(), DType::kF32, 1, 3, 1, H, D, 0.5);
  for (int64_t s = 0; s < 3; ++s)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d) EXPECT_EQ(ref[static_cast<size_t>((s * H + h) * D + d)], v.get(0, 0, h, d));

  // Identical keys: the output is the mean of the value rows.
  HostTensor k4(DType::kF32, 1, 4, H, D), v4(DType::kF32, 1, 4, H, D);
  v4.fill_random(rng);
  k4.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { k4.set(b, s, h, d, k.get(0, 0, h, d)); });
  ref = reference_attention(q.raw(), k4.raw(), v4.raw(), DType::kF32, 1, 3, 4, H, D, 0.5);
  for (int64_t s = 0; s < 3; ++s)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d) {
        double mean = 0;
        for (int64_t j = 0; j < 4; ++j) mean += v4.get(0, j, h, d) / 4.0;
        EXPECT_NEAR(ref[static_cast<size_t>((s * H + h) * D + d)], mean, 1e-12);
      }

  // Huge scale: scores in the thousands must not overflow; the softmax picks the argmax key's value row.
  HostTensor k2(DType::kF32, 1, 2, H, D), v2(DType::kF32, 1, 2, H, D);
  v2.fill_random(rng);
  k2.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { k2.set(b, s, h, d, s == 0 ? 1.f : -1.f); });
  HostTensor q1(DType::kF32, 1, 1, H, D);
  q1.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { q1.set(b, s, h, d, 2.f); });
  ref = reference_attention(q1.raw(), k2.raw(), v2.raw(), DType::kF32, 1, 1, 2, H, D, 1000.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(ref[static_cast<size_t>(h * D + d)], v2.get(0, 0, h, d));
}

// ---------------------------------------------------------------- cpu_attention vs float64

std::string head_dim_name(const ::testing::TestParamInfo<int64_t>& i) {
  std::string name = std::to_string(i.param);
  return name.insert(0, 1, 'D');
}

class CpuAttentionD : public ::testing::TestWithParam<int64_t> {};

Case make_case(int64_t head_dim, std::vector<int64_t> q_lens, std::vector<int64_t> kv_lens, uint64_t seed,
               bool strided = false, int64_t batch = 2) {
  Case c;
  c.head_dim = head_dim;
  c.q_lens = std::move(q_lens);
  c.kv_lens = std::move(kv_lens);
  c.seed = seed;
  c.strided = strided;
  c.batch = batch;
  return c;
}

TEST_P(CpuAttentionD, SingleChunk) { expect_close(run_case(make_case(GetParam(), {9}, {70}, 11, false, 1)), 1e-5); }

TEST_P(CpuAttentionD, SingleChunkBatch2) { expect_close(run_case(make_case(GetParam(), {6}, {130}, 12)), 1e-5); }

TEST_P(CpuAttentionD, UnevenChunksIncludingEmptyAndSingleRow) {
  expect_close(run_case(make_case(GetParam(), {0, 5, 1, 11, 0, 3}, {70, 0, 1, 64, 33, 0, 1, 2}, 13)), 1e-5);
}

TEST_P(CpuAttentionD, StridedHeadOffsetViews) {
  expect_close(run_case(make_case(GetParam(), {4, 1, 0, 6}, {1, 65, 0, 20}, 14, true)), 1e-5);
}

TEST_P(CpuAttentionD, HeadMajorViews) {
  Case c = make_case(GetParam(), {3, 0, 1, 5}, {33, 1, 0, 70}, 19, true);
  c.head_major = true;
  expect_close(run_case(c), 1e-5);
  c.dtype = DType::kBF16;
  c.kv_per_call = {3, 1};
  expect_close(run_case(c), 1e-2);
}

TEST_P(CpuAttentionD, ResumedAccumulatorEqualsOneCall) {
  Case c = make_case(GetParam(), {3, 0, 8}, {20, 70, 0, 1, 45, 9}, 15, true);
  const Outcome one = run_case(c);
  expect_close(one, 1e-5);
  for (const std::vector<int>& split : {std::vector<int>{2, 4}, std::vector<int>{1, 3, 2}, std::vector<int>{0, 6},
                                        std::vector<int>{6, 0}, std::vector<int>{2, 2, 2}}) {
    c.kv_per_call = split;
    const Outcome r = run_case(c);
    expect_close(r, 1e-5);
    ASSERT_EQ(r.out.size(), one.out.size());
    // Same chunks folded in the same order, with the fp32 state stored and loaded between calls: same bits.
    int64_t differ = 0;
    for (size_t i = 0; i < r.out.size(); ++i) differ += r.out[i] != one.out[i];
    EXPECT_EQ(differ, 0) << "split into " << split.size() << " calls differs from one call";
  }
}

TEST_P(CpuAttentionD, LargeScoresStayFinite) {
  // Scores of several hundred overflow exp() in float unless the running max is subtracted.
  Case c = make_case(GetParam(), {5, 2}, {40, 90}, 16);
  c.scale = 6.0;
  expect_close(run_case(c), 1e-4);
}

// bf16 and fp16 inputs and outputs (fp32 accumulator), in one call and resumed over two.
TEST_P(CpuAttentionD, HalfPrecision) {
  struct Half {
    DType dtype;
    double tol;
    std::vector<int> split;
  };
  for (const Half& x : {Half{DType::kBF16, 1e-2, {2, 2}}, Half{DType::kF16, 2e-3, {1, 3}}}) {
    SCOPED_TRACE(dtype_name(x.dtype));
    Case c = make_case(GetParam(), {0, 4, 1, 7}, {1, 66, 0, 30}, 17, true);
    c.dtype = x.dtype;
    expect_close(run_case(c), x.tol);
    c.kv_per_call = x.split;
    expect_close(run_case(c), x.tol);
  }
}

INSTANTIATE_TEST_SUITE_P(HeadDims, CpuAttentionD, ::testing::Values(64, 128), head_dim_name);

// The comparison is not vacuous: the output is far from 0, and nudging one element past the tolerance shows.
TEST(CpuAttention, ErrorMetricIsMeaningful) {
  Case c;
  c.q_lens = {4};
  c.kv_lens = {10};
  const Outcome r = run_case(c);
  expect_close(r, 1e-5);
  double max_ref = 0, max_err = 0;
  for (double x : r.ref) max_ref = std::max(max_ref, std::abs(x));
  EXPECT_GT(max_ref, 0.05) << "random inputs should give a non-trivial output";
  std::vector<float> nudged = r.out;
  nudged[5] += static_cast<float>(1e-4 * max_ref);
  for (size_t i = 0; i < nudged.size(); ++i) max_err = std::max(max_err, std::abs(nudged[i] - r.ref[i]));
  EXPECT_GT(max_err / max_ref, 1e-5);
}

// A one-shot call (kInit + finalize) needs no accumulator.
TEST(CpuAttention, OneShotWithoutAccumulator) {
  const int64_t B = 2, S = 6, Skv = 17, H = 2, D = 64;
  std::mt19937_64 rng(21);
  HostTensor q(DType::kF32, B, S, H, D), k(DType::kF32, B, Skv, H, D), v(DType::kF32, B, Skv, H, D),
      o(DType::kF32, B, S, H, D);
  fill_random(rng, {&q, &k, &v});
  o.poison();
  QChunk qc;
  qc.q = q.rows(0, S);
  qc.out = o.rows(0, S);
  KVChunk kv{k.rows(0, Skv), v.rows(0, Skv)};
  AttentionProblem p = make_problem(DType::kF32, B, H, D, 0.125f, &qc, 1, &kv, 1);
  p.finalize = true;
  ASSERT_TRUE(cpu_attention(p).is_ok());
  const std::vector<double> ref = reference_attention(q.raw(), k.raw(), v.raw(), DType::kF32, B, S, Skv, H, D, 0.125);
  o.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) {
    EXPECT_NEAR(o.get(b, s, h, d), ref[static_cast<size_t>(((b * S + s) * H + h) * D + d)], 1e-5);
  });
}

// ---------------------------------------------------------------- accumulator contents and merging

struct PartialRun {
  int64_t B, S, Skv, H, D;
  float scale;
  HostTensor q, k, v;
  Acc acc;
  // Fresh random fp32 Q [B, S, H, D] and K, V [B, Skv, H, D]; scale 1/sqrt(D).
  PartialRun(int64_t batch, int64_t seq, int64_t seq_kv, int64_t heads, int64_t dim, uint64_t seed)
      : B(batch),
        S(seq),
        Skv(seq_kv),
        H(heads),
        D(dim),
        scale(static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)))),
        q(DType::kF32, batch, seq, heads, dim),
        k(DType::kF32, batch, seq_kv, heads, dim),
        v(DType::kF32, batch, seq_kv, heads, dim),
        acc(batch, seq, heads, dim) {
    std::mt19937_64 rng(seed);
    fill_random(rng, {&q, &k, &v});
  }
};

// Runs Q (dense, one chunk) against keys [k0, k1) split into two K/V chunks, finalize off, kInit.
Status run_partial(PartialRun& r, int64_t k0, int64_t k1) {
  QChunk qc;
  qc.q = r.q.rows(0, r.S);
  qc.acc_o = r.acc.o.data();
  qc.acc_m = r.acc.m.data();
  qc.acc_l = r.acc.l.data();
  const int64_t mid = (k0 + k1) / 2;
  KVChunk kv[2] = {{r.k.rows(k0, mid - k0), r.v.rows(k0, mid - k0)},
                   {r.k.rows(mid, k1 - mid), r.v.rows(mid, k1 - mid)}};
  return cpu_attention(make_problem(DType::kF32, r.B, r.H, r.D, r.scale, &qc, 1, kv, 2));
}

Partial read_acc(const PartialRun& r, const Acc& acc, int64_t b, int64_t s, int64_t h) {
  const size_t ml = static_cast<size_t>((b * r.S + s) * r.H + h);
  Partial p;
  p.m = acc.m[ml];
  p.l = acc.l[ml];
  p.o.resize(static_cast<size_t>(r.D));
  for (int64_t d = 0; d < r.D; ++d)
    p.o[static_cast<size_t>(d)] = acc.o[ml * static_cast<size_t>(r.D) + static_cast<size_t>(d)];
  return p;
}

class CpuAccumulatorD : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuAccumulatorD, UnfinalizedAccumulatorHoldsTrueMaxSumAndUnnormalizedOutput) {
  const int64_t B = 2, S = 5, Skv = 150, H = 3, D = GetParam();
  PartialRun r(B, S, Skv, H, D, 31 + D);
  ASSERT_TRUE(run_partial(r, 0, Skv).is_ok());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h) {
        const Partial want = ref_partial(r.q, r.k, r.v, b, s, h, D, r.scale, 0, Skv);
        const Partial got = read_acc(r, r.acc, b, s, h);
        ASSERT_TRUE(std::isfinite(got.m) && std::isfinite(got.l)) << "b=" << b << " s=" << s << " h=" << h;
        EXPECT_NEAR(got.m, want.m, 1e-5 * (1 + std::abs(want.m)));
        EXPECT_NEAR(got.l, want.l, 1e-5 * want.l);
        EXPECT_GE(got.l, 1.0 - 1e-6) << "l includes exp(max − m) = 1";
        double max_o = 0;
        for (double x : want.o) max_o = std::max(max_o, std::abs(x));
        for (int64_t d = 0; d < D; ++d)
          EXPECT_NEAR(got.o[static_cast<size_t>(d)], want.o[static_cast<size_t>(d)], 1e-5 * max_o);
      }
}

TEST_P(CpuAccumulatorD, MergingTwoPartialsEqualsFullResultInBothForms) {
  const int64_t B = 2, S = 6, Skv = 140, H = 2, D = GetParam();
  const int64_t split = 53;
  PartialRun r(B, S, Skv, H, D, 41 + D);
  ASSERT_TRUE(run_partial(r, 0, split).is_ok());
  const Acc first = r.acc;
  r.acc = Acc(B, S, H, D);
  ASSERT_TRUE(run_partial(r, split, Skv).is_ok());
  const Acc second = r.acc;
  const std::vector<double> ref =
      reference_attention(r.q.raw(), r.k.raw(), r.v.raw(), DType::kF32, B, S, Skv, H, D, r.scale);
  double max_ref = 0;
  for (double x : ref) max_ref = std::max(max_ref, std::abs(x));
  double err_m = 0, err_lse = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H; ++h) {
        const Partial a = read_acc(r, first, b, s, h), c = read_acc(r, second, b, s, h);
        const std::vector<double> om = finalize(merge(a, c));
        const std::vector<double> ol = merge_lse(to_lse(a), to_lse(c));
        // Merging in either order gives the same.
        const std::vector<double> om2 = finalize(merge(c, a));
        for (int64_t d = 0; d < D; ++d) {
          const double want = ref[static_cast<size_t>(((b * S + s) * H + h) * D + d)];
          err_m = std::max(err_m, std::abs(om[static_cast<size_t>(d)] - want));
          err_lse = std::max(err_lse, std::abs(ol[static_cast<size_t>(d)] - want));
          EXPECT_NEAR(om[static_cast<size_t>(d)], om2[static_cast<size_t>(d)], 1e-12);
          EXPECT_NEAR(om[static_cast<size_t>(d)], ol[static_cast<size_t>(d)], 1e-12 * max_ref);
        }
      }
  EXPECT_LT(err_m / max_ref, 1e-5);
  EXPECT_LT(err_lse / max_ref, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(HeadDims, CpuAccumulatorD, ::testing::Values(64, 128), head_dim_name);

// With no keys (no K/V chunk, or only empty ones) the accumulator is (Õ=0, m=−inf, l=0) and merging it is the
// identity; finalizing gives exactly 0, never NaN, in every dtype and from kInit or kResume.
TEST(CpuAttention, NoKeysGivesEmptyAccumulatorAndZeroOutput) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_name(t));
    const int64_t B = 2, S = 4, H = 3, D = 64;
    std::mt19937_64 rng(51);
    HostTensor q(t, B, S, H, D), o(t, B, S, H, D), k(t, B, 1, H, D), v(t, B, 1, H, D);
    fill_random(rng, {&q, &k, &v});
    Acc acc(B, S, H, D);
    QChunk qc;
    qc.q = q.rows(0, S);
    qc.out = o.rows(0, S);
    qc.acc_o = acc.o.data();
    qc.acc_m = acc.m.data();
    qc.acc_l = acc.l.data();
    KVChunk empty[2] = {{RowChunk{nullptr, 0, 0, 0, 0}, RowChunk{nullptr, 0, 0, 0, 0}}, {k.rows(0, 0), v.rows(0, 0)}};
    AttentionProblem p = make_problem(t, B, H, D, 0.125f, &qc, 1, nullptr, 0);

    // (a) kInit, finalize off, no K/V: the empty accumulator.
    ASSERT_TRUE(cpu_attention(p).is_ok());
    for (size_t i = 0; i < acc.m.size(); ++i) {
      EXPECT_EQ(acc.m[i], -std::numeric_limits<float>::infinity());
      EXPECT_EQ(acc.l[i], 0.f);
    }
    for (float x : acc.o) EXPECT_EQ(x, 0.f);

    // (b) kResume from that empty accumulator with only empty K/V chunks, finalized: exactly 0.
    o.poison();
    p.kv = empty;
    p.num_kv = 2;
    p.mode = AccumulatorMode::kResume;
    p.finalize = true;
    ASSERT_TRUE(cpu_attention(p).is_ok());
    o.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { EXPECT_EQ(o.get(b, s, h, d), 0.f); });

    // (c) kInit + finalize with no K/V at all (and a NaN-poisoned accumulator that must be ignored): exactly 0.
    acc.poison();
    o.poison();
    p.kv = nullptr;
    p.num_kv = 0;
    p.mode = AccumulatorMode::kInit;
    ASSERT_TRUE(cpu_attention(p).is_ok());
    o.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { EXPECT_EQ(o.get(b, s, h, d), 0.f); });

    // (d) Resuming the empty accumulator with one real key gives that key's value row (merge identity).
    acc.poison();
    p.kv = nullptr;
    p.num_kv = 0;
    p.finalize = false;
    ASSERT_TRUE(cpu_attention(p).is_ok());
    KVChunk one{k.rows(0, 1), v.rows(0, 1)};
    o.poison();
    p.kv = &one;
    p.num_kv = 1;
    p.mode = AccumulatorMode::kResume;
    p.finalize = true;
    ASSERT_TRUE(cpu_attention(p).is_ok());
    o.for_each([&](int64_t b, int64_t s, int64_t h, int64_t d) { EXPECT_EQ(o.get(b, s, h, d), v.get(b, 0, h, d)); });
  }
}

// The test's own merge is guarded: −inf on both sides gives 0, not NaN; an empty side is the identity.
TEST(MergeFormulas, EmptySidesAreGuarded) {
  Partial empty;
  empty.o.assign(3, 0.0);
  Partial x{1.5, 2.0, {1.0, -2.0, 4.0}};
  EXPECT_EQ(finalize(merge(empty, empty)), std::vector<double>(3, 0.0));
  EXPECT_EQ(merge_lse(to_lse(empty), to_lse(empty)), std::vector<double>(3, 0.0));
  EXPECT_EQ(finalize(merge(empty, x)), finalize(x));
  EXPECT_EQ(finalize(merge(x, empty)), finalize(x));
  const std::vector<double> lse = merge_lse(to_lse(x), to_lse(empty));
  for (size_t d = 0; d < 3; ++d) EXPECT_NEAR(lse[d], finalize(x)[d], 1e-15);
}

// ---------------------------------------------------------------- validate_problem

struct ValidFixture {
  float q[2 * 3 * 2 * 4] = {}, k[2 * 5 * 2 * 4] = {}, v[2 * 5 * 2 * 4] = {}, out[2 * 3 * 2 * 4] = {};
  float acc_o[2 * 3 * 2 * 4] = {}, acc_m[2 * 3 * 2] = {}, acc_l[2 * 3 * 2] = {};
  QChunk qc;
  KVChunk kv[2];
  AttentionProblem p;
  ValidFixture() {
    qc.q = dense_rows(q, 3, 2, 4);
    qc.out = dense_rows(out, 3, 2, 4);
    qc.acc_o = acc_o;
    qc.acc_m = acc_m;
    qc.acc_l = acc_l;
    kv[0] = {dense_rows(k, 2, 2, 4), dense_rows(v, 2, 2, 4)};
    kv[1] = {dense_rows(k + 2 * 2 * 4, 3, 2, 4), dense_rows(v + 2 * 2 * 4, 3, 2, 4)};
    p.batch = 1;
    p.heads = 2;
    p.head_dim = 4;
    p.scale = 0.5f;
    p.q = &qc;
    p.num_q = 1;
    p.kv = kv;
    p.num_kv = 2;
    p.mode = AccumulatorMode::kInit;
    p.finalize = true;
  }
};

void expect_invalid(const AttentionProblem& p, const std::vector<std::string>& words) {
  const Status s = validate_problem(p);
  ASSERT_FALSE(s.is_ok()) << "accepted a bad problem";
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.to_string();
  for (const std::string& w : words)
    EXPECT_NE(s.message().find(w), std::string::npos) << "'" << w << "' not in: " << s.message();
  // cpu_attention refuses it the same way.
  const Status c = cpu_attention(p);
  EXPECT_EQ(c.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.message(), s.message());
}

TEST(ValidateProblem, AcceptsWellFormedProblems) {
  ValidFixture f;
  EXPECT_TRUE(validate_problem(f.p).is_ok()) << validate_problem(f.p).to_string();
  f.p.finalize = false;
  EXPECT_TRUE(validate_problem(f.p).is_ok());
  f.p.mode = AccumulatorMode::kResume;
  EXPECT_TRUE(validate_problem(f.p).is_ok());
  // One-shot needs no accumulator.
  ValidFixture g;
  g.qc.acc_o = g.qc.acc_m = g.qc.acc_l = nullptr;
  EXPECT_TRUE(validate_problem(g.p).is_ok()) << validate_problem(g.p).to_string();
  // Empty chunks may have no data; no K/V at all is fine.
  ValidFixture h;
  h.kv[1] = KVChunk{};
  h.qc.q = RowChunk{};
  h.qc.out = RowChunk{};
  EXPECT_TRUE(validate_problem(h.p).is_ok()) << validate_problem(h.p).to_string();
  h.p.num_kv = 0;
  h.p.kv = nullptr;
  EXPECT_TRUE(validate_problem(h.p).is_ok());
}

TEST(ValidateProblem, RejectsBadSizes) {
  for (int which = 0; which < 3; ++which) {
    for (int64_t bad : {int64_t{0}, int64_t{-1}}) {
      ValidFixture f;
      (which == 0 ? f.p.batch : which == 1 ? f.p.heads : f.p.head_dim) = bad;
      std::string found = which == 0 ? "B=" : which == 1 ? "H=" : "D=";
      found.append(std::to_string(bad));
      expect_invalid(f.p, {which == 0 ? "batch" : which == 1 ? "heads" : "head_dim", found});
    }
  }
}

TEST(ValidateProblem, RejectsNegativeLengths) {
  ValidFixture f;
  f.qc.q.len = -1;
  f.qc.out.len = -1;
  expect_invalid(f.p, {"Q chunk 0", "negative"});
  ValidFixture g;
  g.kv[1].k.len = -2;
  g.kv[1].v.len = -2;
  expect_invalid(g.p, {"K/V chunk 1", "-2"});
  ValidFixture h;
  h.p.num_q = -1;
  expect_invalid(h.p, {"negative"});
  ValidFixture i;
  i.p.num_kv = -3;
  expect_invalid(i.p, {"negative"});
}

TEST(ValidateProblem, RejectsKLengthDifferentFromVLength) {
  ValidFixture f;
  f.kv[1].v.len = 2;
  expect_invalid(f.p, {"K/V chunk 1", "K length 3", "V length 2"});
}

TEST(ValidateProblem, RejectsLandedFlags) {
  ValidFixture f;
  const uint32_t word = 0;  // a GPU Comm's flag would live in device memory; no CPU rank waits for it
  f.kv[1].ready = LandedFlag{&word, 1};
  expect_invalid(f.p, {"K/V chunk 1", "landed flag"});
}

TEST(ValidateProblem, RejectsMissingDataPointers) {
  ValidFixture f;
  f.qc.q.data = nullptr;
  expect_invalid(f.p, {"Q chunk 0", "data pointer"});
  ValidFixture g;
  g.kv[0].k.data = nullptr;
  expect_invalid(g.p, {"K/V chunk 0", "data pointer"});
  ValidFixture h;
  h.kv[1].v.data = nullptr;
  expect_invalid(h.p, {"K/V chunk 1", "data pointer"});
  ValidFixture i;
  i.p.q = nullptr;
  expect_invalid(i.p, {"chunk list"});
  ValidFixture j;
  j.p.kv = nullptr;
  expect_invalid(j.p, {"chunk list"});
}

TEST(ValidateProblem, RejectsFinalizeWithoutMatchingOutput) {
  ValidFixture f;
  f.qc.out.data = nullptr;
  expect_invalid(f.p, {"Q chunk 0", "output"});
  ValidFixture g;
  g.qc.out.len = 2;
  expect_invalid(g.p, {"Q chunk 0", "output", "same length"});
  ValidFixture h;
  h.qc.out.len = 4;
  expect_invalid(h.p, {"output"});
  // Without finalize the output is not needed.
  ValidFixture i;
  i.p.finalize = false;
  i.qc.out = RowChunk{};
  EXPECT_TRUE(validate_problem(i.p).is_ok());
}

TEST(ValidateProblem, RejectsMissingAccumulator) {
  for (int missing = 0; missing < 3; ++missing) {
    ValidFixture f;
    f.p.mode = AccumulatorMode::kResume;
    (missing == 0 ? f.qc.acc_o : missing == 1 ? f.qc.acc_m : f.qc.acc_l) = nullptr;
    expect_invalid(f.p, {"Q chunk 0", "accumulator"});
    // kInit without finalize must also keep its accumulator somewhere.
    ValidFixture g;
    g.p.finalize = false;
    (missing == 0 ? g.qc.acc_o : missing == 1 ? g.qc.acc_m : g.qc.acc_l) = nullptr;
    expect_invalid(g.p, {"Q chunk 0", "accumulator"});
  }
}

}  // namespace
}  // namespace sf
