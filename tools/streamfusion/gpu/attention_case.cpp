// One row of `streamfusion gpu-attention` (attention_case.h): plan, layer, checked run, timing, report.
#include "attention_case.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../layout_choices.h"
#include "gpu_commands.h"
#include "streamfusion/planner.h"

namespace sf::cli {
namespace {

std::string display_name(Scheme s, Transport t) {
  switch (s) {
    case Scheme::kRing: return t == Transport::kOneSided ? "Ring (1s)" : "Ring";
    case Scheme::kUlysses: return t == Transport::kOneSided ? "Ulysses (1s)" : "Ulysses";
    case Scheme::kUsp: return t == Transport::kOneSided ? "USP (1s)" : "USP";
    case Scheme::kTas: return t == Transport::kOneSided ? "TAS (1s)" : "TAS";
    case Scheme::kTorus: return t == Transport::kOneSided ? "SFU-NVSHMEM (torus)" : "SFU-NCCL";
    case Scheme::kSfu: return t == Transport::kOneSided ? "SFU-NVSHMEM" : "SFU-NCCL (sfu)";
    default: return scheme_name(s);
  }
}

// Whether row loans (SpAttentionConfig::row_loan_limit) and the shared ring (ring_share) apply: a lone one-sided
// ring inside one machine.
bool lone_ring_in_machine(const SpAttentionConfig& c, const Topology& topo, int P) {
  return c.transport == Transport::kOneSided && topo.machines == 1 && c.mesh.degree(LevelKind::kRing) == P;
}

#define ATT_CHECK(expr) SF_GPU_CLI_CHECK("gpu-attention", expr)

}  // namespace

void run_case(const ShapeContext& s, const LinkSetting& l, const AttentionCase& c, SweepTally* tally) {
  // The names the row's code has always used.
  const AttentionOptions& o = s.o;
  gpu::GpuContext* const ctx = &s.ctx;
  Device& dev = ctx->device();
  const AttentionShape& shape = s.shape;
  ShapeBuffers& buf = s.buf;
  const int64_t rows = s.rows;
  const DType dtype = shape.dtype;
  const size_t es = static_cast<size_t>(dtype_size(dtype));
  const size_t local_bytes = s.local_bytes;
  const int P = ctx->world_size(), rank = ctx->rank();
  const double one_gpu_ms = s.one_gpu_ms, concurrent_ms = s.concurrent_ms, measured_tflops = s.measured_tflops;
  const std::vector<double>& speeds = s.speeds;
  const bool real_links = s.real_links;
  const Topology& topo = l.topo;
  const double gbps = l.gbps;
  const char* const backend = l.backend;
  RankRuntime* const rt = &l.rt;
  std::unique_ptr<RankRuntime>& rt_free = l.rt_free;
  int& row_id = tally->row_id;
  int& skipped = tally->skipped;
  bool& all_ok = tally->all_ok;

  const Scheme scheme = c.scheme;
  const Transport transport = c.transport;
  const std::string name =
      c.mesh.empty() ? display_name(scheme, transport)
                     : "custom " + c.mesh + (transport == Transport::kOneSided ? " (NVSHMEM)" : " (NCCL)");
  // The planner sees the (emulated) inter-machine speed, as it would a real cluster's.
  auto plan = make_plan(scheme, topo, shape, c.mesh, transport,
                        LinkSpeeds{300.0, topo.machines > 1 ? gbps : 300.0, measured_tflops});
  if (!plan) {
    if (rank == 0) std::printf("# skip %s on %s: %s\n", name.c_str(), topo.to_string().c_str(),
                               plan.status().to_string().c_str());
    ++skipped;
    return;
  }
  apply_layout_choices(o.torus_chunks, o.diagonal, &plan->config);
  if (o.foreign_push != "auto") plan->config.stagger_foreign_push = o.foreign_push == "staggered";
  if (o.foreign_rows != "auto") plan->config.foreign_rows_by_block = o.foreign_rows == "by-block";
  // Where it applies; beside loans the layer refuses it and the row is skipped, saying why.
  if (o.ring_share != "auto")
    plan->config.ring_share = o.ring_share == "on" && lone_ring_in_machine(plan->config, topo, P);
  if (o.merge_sets != "auto") plan->config.merge_kv_sets = o.merge_sets == "merged";
  const bool lend = (!speeds.empty() || o.balance == "layer") && lone_ring_in_machine(plan->config, topo, P);
  if (lend) plan->config.row_loan_limit = 0.125;
  // Loans replace the planner's one call pulled by heads (sharing keeps it: the one call is shared whole);
  // asked for beside them, the layer refuses and the row is skipped, saying why.
  if (lend) plan->config.ring_heads_per_step = 0;
  if (o.ring_heads_per_step >= 0) plan->config.ring_heads_per_step = o.ring_heads_per_step;
  plan->config.ring_first_wave_heads = o.ring_first_wave_heads;
  plan->config.compute_lanes = o.compute_lanes;
  auto sp_r = SpAttention::create(rt->comm(), rt->device(), shape, plan->config);
  if (!sp_r) {  // validation is the same on every rank: report and go on with the next case
    if (rank == 0) std::printf("# skip %s on %s: %s\n", name.c_str(), topo.to_string().c_str(),
                               sp_r.status().to_string().c_str());
    ++skipped;
    return;
  }
  auto sp = std::move(sp_r.value());
  // A layer that reads K/V from its own symmetric buffers gets them written there, as the projection
  // producing them would in a model (not timed); every other layer reads the rank's buffers.
  const auto layer_inputs = [&](SpAttention& layer) -> Result<std::array<const void*, 2>> {
    const std::array<void*, 2> into = layer.kv_input_buffers();
    if (!into[0] || !into[1]) return std::array<const void*, 2>{buf.k, buf.v};
    for (int t = 0; t < 2; ++t) {
      SF_RETURN_IF_ERROR(dev.copy_rows(dense_rows(into[t], rows, shape.heads, shape.head_dim),
                                       dense_rows(t == 0 ? buf.k : buf.v, rows, shape.heads, shape.head_dim),
                                       shape.batch, shape.heads, shape.head_dim, dtype));
    }
    return std::array<const void*, 2>{into[0], into[1]};
  };
  auto inputs = layer_inputs(*sp);
  ATT_CHECK(inputs.status());
  const void* kin = inputs.value()[0];
  const void* vin = inputs.value()[1];
  const bool kv_in_layer = kin != buf.k;
  if (lend && speeds.empty()) {  // --balance layer: the speeds this layer runs at, on this input
    auto measured = measure_layer_speeds(
        *ctx, *sp, [&] { return sp->forward(buf.q, kin, vin, buf.o); }, o.warmup,
        "att/speeds/" + std::to_string(row_id));
    ATT_CHECK(measured.status());
    ATT_CHECK(sp->rebalance(measured.value()));
    if (rank == 0)
      std::printf("# %s: speeds in the layer, relative, where three measurements agree: %s\n",
                  name.c_str(), join_values(*measured, 7).c_str());
  } else if (lend) {
    ATT_CHECK(sp->rebalance(speeds));
  }
  if (lend && rank == 0)
    std::printf("# row loans of %s: %s\n", name.c_str(),
                sp->loans_summary().empty() ? "none (the ranks are within a 64-row slice of even)"
                                            : sp->loans_summary().c_str());
  // Checked run: poisoned output (0xff bytes are NaN in every dtype), bytes counted.
  ATT_CHECK(dev.fill(buf.o, 0xff, local_bytes));
  ATT_CHECK(ctx->reset_links());
  const int64_t fallback_before = gpu::GpuContext::fallback_attention_calls();
  rt->comm().reset_counters();
  ATT_CHECK(sp->forward(buf.q, kin, vin, buf.o));
  ATT_CHECK(ctx->synchronize());
  const LinkBytes bytes = rt->comm().bytes_moved();
  auto cmp = ctx->compare(buf.o, buf.ref, static_cast<int64_t>(local_bytes / es), dtype);
  ATT_CHECK(cmp.status());
  ATT_CHECK(ctx->reset_links());
  // --trace times every call and transfer of the last timed forward: queued behind the others, as
  // in steady state (a forward traced alone after a pause ran 10-20 % slower than the median, 4x H200,
  // Flux S=36864 on 1x4).
  const std::function<Status()> forward = [&] { return sp->forward(buf.q, kin, vin, buf.o); };
  auto warmup_r = sustained_warmup(*ctx, forward, nullptr, o, "att/sustain/" + std::to_string(row_id));
  ATT_CHECK(warmup_r.status());
  const int warmup = warmup_r.value();
  int forwards_started = 0;
  auto trace_last = [&]() -> Status {
    if (++forwards_started != warmup + o.iters || !o.trace) return Status::ok();
    SF_RETURN_IF_ERROR(ctx->keep_link_records(4096));  // and what the emulated links did
    return ctx->begin_trace();
  };
  auto ms_r = ctx->time_iterations(forward, warmup, o.iters, trace_last);
  ATT_CHECK(ms_r.status());
  std::string timeline;
  if (o.trace) {
    auto t = ctx->end_trace();
    ATT_CHECK(t.status());
    timeline = t.value();
    ATT_CHECK(ctx->synchronize());  // every hold past: the records know when their stream resumed
    if (topo.machines > 1) {
      // Earlier forwards still in flight when the records began left theirs too, without the moment
      // their stream resumed (their holds were enqueued before): only the traced forward's are kept.
      auto records = ctx->take_link_records();
      std::erase_if(records, [](const gpu::LinkClock::Record& r) { return r.resumed_ns == 0; });
      timeline += "emulated links:\n" + gpu::format_link_records(std::move(records));
    }
    ATT_CHECK(ctx->keep_link_records(0));
  }
  std::vector<std::string> timelines;
  if (o.trace) {
    auto t = gpu::gather_strings(*ctx, "att/trace/" + std::to_string(row_id), timeline);
    ATT_CHECK(t.status());
    timelines = std::move(t.value());
  }
  const long long fallback = gpu::GpuContext::fallback_attention_calls() - fallback_before;
  const std::string loans = sp->loans_summary();
  auto helped_r = sp->blocks_taken_by_helpers();  // ring_share: of the last forward
  ATT_CHECK(helped_r.status());
  const long long helped = helped_r.value();
  const int torus_segments = sp->torus_segments();
  const long long first_wave = sp->ring_first_wave_heads();
  const int lanes = sp->compute_lanes();
  sp.reset();
  // --free-links: the same plan on the same mesh, with the inter-machine links at NVLink speed. What the
  // layer's own calls and waits take without the emulated links: its compute alone, where the one-GPU
  // time / P is the compute of an ideal split (the issue's target "within 10 % of max(compute alone,
  // inter-machine transfer alone)" reads either way; make_report.py counts both).
  double free_links_ms = 0.0;
  if (o.free_links && topo.machines > 1) {
    if (!rt_free) {
      auto r = ctx->make_runtime(backend, topo, gpu::EmulationSettings{});
      ATT_CHECK(r.status());
      rt_free = std::move(r.value());
    }
    auto free_r = SpAttention::create(rt_free->comm(), rt_free->device(), shape, plan->config);
    ATT_CHECK(free_r.status());
    auto free_in = layer_inputs(*free_r.value());
    ATT_CHECK(free_in.status());
    SpAttention& free_layer = *free_r.value();
    const std::function<Status()> free_forward = [&] {
      return free_layer.forward(buf.q, free_in.value()[0], free_in.value()[1], buf.o);
    };
    auto free_warmup = sustained_warmup(*ctx, free_forward, nullptr, o, "att/free/" + std::to_string(row_id));
    ATT_CHECK(free_warmup.status());
    auto free_ms = ctx->time_iterations(free_forward, free_warmup.value(), o.iters);
    ATT_CHECK(free_ms.status());
    free_links_ms = median(free_ms.value());
  }
  char mine[256];
  std::snprintf(mine, sizeof mine, "%.5f %.6g %.6g %lld %llu %llu %lld %.5f %lld", median(ms_r.value()),
                cmp->max_abs, cmp->rel_l2, static_cast<long long>(cmp->non_finite),
                static_cast<unsigned long long>(bytes.intra()),
                static_cast<unsigned long long>(bytes.inter()), fallback, free_links_ms, helped);
  auto all = gpu::gather_strings(*ctx, "att/row/" + std::to_string(row_id++), mine);
  ATT_CHECK(all.status());
  if (rank != 0) return;
  double ms = 0, max_abs = 0, rel = 0, free_ms = 0;
  long long bad = 0, fallbacks = 0;
  unsigned long long intra = 0, inter = 0;
  std::string helped_per_rank;  // ring_share: blocks the other ranks took from each rank's last call
  size_t unread = 0;  // ranks whose line did not parse, or whose errors are NaN: their check did not pass
  for (const auto& line : all.value()) {
    double m, a, r, fm;
    long long nb, fb, hb;
    unsigned long long bi, be;
    if (std::sscanf(line.c_str(), "%lf %lf %lf %lld %llu %llu %lld %lf %lld", &m, &a, &r, &nb, &bi, &be, &fb,
                    &fm, &hb) != 9 ||
        std::isnan(a) || std::isnan(r)) {
      ++unread;
      continue;
    }
    helped_per_rank += (helped_per_rank.empty() ? "" : ",") + std::to_string(hb);
    free_ms = std::max(free_ms, fm);
    fallbacks += fb;
    ms = std::max(ms, m);
    max_abs = std::max(max_abs, a);
    rel = std::max(rel, r);
    bad += nb;
    intra = std::max(intra, bi);
    inter = std::max(inter, be);
  }
  const bool ok = unread == 0 && bad == 0 && rel <= o.tol_rel && max_abs <= o.tol_abs;
  all_ok = all_ok && ok;
  const std::string speed = std::to_string(gbps).substr(0, 5) + " GB/s";
  const std::string link = topo.machines == 1 ? "NVLink"
                           : real_links       ? "real (" + speed + " planned)"
                                              : speed + " emul.";
  const char* verdict = ok          ? (fallbacks ? "ok (fallback kernel)" : "ok")
                        : unread    ? "UNREAD (a rank's result did not parse or is NaN)"
                        : bad       ? "NON-FINITE"
                                    : "WRONG";
  char row[768];
  std::snprintf(row, sizeof row,
                "| %s | %s | %s | %s | %s | %s | %.3f | %.3f | %.2fx | %.3f | %.1f | %.1f | %.3g | %.3g "
                "| %s |",
                shape.to_string().c_str(), topo.to_string().c_str(), link.c_str(), name.c_str(),
                transport_name(transport), plan->config.mesh.to_string().c_str(), ms, one_gpu_ms,
                one_gpu_ms > 0 ? one_gpu_ms / ms : 0.0, concurrent_ms, intra / 1e6, inter / 1e6, max_abs, rel,
                verdict);
  std::printf("%s\n", row);
  if (plan->config.ring_share)
    std::printf("# %s on %s: ring_share, blocks of each rank's last call taken by the others in the last "
                "forward: %s\n",
                name.c_str(), topo.to_string().c_str(), helped_per_rank.c_str());
  if (free_ms > 0)
    std::printf("# %s on %s at %s: %.3f ms with the links at NVLink speed (same plan); layer / that = %.2f\n",
                name.c_str(), topo.to_string().c_str(), link.c_str(), free_ms, ms / free_ms);
  if (o.trace) {
    for (size_t r = 0; r < timelines.size(); ++r) {
      std::printf("# trace of %s on %s, rank %zu (ms from the forward's start on its compute stream):\n",
                  name.c_str(), topo.to_string().c_str(), r);
      size_t at = 0;
      const std::string& tl = timelines[r];
      while (at < tl.size()) {
        const size_t nl = tl.find('\n', at);
        std::printf("#%s\n", tl.substr(at, nl - at).c_str());
        at = nl == std::string::npos ? tl.size() : nl + 1;
      }
    }
  }
  std::fflush(stdout);
  // One JSON object per row (nlohmann: strings escaped, nothing truncated); plan_* is the configuration
  // the layer ran with.
  const nlohmann::ordered_json row_json = {
      {"label", o.label}, {"batch", shape.batch}, {"seq", shape.seq_len}, {"heads", shape.heads},
      {"head_dim", shape.head_dim}, {"dtype", dtype_name(dtype)}, {"topology", topo.to_string()},
      {"inter_gbps", topo.machines > 1 ? gbps : 0.0}, {"latency_us", o.latency_us},
      {"scheme", scheme_name(scheme)}, {"name", name}, {"transport", transport_name(transport)},
      {"backend", backend}, {"mesh", plan->config.mesh.to_string()}, {"ms", ms}, {"one_gpu_ms", one_gpu_ms},
      {"concurrent_compute_ms", concurrent_ms}, {"free_links_ms", free_ms}, {"intra_bytes", intra},
      {"inter_bytes", inter}, {"max_abs", max_abs}, {"rel_l2", rel}, {"non_finite", bad},
      {"fallback_calls", fallbacks}, {"kv_in_layer_buffers", kv_in_layer},
      {"plan_torus_chunks", plan->config.torus_chunks}, {"torus_segments", torus_segments},
      {"plan_stagger_foreign_push", plan->config.stagger_foreign_push},
      {"plan_foreign_rows_by_block", plan->config.foreign_rows_by_block},
      {"plan_ring_share", plan->config.ring_share},
      {"plan_ring_heads_per_step", plan->config.ring_heads_per_step}, {"ring_first_wave_heads", first_wave},
      {"compute_lanes", lanes}, {"helped_blocks", helped_per_rank},
      {"plan_merge_kv_sets", plan->config.merge_kv_sets},
      {"plan_local_diagonal", plan->config.local_diagonal}, {"row_loans", loans}, {"ok", ok}};
  const std::string js = row_json.dump();
  if (!o.json.empty()) {
    std::ofstream f(o.json, std::ios::app);
    f << js << "\n";
  }
}

}  // namespace sf::cli
