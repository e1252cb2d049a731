#include "streamfusion/layer_check.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>

#include "harness/lane_check.h"
#include "streamfusion/cpu_device.h"
#include "streamfusion/cpu_kernels.h"

namespace sf {

LayerInputs make_random_inputs(const AttentionShape& shape, uint64_t seed) {
  LayerInputs in;
  in.shape = shape;
  const int64_t n = shape.batch * shape.seq_len * shape.heads * shape.head_dim;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  for (std::vector<char>* t : {&in.q, &in.k, &in.v}) {
    t->resize(n * dtype_size(shape.dtype));
    for (int64_t i = 0; i < n; ++i) store_from_float(t->data(), i, shape.dtype, dist(rng));
  }
  return in;
}

std::vector<double> reference_output(const LayerInputs& in) {
  const AttentionShape& s = in.shape;
  return reference_attention(in.q.data(), in.k.data(), in.v.data(), s.dtype, s.batch, s.seq_len, s.seq_len, s.heads,
                             s.head_dim, 1.0 / std::sqrt(static_cast<double>(s.head_dim)));
}

std::vector<char> slice_rows(const std::vector<char>& global, const AttentionShape& shape, int world, int rank) {
  const int64_t n = seq_count(shape.seq_len, world, rank), off = seq_offset(shape.seq_len, world, rank);
  const int64_t row = shape.heads * shape.head_dim * dtype_size(shape.dtype);
  std::vector<char> out(shape.batch * n * row);
  for (int64_t b = 0; b < shape.batch; ++b)
    if (n) std::memcpy(&out[b * n * row], &global[(b * shape.seq_len + off) * row], n * row);
  return out;
}

void ErrorStats::merge(const ErrorStats& o) {
  max_abs_err = std::max(max_abs_err, o.max_abs_err);
  max_abs_ref = std::max(max_abs_ref, o.max_abs_ref);
  non_finite += o.non_finite;
}

ErrorStats compare_rows(const void* out, const std::vector<double>& ref, const AttentionShape& shape, int world,
                        int rank) {
  ErrorStats e;
  const int64_t n = seq_count(shape.seq_len, world, rank), off = seq_offset(shape.seq_len, world, rank);
  const int64_t row = shape.heads * shape.head_dim;
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < row; ++i) {
        const double got = load_as_float(out, (b * n + s) * row + i, shape.dtype);
        const double want = ref[(b * shape.seq_len + off + s) * row + i];
        if (!std::isfinite(got)) {
          ++e.non_finite;
          continue;
        }
        e.max_abs_err = std::max(e.max_abs_err, std::fabs(got - want));
        e.max_abs_ref = std::max(e.max_abs_ref, std::fabs(want));
      }
  return e;
}

namespace {
void flip_signs(std::vector<char>* t, DType dtype) {
  const int64_t n = static_cast<int64_t>(t->size()) / dtype_size(dtype);
  for (int64_t i = 0; i < n; ++i) store_from_float(t->data(), i, dtype, -load_as_float(t->data(), i, dtype));
}
}  // namespace

double ThreadRunResult::median_ms() const {
  if (iteration_ms.empty()) return 0;
  std::vector<double> v = iteration_ms;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

namespace {

// Counts a rank's attention calls, and reports a given busy_query_tiles (> 0) as a GPU would; everything else
// goes straight to the rank's device.
class CallCountingDevice final : public Device {
 public:
  CallCountingDevice(Device& inner, int64_t busy_query_tiles) : inner_(inner), busy_(busy_query_tiles) {}
  int64_t attention_calls = 0;

  const char* name() const override { return inner_.name(); }
  Status attention(const AttentionProblem& p) override {
    ++attention_calls;
    return inner_.attention(p);
  }
  Status copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads, int64_t head_dim,
                   DType dtype) override {
    return inner_.copy_rows(dst, src, batch, heads, head_dim, dtype);
  }
  Status merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads, int64_t head_dim,
                        DType dtype) override {
    return inner_.merge_partials(merges, batch, heads, head_dim, dtype);
  }
  Result<void*> alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void free(void* p) override { inner_.free(p); }
  Status copy_to_device(void* dst, const void* src_host, size_t bytes) override {
    return inner_.copy_to_device(dst, src_host, bytes);
  }
  Status copy_to_host(void* dst_host, const void* src, size_t bytes) override {
    return inner_.copy_to_host(dst_host, src, bytes);
  }
  Status fill(void* dst, uint8_t byte, size_t bytes) override { return inner_.fill(dst, byte, bytes); }
  int64_t busy_query_tiles() const override { return busy_ > 0 ? busy_ : inner_.busy_query_tiles(); }
  Status synchronize() override { return inner_.synchronize(); }
  Result<int64_t> shared_blocks_helped(const SharedWork& work) override { return inner_.shared_blocks_helped(work); }
  int compute_lanes() const override { return inner_.compute_lanes(); }
  Status order_lanes() override { return inner_.order_lanes(); }

 private:
  Device& inner_;
  int64_t busy_;
};

}  // namespace

Result<ThreadRunResult> run_layer_on_threads(const Topology& topo, const LayerInputs& in, const std::vector<double>& ref,
                                             const SpAttentionConfig& config, const ThreadRunOptions& options) {
  const int P = topo.world_size();
  ThreadRunResult result;
  result.bytes.resize(P);
  result.barriers.resize(P);
  result.attention_calls.resize(P);
  result.lane1_calls.resize(P);
  result.landed_flags_asked.resize(P);
  result.ring_first_wave_heads.resize(P);
  result.helped_blocks.resize(P);
  const int total = options.warmup + options.iterations;
  std::vector<std::vector<double>> times(P, std::vector<double>(total));
  std::mutex mu;
  std::vector<double> negated_ref;  // the output of sign-flipped q, k, v: softmax(q·k) unchanged, -v
  if (options.check_every_forward)
    for (double x : ref) negated_ref.push_back(-x);
  Status s = run_thread_ranks(topo, options.world, [&](RankRuntime& rt) -> Status {
    Comm& comm = rt.comm();
    LaneCheckingDevice lanes(rt.device());
    CallCountingDevice dev(options.check_two_lanes ? static_cast<Device&>(lanes) : rt.device(),
                           options.busy_query_tiles);
    const int g = comm.rank();
    if (g == options.share_pause_rank) {
      auto* cpu = dynamic_cast<CpuDevice*>(&rt.device());
      if (cpu == nullptr) return invalid_argument("share_pause_rank: rank threads without a CpuDevice");
      cpu->set_share_pause_ms(options.share_pause_ms);
      cpu->set_share_arm_delay_ms(options.share_arm_delay_ms);
    }
    SF_ASSIGN_OR_RETURN(std::unique_ptr<SpAttention> attn, SpAttention::create(comm, dev, in.shape, config));
    if (g == 0) result.torus_segments = attn->torus_segments();
    if (g == 0) result.compute_lanes = attn->compute_lanes();
    result.ring_first_wave_heads[g] = attn->ring_first_wave_heads();
    const std::vector<char> q = slice_rows(in.q, in.shape, P, g), k = slice_rows(in.k, in.shape, P, g),
                            v = slice_rows(in.v, in.shape, P, g);
    // Every forward but the last runs on sign-flipped inputs: data left over from an earlier forward (a
    // missing barrier or wait that lets a rank read a peer's previous contents) then gives a wrong answer.
    std::vector<char> dq = q, dk = k, dv = v;
    for (std::vector<char>* t : {&dq, &dk, &dv}) flip_signs(t, in.shape.dtype);
    std::vector<char> o(q.size());
    for (int it = 0; it < total; ++it) {
      const bool last = it == total - 1;
      if (!options.rank_speeds.empty())
        SF_RETURN_IF_ERROR(attn->rebalance(options.rank_speeds[std::min<size_t>(it, options.rank_speeds.size() - 1)]));
      std::memset(o.data(), 0xff, o.size());  // poison: NaN in every dtype
      if (options.barrier_between_forwards) SF_RETURN_IF_ERROR(comm.barrier_all());
      comm.reset_counters();
      dev.attention_calls = 0;
      const int64_t lane1_before = lanes.calls_on_lane(1);
      const auto t0 = std::chrono::steady_clock::now();
      auto view = [&](const std::vector<char>& t) {
        return TensorView::dense(const_cast<char*>(t.data()), in.shape.dtype, attn->local_shape());
      };
      const std::array<void*, 2> into = attn->kv_input_buffers();
      if (options.kv_in_layer_buffers && into[0] && into[1]) {  // as a projection writing K/V there would
        SF_RETURN_IF_ERROR(dev.copy_to_device(into[0], (last ? k : dk).data(), k.size()));
        SF_RETURN_IF_ERROR(dev.copy_to_device(into[1], (last ? v : dv).data(), v.size()));
        const TensorView tk = TensorView::dense(into[0], in.shape.dtype, attn->local_shape());
        const TensorView tv = TensorView::dense(into[1], in.shape.dtype, attn->local_shape());
        SF_RETURN_IF_ERROR(attn->forward(last ? view(q) : view(dq), tk, tv, view(o)));
      } else {
        SF_RETURN_IF_ERROR(last ? attn->forward(view(q), view(k), view(v), view(o))
                                : attn->forward(view(dq), view(dk), view(dv), view(o)));
      }
      SF_RETURN_IF_ERROR(dev.synchronize());
      result.lane1_calls[g] = lanes.calls_on_lane(1) - lane1_before;  // the last forward's stays
      times[g][it] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (options.check_every_forward && !last) {
        const ErrorStats e = compare_rows(o.data(), negated_ref, in.shape, P, g);
        std::lock_guard lock(mu);
        result.error.merge(e);
      }
    }
    std::lock_guard lock(mu);
    result.bytes[g] = comm.bytes_moved();
    result.barriers[g] = comm.barriers_taken();
    result.attention_calls[g] = dev.attention_calls;
    result.landed_flags_asked[g] = comm.landed_flags_asked();
    SF_ASSIGN_OR_RETURN(result.helped_blocks[g], attn->blocks_taken_by_helpers());
    result.error.merge(compare_rows(o.data(), ref, in.shape, P, g));
    return Status::ok();
  });
  SF_RETURN_IF_ERROR(s);
  for (int it = options.warmup; it < total; ++it) {
    double slowest = 0;
    for (int g = 0; g < P; ++g) slowest = std::max(slowest, times[g][it]);
    result.iteration_ms.push_back(slowest);
  }
  return result;
}

}  // namespace sf
