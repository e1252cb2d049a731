// Tier-1 GPU tests of the standalone merge kernels, and of the attention kernel's partials merged by them.
#include <cmath>
#include <limits>

#include "attention_reference.h"
#include "gpu_buffers.h"
#include "streamfusion/cuda_kernels.h"

namespace sf::test {
namespace {

struct HostPartial {
  std::vector<float> o, m, l;
};

// Random (Õ, m, l) rows; every `empty_every`-th row (offset by `phase`) has seen no keys.
HostPartial random_partial(std::mt19937_64& rng, int64_t rows, int64_t dim, int empty_every, int phase) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.5f, 4.f);
  HostPartial p;
  p.o.resize(rows * dim), p.m.resize(rows), p.l.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const bool empty = r % empty_every == phase;
    p.m[r] = empty ? -INFINITY : 3.f * nd(rng);
    p.l[r] = empty ? 0.f : ud(rng);
    for (int64_t d = 0; d < dim; ++d) p.o[r * dim + d] = empty ? 0.f : nd(rng) * p.l[r];
  }
  return p;
}

void check_merge(const HostPartial& a, const HostPartial& b, const std::vector<float>& o,
                 const std::vector<float>& m, const std::vector<float>& l, int64_t dim) {
  int64_t bad = 0;
  for (size_t r = 0; r < a.m.size(); ++r) {
    const double mm = std::max<double>(a.m[r], b.m[r]);
    if (mm == -std::numeric_limits<double>::infinity()) {
      bad += !(m[r] == -INFINITY && l[r] == 0.f);
      for (int64_t d = 0; d < dim; ++d) bad += o[r * dim + d] != 0.f;
      continue;
    }
    const double fa = std::exp(a.m[r] - mm), fb = std::exp(b.m[r] - mm);
    const double lr = fa * a.l[r] + fb * b.l[r];
    bad += std::fabs(m[r] - mm) > 1e-6 * (1 + std::fabs(mm));
    bad += !(std::fabs(l[r] - lr) <= 1e-5 * lr);
    for (int64_t d = 0; d < dim; ++d) {
      const double ref = fa * a.o[r * dim + d] + fb * b.o[r * dim + d];
      bad += !(std::fabs(o[r * dim + d] - ref) <= 1e-5 * (1 + std::fabs(ref)));
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(CudaMerge, PartialsOutOfPlaceAndInPlace) {
  std::mt19937_64 rng(std::random_device{}());
  for (int64_t dim : {64, 128, 80}) {
    const int64_t rows = 1000;
    const HostPartial a = random_partial(rng, rows, dim, 7, 2), b = random_partial(rng, rows, dim, 5, 2);
    DeviceBuffer ao(rows * dim * 4), am(rows * 4), al(rows * 4), bo(rows * dim * 4), bm(rows * 4), bl(rows * 4);
    DeviceBuffer oo(rows * dim * 4), om(rows * 4), ol(rows * 4);
    ao.upload(a.o), am.upload(a.m), al.upload(a.l), bo.upload(b.o), bm.upload(b.m), bl.upload(b.l);
    SF_CUDA_ASSERT(cudaMemset(oo.get(), 0xff, oo.bytes()));  // NaN poison
    SF_CUDA_ASSERT(cudaMemset(om.get(), 0xff, om.bytes()));
    SF_CUDA_ASSERT(cudaMemset(ol.get(), 0xff, ol.bytes()));
    const cuda::AccumulatorRef ra{static_cast<float*>(ao.get()), static_cast<float*>(am.get()), static_cast<float*>(al.get())};
    const cuda::AccumulatorRef rb{static_cast<float*>(bo.get()), static_cast<float*>(bm.get()), static_cast<float*>(bl.get())};
    const cuda::AccumulatorRef ro{static_cast<float*>(oo.get()), static_cast<float*>(om.get()), static_cast<float*>(ol.get())};
    Status st = cuda::merge_partials(ra, rb, ro, rows, dim, nullptr);
    ASSERT_TRUE(st.is_ok()) << st.message();
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    check_merge(a, b, oo.download<float>(), om.download<float>(), ol.download<float>(), dim);
    st = cuda::merge_partials(ra, rb, ra, rows, dim, nullptr);  // in place into a
    ASSERT_TRUE(st.is_ok()) << st.message();
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    check_merge(a, b, ao.download<float>(), am.download<float>(), al.download<float>(), dim);
  }
}

TEST(CudaMerge, LseForm) {
  std::mt19937_64 rng(std::random_device{}());
  const int64_t batch = 2, len = 77, heads = 3, dim = 128, rows = batch * len * heads;
  for (DType t : {DType::kBF16, DType::kF16}) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<uint16_t> oa(rows * dim), ob(rows * dim);
    std::vector<float> la(rows), lb(rows);
    for (auto& x : oa) x = to_bits(nd(rng), t);
    for (auto& x : ob) x = to_bits(nd(rng), t);
    for (int64_t r = 0; r < rows; ++r) {
      la[r] = r % 6 == 1 ? -INFINITY : 4.f * nd(rng);
      lb[r] = r % 4 == 1 ? -INFINITY : 4.f * nd(rng);
    }
    DeviceBuffer doa(oa.size() * 2), dob(ob.size() * 2), dla(rows * 4), dlb(rows * 4), doo(oa.size() * 2),
        dlo(rows * 4);
    doa.upload(oa), dob.upload(ob), dla.upload(la), dlb.upload(lb);
    SF_CUDA_ASSERT(cudaMemset(doo.get(), 0xff, doo.bytes()));
    SF_CUDA_ASSERT(cudaMemset(dlo.get(), 0xff, dlo.bytes()));
    // lse laid out [B, H, len] as FlashAttention returns it; O dense [B, len, H, D].
    auto part = [&](DeviceBuffer& o, DeviceBuffer& l) {
      cuda::LsePartial p;
      p.o = dense_rows(o.get(), len, heads, dim);
      p.lse = static_cast<float*>(l.get());
      p.lse_stride_b = heads * len, p.lse_stride_s = 1, p.lse_stride_h = len;
      return p;
    };
    Status st = cuda::merge_lse(part(doa, dla), part(dob, dlb), part(doo, dlo), t, batch, heads, dim, nullptr);
    ASSERT_TRUE(st.is_ok()) << st.message();
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    const auto oo = doo.download<uint16_t>();
    const auto lo = dlo.download<float>();
    int64_t bad = 0;
    double diff2 = 0, ref2 = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < len; ++s)
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t row = (b * len + s) * heads + h, li = (b * heads + h) * len + s;
          const double mx = std::max<double>(la[li], lb[li]);
          if (mx == -std::numeric_limits<double>::infinity()) {
            bad += lo[li] != -INFINITY;
            for (int64_t d = 0; d < dim; ++d) bad += from_bits(oo[row * dim + d], t) != 0.f;
            continue;
          }
          const double wa = std::exp(la[li] - mx), wb = std::exp(lb[li] - mx), sum = wa + wb;
          bad += std::fabs(lo[li] - (mx + std::log(sum))) > 1e-5 * (1 + std::fabs(mx));
          for (int64_t d = 0; d < dim; ++d) {
            const double ref = (wa * from_bits(oa[row * dim + d], t) + wb * from_bits(ob[row * dim + d], t)) / sum;
            const double got = from_bits(oo[row * dim + d], t);
            bad += !std::isfinite(got);
            diff2 += (got - ref) * (got - ref), ref2 += ref * ref;
          }
        }
    EXPECT_EQ(bad, 0);
    EXPECT_LE(std::sqrt(diff2 / ref2), t == DType::kBF16 ? 4e-3 : 6e-4);  // one output rounding
  }
}

// Attention over two K/V halves in separate kInit calls, merged by merge_partials == attention over all keys.
TEST(CudaMerge, AttentionPartialsMergeToFullResult) {
  std::mt19937_64 rng(std::random_device{}());
  RefOptions opt;
  opt.batch = 2, opt.heads = 2, opt.dim = 128, opt.scale = 1 / std::sqrt(128.0), opt.dtype = DType::kBF16;
  const int64_t sq = 150;
  const HostRows q = random_rows(rng, 2, sq, 2, 128, 1.5f, opt.dtype);
  std::vector<HostRows> k, v;
  for (int64_t len : {170, 90}) {
    k.push_back(random_rows(rng, 2, len, 2, 128, 1.f, opt.dtype));
    v.push_back(random_rows(rng, 2, len, 2, 128, 1.f, opt.dtype));
  }
  auto dev = [&](const HostRows& r) {
    std::vector<uint16_t> bits(r.v.size());
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = to_bits(r.v[i], opt.dtype);
    DeviceBuffer b(bits.size() * 2);
    b.upload(bits);
    return b;
  };
  DeviceBuffer dq = dev(q), dk0 = dev(k[0]), dv0 = dev(v[0]), dk1 = dev(k[1]), dv1 = dev(v[1]);
  const int64_t rows = 2 * sq * 2;
  DeviceBuffer o[2] = {DeviceBuffer(rows * 128 * 4), DeviceBuffer(rows * 128 * 4)};
  DeviceBuffer m[2] = {DeviceBuffer(rows * 4), DeviceBuffer(rows * 4)};
  DeviceBuffer l[2] = {DeviceBuffer(rows * 4), DeviceBuffer(rows * 4)};
  DeviceBuffer* dks[2] = {&dk0, &dk1};
  DeviceBuffer* dvs[2] = {&dv0, &dv1};
  for (int part = 0; part < 2; ++part) {
    QChunk qc;
    qc.q = dense_rows(dq.get(), sq, 2, 128);
    qc.acc_o = static_cast<float*>(o[part].get());
    qc.acc_m = static_cast<float*>(m[part].get());
    qc.acc_l = static_cast<float*>(l[part].get());
    KVChunk kv{dense_rows(dks[part]->get(), k[part].len, 2, 128), dense_rows(dvs[part]->get(), k[part].len, 2, 128)};
    AttentionProblem p;
    p.dtype = opt.dtype, p.batch = 2, p.heads = 2, p.head_dim = 128, p.scale = static_cast<float>(opt.scale);
    p.q = &qc, p.num_q = 1, p.kv = &kv, p.num_kv = 1;
    Status st = cuda::attention(p, nullptr);
    ASSERT_TRUE(st.is_ok()) << st.message();
  }
  const cuda::AccumulatorRef a{static_cast<float*>(o[0].get()), static_cast<float*>(m[0].get()), static_cast<float*>(l[0].get())};
  const cuda::AccumulatorRef b{static_cast<float*>(o[1].get()), static_cast<float*>(m[1].get()), static_cast<float*>(l[1].get())};
  Status st = cuda::merge_partials(a, b, a, rows, 128, nullptr);
  ASSERT_TRUE(st.is_ok()) << st.message();
  SF_CUDA_ASSERT(cudaDeviceSynchronize());
  const auto go = o[0].download<float>();
  const auto gl = l[0].download<float>();
  RefAccumulator acc = empty_accumulator(opt, sq);
  reference_accumulate(opt, q, k, v, &acc);
  const auto ref = normalize(opt, acc);
  const auto sp = emulate_attention(opt, q, k, v, false, nullptr);
  double diff2 = 0, sp2 = 0, ref2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double got = go[i] / gl[i / 128];
    diff2 += (got - ref[i]) * (got - ref[i]), sp2 += (sp[i] - ref[i]) * (sp[i] - ref[i]), ref2 += ref[i] * ref[i];
  }
  std::printf("[merged partials] rel err %.3e, same-precision ref %.3e\n", std::sqrt(diff2 / ref2), std::sqrt(sp2 / ref2));
  EXPECT_LE(std::sqrt(diff2 / ref2), 2 * std::sqrt(sp2 / ref2) + 1e-6);
}

}  // namespace
}  // namespace sf::test
