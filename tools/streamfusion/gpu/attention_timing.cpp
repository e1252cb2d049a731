#include "attention_timing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

namespace sf::cli {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

Status fill_rows(gpu::GpuContext& ctx, void* dst, const AttentionShape& sh, int64_t first_row, int64_t rows,
                 uint64_t seed) {
  const int64_t row_elems = sh.heads * sh.head_dim;
  for (int64_t b = 0; b < sh.batch; ++b) {
    void* base = static_cast<char*>(dst) + b * rows * row_elems * dtype_size(sh.dtype);
    const int64_t first_elem = (b * sh.seq_len + first_row) * row_elems;
    SF_RETURN_IF_ERROR(ctx.fill_normal(base, rows * row_elems, sh.dtype, seed, first_elem));
  }
  return Status::ok();
}

Result<int> sustained_warmup(gpu::GpuContext& ctx, const std::function<Status()>& body,
                             const std::function<Status()>& before_each, const AttentionOptions& o,
                             const std::string& tag) {
  if (o.sustain_s <= 0.0) return o.warmup;
  SF_ASSIGN_OR_RETURN(std::vector<double> probe, ctx.time_iterations(body, 0, 3, before_each));
  const double per_run_ms = std::max(median(probe), 1e-3);
  int more = static_cast<int>(std::min(1e5, std::ceil(o.sustain_s * 1e3 / per_run_ms)));
  if (!tag.empty()) {
    SF_ASSIGN_OR_RETURN(std::vector<std::string> all, gpu::gather_strings(ctx, tag, std::to_string(more)));
    for (const std::string& v : all) more = std::max(more, std::stoi(v));
  }
  return o.warmup + more;
}

Result<std::vector<double>> time_concurrent_compute(gpu::GpuContext& ctx, const FullKeysCall& share,
                                                    const AttentionOptions& o, const std::string& tag) {
  // Only for the barrier between iterations: the hosts as they are, no emulation.
  SF_ASSIGN_OR_RETURN(std::unique_ptr<RankRuntime> rt,
                      ctx.make_runtime("nccl", ctx.host_topology(), gpu::EmulationSettings{}));
  Comm& comm = rt->comm();
  Device& dev = rt->device();
  const std::function<Status()> body = [&] { return dev.attention(share.problem); };
  const std::function<Status()> barrier = [&] { return comm.barrier_all(); };
  SF_ASSIGN_OR_RETURN(int warmup, sustained_warmup(ctx, body, barrier, o, tag + "/sustain"));
  SF_ASSIGN_OR_RETURN(std::vector<double> ms, ctx.time_iterations(body, warmup, o.iters, barrier));
  SF_ASSIGN_OR_RETURN(std::vector<std::string> all, gpu::gather_strings(ctx, tag, std::to_string(median(ms))));
  std::vector<double> per_rank;
  for (const std::string& v : all) per_rank.push_back(std::stod(v));
  return per_rank;
}

Result<std::vector<double>> measure_layer_speeds(gpu::GpuContext& ctx, SpAttention& sp,
                                                 const std::function<Status()>& forward, int warmup,
                                                 const std::string& tag) {
  for (int i = 0; i < warmup; ++i) SF_RETURN_IF_ERROR(forward());
  constexpr int kWindows = 3;
  std::vector<std::vector<double>> deviation;  // [window][rank]: speed / mean speed - 1
  for (int w = 0; w < kWindows; ++w) {
    if (w > 0)
      for (int i = 0; i < 20; ++i) SF_RETURN_IF_ERROR(forward());
    std::vector<double> attention_ms;
    for (int i = 0; i < 5; ++i) {
      SF_RETURN_IF_ERROR(ctx.begin_trace());
      SF_RETURN_IF_ERROR(forward());
      SF_ASSIGN_OR_RETURN(std::vector<gpu::TraceEntry> entries, ctx.end_trace_entries());
      double ms = 0.0;
      for (const gpu::TraceEntry& e : entries)
        if (!e.point && e.what.rfind("attention", 0) == 0) ms += e.end_ms - e.start_ms;
      attention_ms.push_back(ms);
    }
    const double rows_per_ms = static_cast<double>(sp.query_rows_computed()) / std::max(median(attention_ms), 1e-6);
    SF_ASSIGN_OR_RETURN(std::vector<std::string> all,
                        gpu::gather_strings(ctx, tag + "/" + std::to_string(w), std::to_string(rows_per_ms)));
    std::vector<double> v;
    double mean = 0.0;
    for (const std::string& x : all) mean += v.emplace_back(std::stod(x)) / static_cast<double>(all.size());
    for (double& x : v) x = x / mean - 1.0;
    deviation.push_back(std::move(v));
  }
  std::vector<double> speeds(deviation[0].size(), 1.0);
  for (size_t x = 0; x < speeds.size(); ++x) {
    double agreed = deviation[0][x];
    for (const std::vector<double>& d : deviation)
      agreed = d[x] * agreed <= 0.0 ? 0.0 : (std::fabs(d[x]) < std::fabs(agreed) ? d[x] : agreed);
    speeds[x] += agreed;
  }
  return speeds;
}

std::string join_values(const std::vector<double>& values, size_t digits) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ", ") + std::to_string(v).substr(0, digits);
  return out;
}

}  // namespace sf::cli
