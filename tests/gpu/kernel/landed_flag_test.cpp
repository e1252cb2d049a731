// K/V chunks that land after the attention call was issued (KVChunk::ready, streamfusion/landed_flag.h): the
// call must wait for each chunk's flag, not read what its buffer held when the call started.
//
// The late chunks' buffers hold NaN when the call is issued; another stream sleeps, copies the real data in and
// only then sets the chunk's flag (cuStreamWriteValue32, as GpuStreams::flag_when_done does), one chunk after
// the other. A kernel that read a chunk early would put NaN into every row. That the call was really waiting is
// checked too: it has not finished while the data is still held back.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda.h>

#include "attention_reference.h"
#include "gpu_buffers.h"
#include "streamfusion/cuda_kernels.h"

namespace sf::test {
namespace {

DeviceBuffer upload(const HostRows& r, DType t) {
  std::vector<uint16_t> bits(r.v.size());
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = to_bits(r.v[i], t);
  DeviceBuffer d(bits.size() * 2);
  d.upload(bits);
  return d;
}

// A tensor's element bits in pinned host memory.
struct PinnedBits {
  uint16_t* data = nullptr;
  PinnedBits(const HostRows& r, DType t) {
    const cudaError_t e = cudaMallocHost(&data, r.v.size() * 2);
    EXPECT_EQ(e, cudaSuccess) << "cudaMallocHost: " << cudaGetErrorString(e);
    if (e != cudaSuccess) {
      data = nullptr;
      return;
    }
    for (size_t i = 0; i < r.v.size(); ++i) data[i] = to_bits(r.v[i], t);
  }
  PinnedBits(PinnedBits&& o) noexcept : data(o.data) { o.data = nullptr; }
  PinnedBits(const PinnedBits&) = delete;
  ~PinnedBits() {
    if (data) cudaFreeHost(data);
  }
};

void sleep_ms(void* ms) { std::this_thread::sleep_for(std::chrono::milliseconds(reinterpret_cast<intptr_t>(ms))); }

// path: SF_CUDA_ATTENTION_PATH (null: the default, whose producer polls the flags; others wait before the call).
// heads_per_step > 0: chunks 1 and 2 land together in steps of that many heads (the columns of those heads in
// every row, as a ring pulled by heads does), under one step flag (LandedFlag::heads_per_step); else one after
// the other, each under a flag of its own.
void run_late_chunks(const char* path, int64_t dim, int64_t heads, int32_t heads_per_step = 0) {
  ScopedEnv scoped("SF_CUDA_ATTENTION_PATH", path);
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(std::string(path ? path : "default") + " D=" + std::to_string(dim) + " heads per step " +
               std::to_string(heads_per_step) + ", seed " + std::to_string(seed));
  const int64_t steps = heads_per_step > 0 ? (heads + heads_per_step - 1) / heads_per_step : 0;
  std::mt19937_64 rng(seed);
  const DType t = DType::kBF16;
  RefOptions opt;
  opt.heads = heads, opt.dim = dim, opt.dtype = t, opt.scale = 1.0 / std::sqrt(static_cast<double>(dim));
  const int64_t q_len = 1500;
  const std::vector<int64_t> kv_lens = {700, 900, 333};  // chunks 1 and 2 land late, 2 after 1
  const HostRows hq = random_rows(rng, 1, q_len, heads, dim, 1.5f, t);
  std::vector<HostRows> hk, hv;
  for (int64_t len : kv_lens) {
    hk.push_back(random_rows(rng, 1, len, heads, dim, 1.f, t));
    hv.push_back(random_rows(rng, 1, len, heads, dim, 1.f, t));
  }
  DeviceBuffer dq = upload(hq, t);
  std::vector<DeviceBuffer> dk, dv;  // hold the real data at first: the warm-up call below reads them
  // The late chunks' data waits in pinned host memory: its copy is the copy engine's, as an NVLink pull is (a
  // copy within the device might be a kernel, which the polling call would keep from running).
  std::vector<PinnedBits> late_k, late_v;
  for (size_t i = 0; i < kv_lens.size(); ++i) {
    dk.push_back(upload(hk[i], t));
    dv.push_back(upload(hv[i], t));
    if (i == 0) continue;
    late_k.emplace_back(hk[i], t);
    late_v.emplace_back(hv[i], t);
  }
  DeviceBuffer out(static_cast<size_t>(q_len * heads * dim) * 2);
  DeviceBuffer flags(2 * sizeof(uint32_t));
  const auto* words = static_cast<const uint32_t*>(flags.get());

  const auto rows = [&](const DeviceBuffer& b, int64_t len) {
    return RowChunk{b.get(), len, len * heads * dim, heads * dim, dim};
  };
  QChunk qc;
  qc.q = rows(dq, q_len), qc.out = rows(out, q_len);
  std::vector<KVChunk> kvs;
  for (size_t i = 0; i < kv_lens.size(); ++i) {
    KVChunk c{rows(dk[i], kv_lens[i]), rows(dv[i], kv_lens[i])};
    if (i > 0) c.ready = LandedFlag{words + (i - 1), 7u + static_cast<uint32_t>(i)};
    if (i > 0 && steps > 0) c.ready = LandedFlag{words, 7u, heads_per_step};  // step g: the word at 7 + g
    kvs.push_back(c);
  }
  AttentionProblem p;
  p.dtype = t, p.batch = 1, p.heads = heads, p.head_dim = dim, p.scale = static_cast<float>(opt.scale);
  p.q = &qc, p.num_q = 1, p.kv = kvs.data(), p.num_kv = static_cast<int32_t>(kvs.size());
  p.mode = AccumulatorMode::kInit, p.finalize = true;
  // A warm-up call with the flags already set: the path's first launch in the process loads its kernels and the
  // flag-waiting one (lazy loading), which can take longer on the host than the late chunks take to land; the
  // timed call would then find them there.
  const std::vector<uint32_t> set = steps > 0 ? std::vector<uint32_t>{7u + static_cast<uint32_t>(steps - 1), 0u}
                                              : std::vector<uint32_t>{kvs[1].ready.value, kvs[2].ready.value};
  SF_CUDA_ASSERT(cudaMemcpy(flags.get(), set.data(), flags.bytes(), cudaMemcpyHostToDevice));
  ASSERT_TRUE(cuda::attention(p, nullptr).is_ok());
  SF_CUDA_ASSERT(cudaMemset(out.get(), 0xff, out.bytes()));
  SF_CUDA_ASSERT(cudaMemset(flags.get(), 0, flags.bytes()));
  for (size_t i = 1; i < kv_lens.size(); ++i) {  // NaN until the data lands
    SF_CUDA_ASSERT(cudaMemset(dk[i].get(), 0xff, dk[i].bytes()));
    SF_CUDA_ASSERT(cudaMemset(dv[i].get(), 0xff, dv[i].bytes()));
  }
  // The legacy stream's work, which the non-blocking streams below do not wait for, is done.
  SF_CUDA_ASSERT(cudaDeviceSynchronize());

  cudaStream_t compute = nullptr, link = nullptr;
  SF_CUDA_ASSERT(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  SF_CUDA_ASSERT(cudaStreamCreateWithFlags(&link, cudaStreamNonBlocking));
  cudaEvent_t done = nullptr;
  SF_CUDA_ASSERT(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  // Stepped: after 200 ms, then 30 ms between steps, step g's heads of both chunks, then the word at 7 + g.
  for (int64_t g = 0; g < steps; ++g) {
    SF_CUDA_ASSERT(cudaLaunchHostFunc(link, sleep_ms, reinterpret_cast<void*>(intptr_t{g == 0 ? 200 : 30})));
    const size_t pitch = static_cast<size_t>(heads * dim) * 2, at = static_cast<size_t>(g * heads_per_step * dim);
    const size_t width = static_cast<size_t>(std::min<int64_t>(heads_per_step, heads - g * heads_per_step) * dim) * 2;
    for (size_t i = 1; i < kv_lens.size(); ++i) {
      const auto len = static_cast<size_t>(kv_lens[i]);
      SF_CUDA_ASSERT(cudaMemcpy2DAsync(static_cast<uint16_t*>(dk[i].get()) + at, pitch, late_k[i - 1].data + at, pitch,
                                       width, len, cudaMemcpyHostToDevice, link));
      SF_CUDA_ASSERT(cudaMemcpy2DAsync(static_cast<uint16_t*>(dv[i].get()) + at, pitch, late_v[i - 1].data + at, pitch,
                                       width, len, cudaMemcpyHostToDevice, link));
    }
    ASSERT_EQ(cuStreamWriteValue32(reinterpret_cast<CUstream>(link), reinterpret_cast<CUdeviceptr>(words),
                                   7u + static_cast<uint32_t>(g), CU_STREAM_WRITE_VALUE_DEFAULT),
              CUDA_SUCCESS);
  }
  // The "link": chunk 1 lands after 200 ms, chunk 2 after 100 ms more; each flag only after its data.
  for (size_t i = 1; i < kv_lens.size() && steps == 0; ++i) {
    SF_CUDA_ASSERT(cudaLaunchHostFunc(link, sleep_ms, reinterpret_cast<void*>(intptr_t{i == 1 ? 200 : 100})));
    SF_CUDA_ASSERT(cudaMemcpyAsync(dk[i].get(), late_k[i - 1].data, dk[i].bytes(), cudaMemcpyHostToDevice, link));
    SF_CUDA_ASSERT(cudaMemcpyAsync(dv[i].get(), late_v[i - 1].data, dv[i].bytes(), cudaMemcpyHostToDevice, link));
    ASSERT_EQ(cuStreamWriteValue32(reinterpret_cast<CUstream>(link),
                                   reinterpret_cast<CUdeviceptr>(words + (i - 1)), kvs[i].ready.value,
                                   CU_STREAM_WRITE_VALUE_DEFAULT),
              CUDA_SUCCESS);
  }
  const Status st = cuda::attention(p, compute);
  ASSERT_TRUE(st.is_ok()) << st.message();
  SF_CUDA_ASSERT(cudaEventRecord(done, compute));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(cudaEventQuery(done), cudaErrorNotReady) << "the call finished before its late chunks had landed";
  SF_CUDA_ASSERT(cudaStreamSynchronize(compute));
  SF_CUDA_ASSERT(cudaStreamSynchronize(link));
  SF_CUDA_ASSERT(cudaGetLastError());

  RefAccumulator acc = empty_accumulator(opt, q_len);
  reference_accumulate(opt, hq, hk, hv, &acc);
  const std::vector<double> ref = normalize(opt, acc);
  const std::vector<float> sp = emulate_attention(opt, hq, hk, hv, true, nullptr);
  const std::vector<uint16_t> got = out.download<uint16_t>();
  double diff2 = 0, sp2 = 0, ref2 = 0;
  int64_t nans = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = from_bits(got[i], t);
    if (!std::isfinite(g)) ++nans;
    diff2 += (g - ref[i]) * (g - ref[i]), sp2 += (sp[i] - ref[i]) * (sp[i] - ref[i]), ref2 += ref[i] * ref[i];
  }
  const double rel = std::sqrt(diff2 / ref2), sp_rel = std::sqrt(sp2 / ref2);
  std::printf("[late chunks, %s, D=%lld] rel err %.3e, same-precision ref %.3e, NaN %lld\n", path ? path : "default",
              static_cast<long long>(dim), rel, sp_rel, static_cast<long long>(nans));
  EXPECT_EQ(nans, 0) << "outputs that read a chunk before it landed, or were never written";
  EXPECT_LE(rel, 2.0 * sp_rel + 1e-6);
  cudaEventDestroy(done);
  cudaStreamDestroy(link);
  cudaStreamDestroy(compute);
}

TEST(CudaAttention, LateChunksWaitForTheirFlags) {
  run_late_chunks(nullptr, 128, 24);  // the default: three consumer warpgroups, the producer polls
  run_late_chunks(nullptr, 64, 8);
  run_late_chunks("hopper_ws2", 128, 8);  // two consumer warpgroups
}

TEST(CudaAttention, LateChunksBeforeKernelsThatDoNotPoll) {
  run_late_chunks("hopper_tma", 128, 8);  // a one-thread kernel waits for every flag first
  run_late_chunks("hopper", 64, 8);
  run_late_chunks("hopper_tma", 128, 8, 3);  // ... for the last step of a stepped flag
}

// Chunks landing in steps of heads (a ring pulled by heads, SpAttentionConfig::ring_heads_per_step): each item
// waits for its own head's step; steps that divide the heads and one that does not, and one step for all.
TEST(CudaAttention, LateChunksInStepsOfHeads) {
  run_late_chunks(nullptr, 128, 24, 4);
  run_late_chunks(nullptr, 128, 24, 5);
  run_late_chunks(nullptr, 64, 8, 1);
  run_late_chunks("hopper_ws2", 128, 8, 8);
}

}  // namespace
}  // namespace sf::test
