#include "attention_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

namespace sf::test {

uint16_t to_bits(float v, DType t) {
  if (t == DType::kF16) {
    const _Float16 h = static_cast<_Float16>(v);
    uint16_t bits;
    std::memcpy(&bits, &h, 2);
    return bits;
  }
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if (std::isnan(v)) return 0x7fc0;
  u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

float from_bits(uint16_t v, DType t) {
  if (t == DType::kF16) {
    _Float16 h;
    std::memcpy(&h, &v, 2);
    return static_cast<float>(h);
  }
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

HostRows random_rows(std::mt19937_64& rng, int64_t batch, int64_t len, int64_t heads, int64_t dim, float stddev,
                     DType t) {
  std::normal_distribution<float> dist(0.f, stddev);
  HostRows r;
  r.len = len;
  r.v.resize(static_cast<size_t>(batch * len * heads * dim));
  if (stddev == 0.f) {  // diagnostic inputs: all scores equal, P uniform
    r.v.assign(r.v.size(), 0.f);
    return r;
  }
  for (float& x : r.v) x = round_to(dist(rng), t);
  return r;
}

namespace {

// Runs f(b, h) for every (batch, head) pair over a few threads.
template <typename F>
void for_each_bh(int64_t batch, int64_t heads, F f) {
  const int64_t n = batch * heads;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(n, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) f(i / heads, i % heads);
    });
  for (auto& th : pool) th.join();
}

inline size_t at(int64_t b, int64_t s, int64_t h, int64_t d, int64_t len, int64_t heads, int64_t dim) {
  return static_cast<size_t>(((b * len + s) * heads + h) * dim + d);
}

}  // namespace

RefAccumulator empty_accumulator(const RefOptions& opt, int64_t len) {
  RefAccumulator acc;
  const size_t rows = static_cast<size_t>(opt.batch * len * opt.heads);
  acc.o.assign(rows * opt.dim, 0.0);
  acc.m.assign(rows, -std::numeric_limits<double>::infinity());
  acc.l.assign(rows, 0.0);
  return acc;
}

void reference_accumulate(const RefOptions& opt, const HostRows& q, const std::vector<HostRows>& k,
                          const std::vector<HostRows>& v, RefAccumulator* acc) {
  const int64_t D = opt.dim, H = opt.heads;
  for_each_bh(opt.batch, H, [&](int64_t b, int64_t h) {
    std::vector<double> scores;
    for (int64_t s = 0; s < q.len; ++s) {
      const size_t row = static_cast<size_t>((b * q.len + s) * H + h);
      const float* qr = &q.v[at(b, s, h, 0, q.len, H, D)];
      scores.clear();
      double mx = acc->m[row];
      for (size_t c = 0; c < k.size(); ++c)
        for (int64_t j = 0; j < k[c].len; ++j) {
          const float* kr = &k[c].v[at(b, j, h, 0, k[c].len, H, D)];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qr[d]) * kr[d];
          scores.push_back(dot * opt.scale);
          mx = std::max(mx, scores.back());
        }
      if (mx == -std::numeric_limits<double>::infinity()) continue;  // nothing seen, nothing to merge
      const double alpha = std::exp(acc->m[row] - mx);
      double* o = &acc->o[row * D];
      for (int64_t d = 0; d < D; ++d) o[d] *= alpha;
      double l = acc->l[row] * alpha;
      size_t idx = 0;
      for (size_t c = 0; c < k.size(); ++c)
        for (int64_t j = 0; j < k[c].len; ++j) {
          const double p = std::exp(scores[idx++] - mx);
          l += p;
          const float* vr = &v[c].v[at(b, j, h, 0, v[c].len, H, D)];
          for (int64_t d = 0; d < D; ++d) o[d] += p * vr[d];
        }
      acc->m[row] = mx;
      acc->l[row] = l;
    }
  });
}

std::vector<float> emulate_attention(const RefOptions& opt, const HostRows& q, const std::vector<HostRows>& k,
                                     const std::vector<HostRows>& v, bool round_output,
                                     const RefAccumulator* init) {
  const int64_t D = opt.dim, H = opt.heads;
  std::vector<float> out(q.v.size(), 0.f);
  const float scale = static_cast<float>(opt.scale);
  for_each_bh(opt.batch, H, [&](int64_t b, int64_t h) {
    std::vector<float> scores, o(static_cast<size_t>(D));
    for (int64_t s = 0; s < q.len; ++s) {
      const float* qr = &q.v[at(b, s, h, 0, q.len, H, D)];
      scores.clear();
      const size_t row = static_cast<size_t>((b * q.len + s) * H + h);
      const float m0 = init ? static_cast<float>(init->m[row]) : -std::numeric_limits<float>::infinity();
      float mx = m0;
      for (size_t c = 0; c < k.size(); ++c)
        for (int64_t j = 0; j < k[c].len; ++j) {
          const float* kr = &k[c].v[at(b, j, h, 0, k[c].len, H, D)];
          float dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qr[d] * kr[d];
          scores.push_back(dot * scale);
          mx = std::max(mx, scores.back());
        }
      std::fill(o.begin(), o.end(), 0.f);
      float l = 0;
      if (init && init->l[row] > 0) {
        const float alpha = std::exp(m0 - mx);
        l = static_cast<float>(init->l[row]) * alpha;
        for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(init->o[row * D + d]) * alpha;
      }
      size_t idx = 0;
      for (size_t c = 0; c < k.size(); ++c)
        for (int64_t j = 0; j < k[c].len; ++j) {
          const float p = std::exp(scores[idx++] - mx);
          l += p;
          const float pr = round_to(p, opt.dtype);
          const float* vr = &v[c].v[at(b, j, h, 0, v[c].len, H, D)];
          for (int64_t d = 0; d < D; ++d) o[d] += pr * vr[d];
        }
      float* dst = &out[at(b, s, h, 0, q.len, H, D)];
      for (int64_t d = 0; d < D; ++d) {
        const float x = l > 0 ? o[d] / l : 0.f;
        dst[d] = round_output ? round_to(x, opt.dtype) : x;
      }
    }
  });
  return out;
}

std::vector<double> normalize(const RefOptions& opt, const RefAccumulator& acc) {
  std::vector<double> out(acc.o.size());
  for (size_t r = 0; r < acc.l.size(); ++r)
    for (int64_t d = 0; d < opt.dim; ++d)
      out[r * opt.dim + d] = acc.l[r] > 0 ? acc.o[r * opt.dim + d] / acc.l[r] : 0.0;
  return out;
}

}  // namespace sf::test
