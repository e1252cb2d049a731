// Tier-1 GPU tests of sf::cuda::attention against the float64 CPU reference (fresh random inputs every run,
// outputs and accumulators poisoned first, input padding filled with NaN so stray reads show).
#include <chrono>
#include <cstddef>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "attention_reference.h"
#include "backends/cuda/shared_work.h"
#include "gpu_buffers.h"
#include "streamfusion/cuda_kernels.h"

namespace sf::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

uint16_t poison_bits(DType t) { return t == DType::kF16 ? 0x7e01 : 0x7fc1; }  // NaNs with a marker payload

struct Case {
  std::string name;
  DType dtype = DType::kBF16;
  int64_t batch = 1, heads = 2, dim = 64;
  std::vector<int64_t> q_lens, kv_lens;
  Layout layout = Layout::kDense;
  bool finalize = true;
  int split = -1;            // >= 0: call 1 takes kv[0, split) from kInit without finalizing, call 2 the rest
  bool random_init = false;  // one call in kResume mode from a random accumulator
  float q_std = 1.5f;
  double scale_sign = 1.0;  // -1: a negative softmax scale (the kernels' non-folded softmax branch)
  void* stream = nullptr;   // the stream the calls run on
  int64_t out_lead = 0;     // the output starts this many elements into its buffer (4: only 8-byte aligned)
  bool lse = false;         // finalize: also write each row's log-sum-exp (QChunk::lse), checked against the reference
  // The (last) call shared (AttentionProblem::shared): the owner's launch on `stream`, held to one thread block,
  // then a helper's on a stream of its own with the same problem, taking blocks from the owner's queue. Settings
  // for one side only (owner_env, helper_env: {name, value}, or a null name) give them different plans or kernels.
  bool shared = false;
  std::pair<const char*, const char*> owner_env{nullptr, nullptr}, helper_env{nullptr, nullptr};
  // 1: the helper took some blocks; 0: none; -1: either (a warm-up: a process's first launches load their kernels,
  // and in the last GPU check the first shared call ended before its helper started).
  int expect_helped = 1;
};

// A shared call's owner and helper (Case::shared): the blocks the helper took.
int64_t run_shared(const Case& c, AttentionProblem p) {
  static uint64_t epoch = 0;  // one more per shared call on the workspace, as a layer counts its forwards
  static DeviceBuffer workspace(size_t{64} << 20);
  SharedWork owner{workspace.get(), size_t{64} << 20, ++epoch, false}, helper = owner;
  helper.helper = true;
  auto set_env = [](std::pair<const char*, const char*> nv) {
    return nv.first != nullptr ? std::make_unique<ScopedEnv>(nv.first, nv.second) : nullptr;
  };
  {
    ScopedEnv few("SF_CUDA_PERSISTENT", "1");  // one thread block: the helper has time to start (a first launch loads)
    auto env = set_env(c.owner_env);
    p.shared = &owner;
    const Status st = cuda::attention(p, c.stream);
    EXPECT_TRUE(st.is_ok()) << st.message();
  }
  cudaStream_t side = nullptr;
  EXPECT_EQ(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking), cudaSuccess);
  {
    auto env = set_env(c.helper_env);
    p.shared = &helper;
    const Status st = cuda::attention(p, side);
    EXPECT_TRUE(st.is_ok()) << st.message();
  }
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cudaStreamDestroy(side);
  unsigned helped = 0;
  EXPECT_EQ(cudaMemcpy(&helped, static_cast<char*>(workspace.get()) + offsetof(cuda::detail::SharedHeader, helped),
                       sizeof(helped), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return helped;
}

struct DeviceRows {
  DeviceBuffer buf;
  RowChunk view;
  Strides st;
};

// lead: elements of padding before the rows (a pointer less aligned than the allocation).
DeviceRows upload_rows(const Case& c, const HostRows& r, int64_t lead = 0) {
  DeviceRows d;
  d.st = layout_strides(c.layout, c.batch, r.len, c.heads, c.dim);
  std::vector<uint16_t> host(static_cast<size_t>(lead + d.st.total), poison_bits(c.dtype));
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t s = 0; s < r.len; ++s)
      for (int64_t h = 0; h < c.heads; ++h)
        for (int64_t e = 0; e < c.dim; ++e)
          host[lead + b * d.st.b + s * d.st.s + h * d.st.h + e] =
              to_bits(r.v[((b * r.len + s) * c.heads + h) * c.dim + e], c.dtype);
  d.buf = DeviceBuffer(host.size() * 2);
  d.buf.upload(host);
  d.view = RowChunk{static_cast<uint16_t*>(d.buf.get()) + lead, r.len, d.st.b, d.st.s, d.st.h};
  return d;
}

struct ErrorSum {
  double diff2 = 0, ref2 = 0, sp_diff2 = 0, max_abs = 0;
  int64_t nans = 0;
  void add(double got, double ref, double sp) {
    if (!std::isfinite(got)) ++nans;
    diff2 += (got - ref) * (got - ref);
    ref2 += ref * ref;
    sp_diff2 += (sp - ref) * (sp - ref);
    max_abs = std::max(max_abs, std::fabs(got));
  }
  double rel() const { return ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2); }
  double sp_rel() const { return ref2 > 0 ? std::sqrt(sp_diff2 / ref2) : std::sqrt(sp_diff2); }
};

void expect_within_bound(const Case& c, const ErrorSum& e, const char* what) {
  std::printf("[%s] %s: rel err %.3e, same-precision ref %.3e (ratio %.2f), NaN %lld\n", c.name.c_str(), what,
              e.rel(), e.sp_rel(), e.sp_rel() > 0 ? e.rel() / e.sp_rel() : 0.0, static_cast<long long>(e.nans));
  EXPECT_EQ(e.nans, 0) << what;
  if (e.ref2 == 0) {
    EXPECT_EQ(e.max_abs, 0.0) << what << ": reference is all zeros";
  } else {
    EXPECT_LE(e.rel(), 2.0 * e.sp_rel() + 1e-6) << what << ": error above 2x the same-precision reference";
  }
}

void run_case(const Case& c) {
  const uint64_t seed = std::random_device{}() ^ static_cast<uint64_t>(
                                                      std::chrono::steady_clock::now().time_since_epoch().count());
  SCOPED_TRACE(c.name + ", seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  RefOptions opt;
  opt.batch = c.batch, opt.heads = c.heads, opt.dim = c.dim, opt.dtype = c.dtype;
  opt.scale = c.scale_sign / std::sqrt(static_cast<double>(c.dim));

  std::vector<HostRows> hq, hk, hv;
  for (int64_t len : c.q_lens) hq.push_back(random_rows(rng, c.batch, len, c.heads, c.dim, c.q_std, c.dtype));
  for (int64_t len : c.kv_lens) {
    hk.push_back(random_rows(rng, c.batch, len, c.heads, c.dim, 1.f, c.dtype));
    hv.push_back(random_rows(rng, c.batch, len, c.heads, c.dim, 1.f, c.dtype));
  }
  std::vector<DeviceRows> dq, dk, dv, dout;
  std::vector<DeviceBuffer> acc_o, acc_m, acc_l, lse;
  std::vector<RefAccumulator> init;
  std::vector<QChunk> qchunks;
  for (const HostRows& r : hq) {
    dq.push_back(upload_rows(c, r));
    HostRows poison;  // the out tensor starts as all-NaN, padding included
    poison.len = r.len;
    poison.v.assign(r.v.size(), std::numeric_limits<float>::quiet_NaN());
    dout.push_back(upload_rows(c, poison, c.out_lead));
    const size_t rows = static_cast<size_t>(c.batch * r.len * c.heads);
    RefAccumulator a = empty_accumulator(opt, r.len);
    std::vector<float> o(rows * c.dim, std::nanf("")), m(rows, std::nanf("")), l(rows, std::nanf(""));
    if (c.random_init) {
      std::normal_distribution<double> nd(0, 1);
      std::uniform_real_distribution<double> ud(0.5, 3.0);
      for (size_t i = 0; i < rows; ++i) {
        if (i % 5 == 3) {  // a row that has seen no keys yet
          m[i] = -INFINITY, l[i] = 0.f;
          for (int64_t d = 0; d < c.dim; ++d) o[i * c.dim + d] = 0.f;
        } else {
          m[i] = static_cast<float>(2 * nd(rng)), l[i] = static_cast<float>(ud(rng));
          for (int64_t d = 0; d < c.dim; ++d) o[i * c.dim + d] = static_cast<float>(nd(rng) * l[i]);
        }
        a.m[i] = m[i], a.l[i] = l[i];
        for (int64_t d = 0; d < c.dim; ++d) a.o[i * c.dim + d] = o[i * c.dim + d];
      }
    }
    init.push_back(std::move(a));
    acc_o.emplace_back(o.size() * 4), acc_m.emplace_back(m.size() * 4), acc_l.emplace_back(l.size() * 4);
    acc_o.back().upload(o), acc_m.back().upload(m), acc_l.back().upload(l);
    QChunk qc;
    qc.q = dq.back().view;
    qc.acc_o = static_cast<float*>(acc_o.back().get());
    qc.acc_m = static_cast<float*>(acc_m.back().get());
    qc.acc_l = static_cast<float*>(acc_l.back().get());
    qc.out = dout.back().view;
    if (c.lse) {
      lse.emplace_back(rows * 4);
      lse.back().upload(std::vector<float>(rows, std::nanf("")));
      qc.lse = static_cast<float*>(lse.back().get());
    }
    qchunks.push_back(qc);
  }
  std::vector<KVChunk> kvchunks;
  for (size_t i = 0; i < hk.size(); ++i) {
    dk.push_back(upload_rows(c, hk[i]));
    dv.push_back(upload_rows(c, hv[i]));
    kvchunks.push_back(KVChunk{dk.back().view, dv.back().view});
  }

  AttentionProblem p;
  p.dtype = c.dtype, p.batch = c.batch, p.heads = c.heads, p.head_dim = c.dim;
  p.scale = static_cast<float>(opt.scale);
  p.q = qchunks.data(), p.num_q = static_cast<int32_t>(qchunks.size());
  p.kv = kvchunks.data();
  if (c.split >= 0) {
    p.num_kv = c.split, p.mode = AccumulatorMode::kInit, p.finalize = false;
    Status st = cuda::attention(p, c.stream);
    ASSERT_TRUE(st.is_ok()) << st.message();
    p.kv = kvchunks.data() + c.split, p.num_kv = static_cast<int32_t>(kvchunks.size()) - c.split;
    p.mode = AccumulatorMode::kResume, p.finalize = c.finalize;
  } else {
    p.num_kv = static_cast<int32_t>(kvchunks.size());
    p.mode = c.random_init ? AccumulatorMode::kResume : AccumulatorMode::kInit;
    p.finalize = c.finalize;
  }
  if (c.shared) {
    const int64_t helped = run_shared(c, p);
    std::printf("[%s] the helper took %lld blocks of work\n", c.name.c_str(), static_cast<long long>(helped));
    if (c.expect_helped == 1) {
      EXPECT_GT(helped, 0) << "the helper took no work";
    } else if (c.expect_helped == 0) {
      EXPECT_EQ(helped, 0) << "the helper took work it should have left";
    }
  } else {
    Status st = cuda::attention(p, c.stream);
    ASSERT_TRUE(st.is_ok()) << st.message();
  }
  SF_CUDA_ASSERT(cudaDeviceSynchronize());
  SF_CUDA_ASSERT(cudaGetLastError());

  ErrorSum err;
  int mismatches_shown = 0;
  auto show = [&](double got, double ref, const char* what, int64_t chunk, int64_t b, int64_t r, int64_t h, int64_t d) {
    if (!(std::fabs(got - ref) > 0.05 + 0.05 * std::fabs(ref)) || mismatches_shown >= 8) return;
    ++mismatches_shown;
    std::printf("  mismatch %s q[%lld] (b %lld, s %lld, h %lld, d %lld): got %.5f, ref %.5f\n", what, (long long)chunk,
                (long long)b, (long long)r, (long long)h, (long long)d, got, ref);
  };
  double max_m_err = 0, max_l_err = 0;
  int64_t bad_padding = 0;
  for (size_t i = 0; i < hq.size(); ++i) {
    RefAccumulator acc = init[i];
    reference_accumulate(opt, hq[i], hk, hv, &acc);
    const std::vector<double> ref = normalize(opt, acc);
    const std::vector<float> sp = emulate_attention(opt, hq[i], hk, hv, c.finalize, c.random_init ? &init[i] : nullptr);
    const int64_t len = hq[i].len;
    if (c.finalize) {
      const std::vector<uint16_t> out = dout[i].buf.download<uint16_t>();
      std::vector<char> touched(out.size(), 0);
      const Strides& s = dout[i].st;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t r = 0; r < len; ++r)
          for (int64_t h = 0; h < c.heads; ++h)
            for (int64_t d = 0; d < c.dim; ++d) {
              const size_t off = c.out_lead + b * s.b + r * s.s + h * s.h + d;
              touched[off] = 1;
              const size_t k = ((b * len + r) * c.heads + h) * c.dim + d;
              err.add(from_bits(out[off], c.dtype), ref[k], sp[k]);
              show(from_bits(out[off], c.dtype), ref[k], "out", i, b, r, h, d);
            }
      for (size_t off = 0; off < out.size(); ++off)
        if (!touched[off] && out[off] != poison_bits(c.dtype)) ++bad_padding;
      if (c.lse) {  // lse = m + ln(l) in natural units; −inf exactly for rows without keys
        const auto got = lse[i].download<float>();
        double max_lse_err = 0;
        for (size_t row = 0; row < got.size(); ++row) {
          if (acc.l[row] == 0) {
            EXPECT_EQ(got[row], -INFINITY) << "row " << row << " saw no keys";
            continue;
          }
          const double want = acc.m[row] + std::log(acc.l[row]);
          max_lse_err = std::max(max_lse_err, std::fabs(got[row] - want) / (1 + std::fabs(want)));
        }
        std::printf("[%s] lse: max rel err %.3e over %zu rows\n", c.name.c_str(), max_lse_err, got.size());
        EXPECT_LE(max_lse_err, 1e-4) << "lse";
      }
    } else {
      const auto o = acc_o[i].download<float>();
      const auto m = acc_m[i].download<float>();
      const auto l = acc_l[i].download<float>();
      for (size_t row = 0; row < m.size(); ++row) {
        if (acc.m[row] == -kInf) {
          EXPECT_TRUE(m[row] == -INFINITY && l[row] == 0.f) << "empty row " << row << ": m " << m[row] << " l " << l[row];
        } else {
          max_m_err = std::max(max_m_err, std::fabs(m[row] - acc.m[row]) / (1 + std::fabs(acc.m[row])));
          max_l_err = std::max(max_l_err, std::fabs(l[row] - acc.l[row]) / acc.l[row]);
          if (!std::isfinite(m[row]) || !std::isfinite(l[row])) ++err.nans;
        }
        for (int64_t d = 0; d < c.dim; ++d) {
          const size_t k = row * c.dim + d;
          const double got = l[row] > 0 ? o[k] / l[row] : (l[row] == 0 ? 0.0 : NAN);
          err.add(got, ref[k], sp[k]);
          show(got, ref[k], "acc", i, 0, static_cast<int64_t>(row), 0, d);
          if (acc.l[row] == 0 && o[k] != 0.f) ++err.nans;  // an empty row's Õ must be exactly 0
        }
      }
    }
  }
  expect_within_bound(c, err, c.finalize ? "finalized O" : "O from accumulator");
  EXPECT_EQ(bad_padding, 0) << "elements outside the out view were written";
  EXPECT_LE(max_m_err, 1e-4) << "running max m";
  EXPECT_LE(max_l_err, 2e-3) << "running sum l";
}

Case make(std::string name, DType t, int64_t dim, std::vector<int64_t> q, std::vector<int64_t> kv) {
  Case c;
  c.name = std::move(name), c.dtype = t, c.dim = dim, c.q_lens = std::move(q), c.kv_lens = std::move(kv);
  return c;
}

TEST(CudaAttention, SingleChunkBf16D64) { Case c = make("bf16 d64 1x1", DType::kBF16, 64, {200}, {333}); c.batch = 2, c.heads = 3; run_case(c); }
TEST(CudaAttention, SingleChunkBf16D128) { Case c = make("bf16 d128 1x1", DType::kBF16, 128, {256}, {320}); c.batch = 2; run_case(c); }
TEST(CudaAttention, SingleChunkFp16D64) { Case c = make("fp16 d64 1x1", DType::kF16, 64, {190}, {257}); c.heads = 3; run_case(c); }
TEST(CudaAttention, SingleChunkFp16D128) { Case c = make("fp16 d128 1x1", DType::kF16, 128, {131}, {200}); c.batch = 2; run_case(c); }

TEST(CudaAttention, UnevenChunksPadded) {
  Case c = make("bf16 d128 uneven padded", DType::kBF16, 128, {1, 127, 128, 129, 300}, {5, 64, 0, 190, 1, 77});
  c.layout = Layout::kPadded;
  run_case(c);
}
TEST(CudaAttention, ZeroLengthChunks) {
  Case c = make("fp16 d64 zero-length", DType::kF16, 64, {0, 50, 0, 70}, {0, 100, 0, 3, 0});
  c.batch = 2;
  run_case(c);
}
TEST(CudaAttention, SeqMajorLayoutFp16) {
  Case c = make("fp16 d64 seq-major", DType::kF16, 64, {100, 157}, {65, 129, 200});
  c.layout = Layout::kSeqMajor, c.batch = 3;
  run_case(c);
}
TEST(CudaAttention, HeadMajorLayoutBf16) {
  Case c = make("bf16 d128 head-major", DType::kBF16, 128, {140, 60}, {250, 31});
  c.layout = Layout::kHeadMajor, c.batch = 2, c.heads = 3;
  run_case(c);
}
TEST(CudaAttention, NoFinalizeWritesAccumulator) {
  for (DType t : {DType::kBF16, DType::kF16})
    for (int64_t d : {64, 128}) {
      Case c = make(std::string("accumulator ") + (t == DType::kF16 ? "fp16" : "bf16") + " d" + std::to_string(d), t, d,
                    {77, 200}, {100, 0, 150});
      c.finalize = false, c.batch = 2;
      run_case(c);
    }
}
TEST(CudaAttention, SplitResumeEqualsOneCall) {
  for (int split : {1, 2}) {
    Case c = make("split at " + std::to_string(split), DType::kBF16, 128, {150, 129}, {300, 64, 129});
    c.split = split, c.batch = 2;
    run_case(c);
  }
  Case c = make("split, fp16 d64, no finalize", DType::kF16, 64, {99}, {40, 300});
  c.split = 1, c.finalize = false, c.layout = Layout::kPadded;
  run_case(c);
}
TEST(CudaAttention, ResumeFromRandomAccumulator) {
  Case c = make("resume random bf16 d64", DType::kBF16, 64, {130, 33}, {70, 90});
  c.random_init = true, c.batch = 2;
  run_case(c);
  c = make("resume random fp16 d128 no finalize", DType::kF16, 128, {130}, {200});
  c.random_init = true, c.finalize = false;
  run_case(c);
}
TEST(CudaAttention, NoKeysFinalizesAccumulator) {
  Case c = make("no keys, init", DType::kBF16, 64, {70, 130}, {});
  run_case(c);
  c = make("no keys, resume", DType::kF16, 128, {70, 130}, {0, 0});
  c.random_init = true;
  run_case(c);
}
TEST(CudaAttention, ManyChunksChainLaunches) {
  std::mt19937 rng(1234);
  std::vector<int64_t> q, kv;
  for (int i = 0; i < 37; ++i) q.push_back(rng() % 60);
  for (int i = 0; i < 70; ++i) kv.push_back(rng() % 41);
  Case c = make("37 q x 70 kv chunks", DType::kBF16, 64, q, kv);
  c.batch = 2;
  run_case(c);
}
TEST(CudaAttention, LongerSequences) {
  Case c = make("bf16 d64 1000x2048", DType::kBF16, 64, {1000}, {2048});
  run_case(c);
  c = make("fp16 d128 513x1500 in 3 kv chunks", DType::kF16, 128, {513}, {500, 500, 500});
  c.heads = 1, c.batch = 2;
  run_case(c);
}
// Q = 0 makes every score equal: O is the mean of the V rows, which checks the P·V path on its own.
TEST(CudaAttention, UniformScoresIsolatePV) {
  for (int64_t d : {64, 128}) {
    Case c = make("uniform scores d" + std::to_string(d), DType::kBF16, d, {128}, {128});
    c.q_std = 0.f;
    run_case(c);
  }
}

TEST(CudaAttention, NegativeScale) {
  Case c = make("bf16 d64 negative scale", DType::kBF16, 64, {150}, {200, 70});
  c.scale_sign = -1.0;
  run_case(c);
}

TEST(CudaAttention, LargeScores) {
  Case c = make("bf16 d128 large scores", DType::kBF16, 128, {200}, {300, 100});
  c.q_std = 6.f;
  run_case(c);
}

// The warp-specialized kernel's split pieces (src/backends/cuda/tail_split.h, split_merge.cuh) with every item
// forced into n pieces along K/V (SF_CUDA_SPLIT_TAIL=n; at most one piece per K/V tile, so 7 gives single-tile
// pieces that start and end on chunk boundaries) or only the last wave's items (tail:n): uneven chunks, resumed
// accumulators, no finalize, launches chained through the accumulator. The other kernel paths ignore the setting
// and repeat the cases.
void split_cases() {
  Case c = make("uneven padded", DType::kBF16, 128, {1, 127, 128, 129, 300}, {5, 64, 0, 190, 1, 77, 400});
  c.layout = Layout::kPadded;
  run_case(c);
  c = make("resume random fp16 d64", DType::kF16, 64, {130, 33}, {70, 90, 400});
  c.random_init = true, c.batch = 2;
  run_case(c);
  c = make("resume random bf16 d128, no finalize", DType::kBF16, 128, {200}, {300, 260});
  c.random_init = true, c.finalize = false, c.heads = 3;
  run_case(c);
  c = make("two calls", DType::kBF16, 128, {150, 129}, {300, 64, 129, 520});
  c.split = 2, c.batch = 2;
  run_case(c);
  std::mt19937 rng(99);
  std::vector<int64_t> q, kv;
  for (int i = 0; i < 5; ++i) q.push_back(1 + rng() % 200);
  for (int i = 0; i < 70; ++i) kv.push_back(rng() % 200);
  c = make("5 q x 70 kv chunks (chained launches)", DType::kF16, 64, q, kv);
  run_case(c);
  c = make("bf16 d64 1000x2048", DType::kBF16, 64, {1000}, {2048});
  c.batch = 2;
  run_case(c);
}
TEST(CudaAttention, TailSplitPieces) {
  for (const char* n : {"2", "3", "7", "tail:2", "tail:3"}) {
    SCOPED_TRACE(std::string("SF_CUDA_SPLIT_TAIL=") + n);
    ScopedEnv env("SF_CUDA_SPLIT_TAIL", n);
    split_cases();
  }
}
TEST(CudaAttention, TailSplitOff) {
  ScopedEnv env("SF_CUDA_SPLIT_TAIL", "0");
  split_cases();
}

// The warp-specialized kernel's persistent launch (attention_hopper_ws.cu) with the grid held to 1 and 7 thread
// blocks (SF_CUDA_PERSISTENT=n), so that every thread block walks many blocks of work on one K/V ring and one Q
// tile: whole items and split pieces, items of different chunks, resumed accumulators; blocks taken from the work
// queue (SF_CUDA_QUEUE=1, the default: a counter that must be back at zero after every launch, or the next launch
// on the stream skips blocks and leaves poisoned output) and in the static order (=0). Also one thread block per
// block of work (=0), the launch before persistence.
TEST(CudaAttention, PersistentFewThreadBlocks) {
  for (const char* queue : {"1", "0"}) {
    for (const char* grid : {"1", "7"}) {
      for (const char* split : {"0", "3"}) {
        SCOPED_TRACE(std::string("SF_CUDA_PERSISTENT=") + grid + " SF_CUDA_SPLIT_TAIL=" + split +
                     " SF_CUDA_QUEUE=" + queue);
        ScopedEnv env_queue("SF_CUDA_QUEUE", queue);
        ScopedEnv env_grid("SF_CUDA_PERSISTENT", grid);
        ScopedEnv env_split("SF_CUDA_SPLIT_TAIL", split);
        split_cases();
      }
    }
  }
}
TEST(CudaAttention, PersistentOff) {
  ScopedEnv env("SF_CUDA_PERSISTENT", "0");
  split_cases();
}
// Persistent at full size (one thread block per SM) on launches with several waves of blocks and K/V walks long
// enough that SMs finish at different times, with the work queue and in the static order, the tail split on.
TEST(CudaAttention, PersistentEverySm) {
  for (const char* queue : {"1", "0"}) {
    SCOPED_TRACE(std::string("SF_CUDA_PERSISTENT=all SF_CUDA_QUEUE=") + queue);
    ScopedEnv env_queue("SF_CUDA_QUEUE", queue);
    ScopedEnv env_grid("SF_CUDA_PERSISTENT", "all");
    // 160 to 320 blocks of work for 132 SMs (H100).
    Case c = make("bf16 d128 2 q x 3 kv chunks", DType::kBF16, 128, {100, 30}, {150, 1, 100});
    c.batch = 2, c.heads = 80;
    run_case(c);
    c = make("fp16 d64 resume, no finalize", DType::kF16, 64, {200}, {200});
    c.batch = 4, c.heads = 40, c.random_init = true, c.finalize = false;
    run_case(c);
  }
}

// Two host threads, each on its own per-thread default stream (one handle, cudaStreamPerThread, for two streams
// that run side by side), with split pieces and a persistent grid of 7 thread blocks: each needs its own arrival
// counts and work-queue counter (split_workspace.cu), or the two launches corrupt each other's.
TEST(CudaAttention, PerThreadDefaultStreams) {
  ScopedEnv env_grid("SF_CUDA_PERSISTENT", "7");
  ScopedEnv env_split("SF_CUDA_SPLIT_TAIL", "3");
  auto cases = [](int which) {
    for (int rep = 0; rep < 3; ++rep) {
      Case c = make("thread " + std::to_string(which) + " rep " + std::to_string(rep), DType::kBF16, which ? 64 : 128,
                    {300, 70}, {400, 129});
      c.heads = 8, c.stream = cudaStreamPerThread;
      run_case(c);
    }
  };
  std::thread other(cases, 1);
  cases(0);
  other.join();
}

// The warp-specialized kernel fills its Q tiles with 64-row slices of any chunk (slice_q_tile): one tile's
// warpgroups then read and write different chunks, and a chunk's last slice is partly empty. Chunk lengths
// around multiples of 64 and of the tile (128, 192 rows), finalized and into the accumulator, with split pieces
// (whose partials are merged per warpgroup row) and resumed from a random accumulator.
void slice_cases() {
  Case c = make("bf16 d128 odd q chunks", DType::kBF16, 128, {64, 1, 63, 65, 191, 192, 193, 7, 128}, {300, 45});
  c.batch = 2, c.heads = 3;
  run_case(c);
  c = make("fp16 d64 odd q chunks, padded, no finalize", DType::kF16, 64, {1, 1, 1, 130, 62, 250}, {129, 100});
  c.layout = Layout::kPadded, c.finalize = false;
  run_case(c);
  c = make("bf16 d64 odd q chunks, resume", DType::kBF16, 64, {100, 29, 64, 200}, {333});
  c.random_init = true, c.heads = 2;
  run_case(c);
}
TEST(CudaAttention, QSlicesAcrossChunks) {
  slice_cases();
  SCOPED_TRACE("SF_CUDA_SPLIT_TAIL=3");
  ScopedEnv env("SF_CUDA_SPLIT_TAIL", "3");
  slice_cases();
}

// The warp-specialized kernel writes finalized rows 16 bytes at a time through shared memory when every Q
// chunk's output allows it (staged_store.cuh), from registers otherwise: outputs 16-byte aligned (lead 0 and 8
// elements) and only 8-byte aligned (lead 4), and the staging turned off; rows that end mid-slice (the stores
// of rows past the chunk are dropped, the poisoned padding shows any that are not), several heads and batches,
// and items in pieces (the last piece stores the merged rows).
TEST(CudaAttention, OutputStagedOrNot) {
  for (const char* stage : {"1", "0"}) {
    SCOPED_TRACE(std::string("SF_CUDA_STAGE_OUTPUT=") + stage);
    ScopedEnv env("SF_CUDA_STAGE_OUTPUT", stage);
    for (int64_t lead : {0, 4, 8}) {
      SCOPED_TRACE("out_lead " + std::to_string(lead));
      Case c = make("bf16 d128 padded", DType::kBF16, 128, {250, 70}, {300});
      c.layout = Layout::kPadded, c.batch = 2, c.heads = 3, c.out_lead = lead;
      run_case(c);
      c = make("fp16 d64", DType::kF16, 64, {1, 200, 64}, {129, 7});
      c.heads = 4, c.out_lead = lead;
      run_case(c);
      c = make("bf16 d64 head-major, 3 pieces", DType::kBF16, 64, {333}, {500});
      c.layout = Layout::kHeadMajor, c.out_lead = lead;
      ScopedEnv split("SF_CUDA_SPLIT_TAIL", "3");
      run_case(c);
    }
    // The fp32 accumulator (no finalize) always goes from registers, whatever the setting: its rows are not
    // staged (staging them in two passes gained 1 % at D=128 S=4096, bench/kernel/NOTES.md).
    Case c = make("bf16 d128 accumulator", DType::kBF16, 128, {250, 1, 64}, {300, 9});
    c.finalize = false, c.batch = 2, c.heads = 3;
    run_case(c);
    c = make("fp16 d128 resumed accumulator, 3 pieces", DType::kF16, 128, {190}, {200});
    c.finalize = false, c.random_init = true, c.heads = 2;
    ScopedEnv split("SF_CUDA_SPLIT_TAIL", "3");
    run_case(c);
    c = make("bf16 d64 accumulator", DType::kBF16, 64, {100, 29}, {333});
    c.finalize = false, c.heads = 4;
    run_case(c);
  }
}

// The finalized rows' log-sum-exp (QChunk::lse), which the local diagonal pushes with a partial output: several
// chunks, a batch of two, resumed from a random accumulator with empty rows, and with the last wave in pieces.
TEST(CudaAttention, LseWithFinalizedRows) {
  for (int64_t dim : {64, 128}) {
    Case c = make("lse d" + std::to_string(dim), DType::kBF16, dim, {200, 77}, {300, 129});
    c.batch = 2, c.lse = true;
    run_case(c);
    c.name += " resumed", c.random_init = true;
    run_case(c);
    Case f = make("lse fp16 d" + std::to_string(dim) + " split", DType::kF16, dim, {640}, {512, 256});
    f.lse = true, f.split = 1;
    run_case(f);
  }
  {
    ScopedEnv pieces("SF_CUDA_SPLIT_TAIL", "3");
    Case p = make("lse pieces", DType::kBF16, 128, {384}, {1024});
    p.lse = true;
    run_case(p);
  }
  ScopedEnv registers("SF_CUDA_STAGE_OUTPUT", "0");
  Case r = make("lse from registers", DType::kBF16, 128, {256}, {300});
  r.lse = true;
  run_case(r);
}

// With the tail split off every item is computed by one thread block in a fixed order, so the same call gives
// the same bits every time, whichever SM takes which item from the work queue (README: reproducible outputs).
// With the split on it need not: the last piece of an item folds the others' partials into its own registers,
// in an order that depends on which finished last (bench/kernel/results/h200x4-2026-11-28-ordered-merge/).
TEST(CudaAttention, UnsplitCallsRepeatBitForBit) {
  ScopedEnv unsplit("SF_CUDA_SPLIT_TAIL", "0");
  // 1000 rows × 48 heads: 288 or 384 items (three- or two-warpgroup tiles) for 132 SMs, so each persistent thread
  // block takes several from the work queue, a different set every run.
  Case c = make("repeat", DType::kBF16, 128, {1000}, {2048});
  c.heads = 48;
  const int64_t q_len = c.q_lens[0], kv_len = c.kv_lens[0], heads = c.heads, dim = c.dim;
  std::mt19937_64 rng(std::random_device{}());
  auto random_device_rows = [&](int64_t len) {
    return upload_rows(c, random_rows(rng, 1, len, heads, dim, 1.f, DType::kBF16));
  };
  const DeviceRows q = random_device_rows(q_len), k = random_device_rows(kv_len), v = random_device_rows(kv_len);
  DeviceBuffer out(static_cast<size_t>(q_len * heads * dim) * 2);
  DeviceBuffer acc_o(static_cast<size_t>(q_len * heads * dim) * 4), acc_m(static_cast<size_t>(q_len * heads) * 4),
      acc_l(static_cast<size_t>(q_len * heads) * 4);
  QChunk qc;
  qc.q = q.view, qc.out = RowChunk{out.get(), q_len, q_len * heads * dim, heads * dim, dim};
  qc.acc_o = static_cast<float*>(acc_o.get()), qc.acc_m = static_cast<float*>(acc_m.get());
  qc.acc_l = static_cast<float*>(acc_l.get());
  KVChunk kv{k.view, v.view};
  AttentionProblem p;
  p.dtype = DType::kBF16, p.batch = 1, p.heads = heads, p.head_dim = dim, p.scale = 0.088f;
  p.q = &qc, p.num_q = 1, p.kv = &kv, p.num_kv = 1, p.mode = AccumulatorMode::kInit;
  for (bool finalize : {true, false}) {
    SCOPED_TRACE(finalize ? "finalized" : "accumulator");
    p.finalize = finalize;
    const DeviceBuffer& result = finalize ? out : acc_o;
    std::vector<uint32_t> first;
    int differing_runs = 0;
    for (int run = 0; run < 12; ++run) {
      SF_CUDA_ASSERT(cudaMemset(result.get(), 0xff, result.bytes()));  // NaN everywhere: unwritten shows
      const Status st = cuda::attention(p, nullptr);
      ASSERT_TRUE(st.is_ok()) << st.message();
      SF_CUDA_ASSERT(cudaDeviceSynchronize());
      const std::vector<uint32_t> got = result.download<uint32_t>();
      if (run == 0) {
        first = got;
        int64_t unwritten = 0;
        for (uint32_t w : got) unwritten += w == 0xffffffffu;
        EXPECT_EQ(unwritten, 0) << "words the first run left unwritten";
      } else if (got != first) {
        ++differing_runs;
      }
    }
    EXPECT_EQ(differing_runs, 0) << "of 11 repeats, these gave other bits than the first run";
  }
}

// A valid call of 10 rows against themselves (bf16, D=64, finalized in place), for the argument checks to spoil.
struct TinyCall {
  DeviceBuffer buf{1 << 20};
  QChunk q;
  KVChunk kv;
  AttentionProblem p;
  TinyCall() {
    q.q = RowChunk{buf.get(), 10, 10 * 64, 64, 64};
    q.out = q.q;
    kv = KVChunk{q.q, q.q};
    p.dtype = DType::kBF16, p.batch = 1, p.heads = 1, p.head_dim = 64, p.scale = 0.125f;
    p.q = &q, p.num_q = 1, p.kv = &kv, p.num_kv = 1, p.finalize = true;
  }
  TinyCall(const TinyCall&) = delete;
  TinyCall& operator=(const TinyCall&) = delete;
};

TEST(CudaAttention, RejectsBadArguments) {
  TinyCall call;
  AttentionProblem& p = call.p;
  KVChunk& kv = call.kv;
  EXPECT_TRUE(cuda::attention(p, nullptr).is_ok());
  SF_CUDA_ASSERT(cudaDeviceSynchronize());
  p.head_dim = 96;
  EXPECT_EQ(cuda::attention(p, nullptr).code(), ErrorCode::kUnimplemented);
  p.head_dim = 64, p.dtype = DType::kF32;
  EXPECT_EQ(cuda::attention(p, nullptr).code(), ErrorCode::kUnimplemented);
  p.dtype = DType::kBF16;
  kv.k.stride_s = 66;
  EXPECT_EQ(cuda::attention(p, nullptr).code(), ErrorCode::kInvalidArgument);
  kv.k.stride_s = 64, kv.v.len = 9;
  EXPECT_EQ(cuda::attention(p, nullptr).code(), ErrorCode::kInvalidArgument);
  kv.v.len = 10, p.finalize = false;  // no finalize needs an accumulator
  EXPECT_EQ(cuda::attention(p, nullptr).code(), ErrorCode::kInvalidArgument);
}

// Shared calls (AttentionProblem::shared, src/backends/cuda/shared_work.h), owner and helper on one GPU: the owner
// held to one thread block, so that the helper, launched after it on another stream, takes most blocks from the
// owner's queue, the tail's pieces meeting across both launches. Fresh and resumed (the ring's second call),
// finalized or not, split tails of several shapes, twice on the same workspace (the queue and counts re-armed).
// Where the plans differ (a tail setting on one side) or the owner runs another kernel (the cp.async one), the
// helper takes nothing and the owner computes everything: the same result, and no hang.
TEST(CudaAttention, SharedCallWithAHelper) {
  Case warm = make("bf16 d128 shared, warm-up", DType::kBF16, 128, {3000}, {600, 700, 500});
  warm.heads = 6, warm.split = 1, warm.shared = true, warm.expect_helped = -1;
  run_case(warm);
  for (const char* tail : {"1:4", "0:2", "3:16", "1:1"}) {
    SCOPED_TRACE(std::string("SF_CUDA_SHARE_TAIL=") + tail);
    ScopedEnv env("SF_CUDA_SHARE_TAIL", tail);
    Case c = make("bf16 d128 shared, resumed", DType::kBF16, 128, {3000}, {600, 700, 500});
    c.heads = 6, c.split = 1, c.shared = true;
    run_case(c);
    if (std::string(tail) != "1:4") continue;
    run_case(c);
    c = make("fp16 d64 shared, fresh, lse", DType::kF16, 64, {2000}, {1000, 300});
    c.heads = 5, c.batch = 2, c.shared = true, c.lse = true;
    run_case(c);
    c = make("bf16 d128 shared, no finalize", DType::kBF16, 128, {1500}, {900});
    c.heads = 4, c.finalize = false, c.shared = true;
    run_case(c);
  }
  Case c = make("bf16 d128 shared, plans differ", DType::kBF16, 128, {3000}, {600, 700, 500});
  c.heads = 6, c.split = 1, c.shared = true, c.expect_helped = 0;
  c.helper_env = {"SF_CUDA_SHARE_TAIL", "1:8"};  // 96 items, all in the tail either way: pieces of 8, not 4
  run_case(c);
  c.helper_env = {nullptr, nullptr}, c.owner_env = {"SF_CUDA_ATTENTION_PATH", "hopper"};
  c.name = "bf16 d128 shared, the owner on the cp.async kernel";
  run_case(c);
}

// A misspelt kernel setting fails the call before anything is launched, with a message naming it
// (kernel_settings.h; every value is tested on CPUs in tests/cpu/test_env_settings.cpp), and the same call runs
// once the setting is right.
TEST(CudaAttention, RejectsBadKernelSettings) {
  TinyCall call;
  const AttentionProblem& p = call.p;
  const std::pair<const char*, const char*> bad[] = {{"SF_CUDA_ATTENTION_PATH", "hopper_ws4"},
                                                     {"SF_CUDA_SPLIT_TAIL", "tail:0"},
                                                     {"SF_CUDA_PERSISTENT", "most"},
                                                     {"SF_CUDA_QUEUE", "yes"},
                                                     {"SF_CUDA_STAGE_OUTPUT", "2"},
                                                     {"SF_CUDA_COMM_SMS", "-4"}};
  for (const auto& [name, value] : bad) {
    ScopedEnv env(name, value);
    const Status st = cuda::attention(p, nullptr);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << name << "=" << value;
    EXPECT_NE(st.message().find(std::string(name) + " must be "), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(std::string("found '") + value + "'"), std::string::npos) << st.message();
  }
  EXPECT_TRUE(cuda::attention(p, nullptr).is_ok());
  SF_CUDA_ASSERT(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace sf::test
