// `streamfusion gpu-attention`: one SpAttention layer per process (run under `launch`, mpirun, torchrun or
// srun). For every shape, topology (emulated when M > 1 on one host), inter-machine bandwidth, scheme and
// transport: checks each rank's output against the one-GPU result computed by the same Device on the full
// tensors (output poisoned before the run), counts bytes per link class, and times warm-up + iterations with
// events (median of the slowest rank). Two baselines per shape: the whole layer on rank 0 alone (`1-GPU ms`), and
// every rank's own rows against all keys with all ranks busy at once (`all-P compute ms`, the compute share under
// the clocks and power of P busy GPUs). Prints a table (rank 0); --json writes one JSON object per row.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu_commands.h"
#include "option_lists.h"
#include "gpu_runtime.h"
#include "../layout_choices.h"
#include "attention_options.h"
#include "attention_timing.h"
#include "streamfusion/planner.h"
#include "streamfusion/sp_attention.h"

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

// Which launcher's variables this process took its place from (the launcher checks in tests/gpu/multi grep it).
void print_launch(const gpu::LaunchInfo& env) {
  std::printf("# launch: rank source = %s; world %d (%d on this host); bootstrap store %s:%s\n", env.source.c_str(),
              env.world_size, env.local_world_size, env.master_addr.c_str(), gpu::store_ports_text(env).c_str());
  std::fflush(stdout);
}

#define ATT_CHECK(expr) SF_GPU_CLI_CHECK("gpu-attention", expr)

int run_attention(const AttentionOptions& o) {
  auto env = gpu::read_launch_env();
  if (!env) {
    std::fprintf(stderr, "gpu-attention: %s\n", env.status().to_string().c_str());
    return 1;
  }
  const int rank = env->rank;
  if (rank == 0) print_launch(*env);  // before the bootstrap, so ranks that all think they are rank 0 show it
  DType dtype;
  if (!parse_dtype(o.dtype, &dtype)) {
    std::fprintf(stderr, "gpu-attention: unknown dtype '%s'\n", o.dtype.c_str());
    return 2;
  }
  if (o.balance == "share" && !o.concurrent && o.rank_speeds.empty()) {
    std::fprintf(stderr, "gpu-attention: --balance share takes the speeds from the compute-share timing, which "
                         "--no-concurrent turns off (give --rank-speeds instead)\n");
    return 2;
  }
  std::vector<Scheme> schemes;
  for (const auto& s : split_list(o.schemes)) {
    Scheme sc;
    if (!parse_scheme(s, &sc)) {
      std::fprintf(stderr, "gpu-attention: unknown scheme '%s' (ring, ulysses, usp, tas, torus, sfu)\n", s.c_str());
      return 2;
    }
    schemes.push_back(sc);
  }
  // The number lists, read before any GPU starts (option_lists.h).
  auto seq_lens = parse_counts("-S/--seq", split_list(o.seqs), 1);
  auto link_gbps = parse_rates("--gbps", split_list(o.gbps));
  for (const Status& st : {seq_lens.status(), link_gbps.status()})
    if (!st.is_ok()) {
      std::fprintf(stderr, "gpu-attention: %s\n", st.to_string().c_str());
      return 2;
    }
  std::vector<Topology> topos;
  bool job_topology = false;  // "job": the job's own layout, hosts x ranks per host (known once the ranks meet)
  for (const auto& t : split_list(o.topologies)) {
    if (t == "job") {
      job_topology = true;
      continue;
    }
    auto tp = Topology::parse(t);
    if (!tp) {
      std::fprintf(stderr, "gpu-attention: %s\n", tp.status().to_string().c_str());
      return 2;
    }
    topos.push_back(*tp);
  }
  const bool want_one = o.transports == "auto" || o.transports == "one-sided" || o.transports == "both";
  bool need_nvshmem = o.transports == "one-sided" || o.transports == "both";
  if (o.transports == "auto") {
    for (Scheme s : schemes) need_nvshmem = need_nvshmem || s == Scheme::kSfu;
  }
  (void)want_one;
  gpu::GpuContextOptions copt;
  copt.nvshmem = need_nvshmem;
  auto ctx_r = gpu::GpuContext::create(*env, copt);
  if (!ctx_r) {
    std::fprintf(stderr, "[rank %d] gpu-attention: %s\n", rank, ctx_r.status().to_string().c_str());
    return 1;
  }
  auto ctx = std::move(ctx_r.value());
  const int P = ctx->world_size();
  Device& dev = ctx->device();
  if (job_topology) topos.insert(topos.begin(), ctx->host_topology());
  // On several hosts the links between machines are real: nothing is emulated, and --gbps is only the speed the
  // planner assumes for them (host_layout.h).
  const bool real_links = ctx->spans_hosts();
  if (rank == 0) {
    char links_note[160];
    if (real_links)
      std::snprintf(links_note, sizeof links_note, "the job spans %d hosts: real links between them, --gbps is the "
                    "planner's speed for them", ctx->host_topology().machines);
    else
      std::snprintf(links_note, sizeof links_note, "latency of emulated links %.1f us", o.latency_us);
    std::printf("# gpu-attention on %s; warm-up %d, median of %d; %s\n", ctx->describe().c_str(), o.warmup, o.iters,
                links_note);
    std::printf("| shape | topology | inter link | scheme | transport | mesh | ms | 1-GPU ms | speedup | "
                "all-P compute ms | intra MB/GPU | inter MB/GPU | max abs err | rel L2 | check |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::fflush(stdout);
  }
  std::vector<std::string> json_rows;
  bool all_ok = true;
  int row_id = 0;   // layers run (every rank counts them alike)
  int skipped = 0;  // layers asked for that could not run: said with their reason, and the exit code if none ran

  for (const int64_t seq_len : *seq_lens) {
    const std::string seq_s = std::to_string(seq_len);
    AttentionShape shape;
    shape.batch = o.batch;
    shape.seq_len = seq_len;
    shape.heads = o.heads;
    shape.head_dim = o.head_dim;
    shape.dtype = dtype;
    ATT_CHECK(shape.validate());
    if (const Status split = shape.validate_split(P); !split.is_ok()) {  // a rank without tokens: every layer refuses
      if (rank == 0) std::printf("# skip S=%s: %s\n", seq_s.c_str(), split.message().c_str());
      ++skipped;
      continue;
    }
    const int64_t rows = seq_count(shape.seq_len, P, rank), first = seq_offset(shape.seq_len, P, rank);
    const size_t es = static_cast<size_t>(dtype_size(dtype));
    const size_t local_bytes = static_cast<size_t>(shape.batch * rows * shape.heads * shape.head_dim) * es;
    const size_t full_bytes = static_cast<size_t>(shape.batch * shape.seq_len * shape.heads * shape.head_dim) * es;
    ShapeBuffers buf;
    buf.dev = &dev;
    for (void** p : {&buf.q, &buf.k, &buf.v, &buf.o, &buf.ref}) {
      auto r = buf.alloc(local_bytes);
      ATT_CHECK(r.status());
      *p = r.value();
    }
    for (void** p : {&buf.kfull, &buf.vfull}) {
      auto r = buf.alloc(full_bytes);
      ATT_CHECK(r.status());
      *p = r.value();
    }
    const uint64_t sq = o.seed * 3 + 1, sk = o.seed * 3 + 2, sv = o.seed * 3 + 3;
    ATT_CHECK(fill_rows(*ctx, buf.q, shape, first, rows, sq));
    ATT_CHECK(fill_rows(*ctx, buf.k, shape, first, rows, sk));
    ATT_CHECK(fill_rows(*ctx, buf.v, shape, first, rows, sv));
    ATT_CHECK(fill_rows(*ctx, buf.kfull, shape, 0, shape.seq_len, sk));
    ATT_CHECK(fill_rows(*ctx, buf.vfull, shape, 0, shape.seq_len, sv));
    // The one-GPU result for this rank's rows: the same Device, all keys in one call.
    const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
    {
      const FullKeysCall ref(shape, buf.q, buf.ref, rows, buf.kfull, buf.vfull, scale);
      ATT_CHECK(dev.attention(ref.problem));
      ATT_CHECK(ctx->synchronize());
    }
    // One-GPU time of the whole layer (rank 0; the others wait at the store).
    double one_gpu_ms = 0.0;
    if (o.single && rank == 0) {
      auto qfull_r = dev.alloc(full_bytes);
      auto ofull_r = dev.alloc(full_bytes);
      ATT_CHECK(qfull_r.status());
      ATT_CHECK(ofull_r.status());
      ATT_CHECK(fill_rows(*ctx, qfull_r.value(), shape, 0, shape.seq_len, sq));
      const FullKeysCall layer(shape, qfull_r.value(), ofull_r.value(), shape.seq_len, buf.kfull, buf.vfull, scale);
      const std::function<Status()> body = [&] { return dev.attention(layer.problem); };
      auto warmup = sustained_warmup(*ctx, body, nullptr, o, "");
      ATT_CHECK(warmup.status());
      auto ms = ctx->time_iterations(body, warmup.value(), o.iters);
      ATT_CHECK(ms.status());
      one_gpu_ms = median(ms.value());
      dev.free(qfull_r.value());
      dev.free(ofull_r.value());
    }
    auto one_all = gpu::gather_strings(*ctx, "att/one/" + seq_s, std::to_string(one_gpu_ms));
    ATT_CHECK(one_all.status());
    one_gpu_ms = std::stod(one_all.value()[0]);
    // The same one-GPU computation, this rank's share, all ranks at once (output into buf.o, poisoned later).
    double concurrent_ms = 0.0;
    std::vector<double> speeds = o.rank_speeds;  // for row loans
    if (o.concurrent) {
      const FullKeysCall share(shape, buf.q, buf.o, rows, buf.kfull, buf.vfull, scale);
      auto c = time_concurrent_compute(*ctx, share, o, "att/concurrent/" + seq_s);
      ATT_CHECK(c.status());
      concurrent_ms = *std::max_element(c->begin(), c->end());
      if (o.balance == "share" && speeds.empty())
        for (double ms : c.value()) speeds.push_back(1.0 / ms);
      if (rank == 0 && o.balance == "share")
        std::printf("# compute share per rank (ms), the speeds for row loans: %s\n", join_values(*c, 6).c_str());
    }
    if (o.pause_s > 0.0 && (o.single || o.concurrent)) {
      std::this_thread::sleep_for(std::chrono::duration<double>(o.pause_s));
      ATT_CHECK(gpu::gather_strings(*ctx, "att/pause/" + seq_s, "").status());
    }

    // The planner weighs transfers against compute: give it this kernel's measured rate on this shape (one GPU,
    // else all GPUs at once), as it gets the links' speeds.
    const double layer_flop = 4.0 * shape.batch * static_cast<double>(shape.seq_len) * shape.seq_len * shape.heads *
                              shape.head_dim;
    const double measured_tflops = one_gpu_ms > 0      ? layer_flop / (one_gpu_ms * 1e9)
                                   : concurrent_ms > 0 ? layer_flop / P / (concurrent_ms * 1e9)
                                                       : 600.0;
    for (const Topology& topo : topos) {
      if (topo.world_size() != P) {
        if (rank == 0)
          std::printf("# skip topology %s: needs %d processes\n", topo.to_string().c_str(), topo.world_size());
        ++skipped;
        continue;
      }
      std::vector<double> links = {0.0};
      if (topo.machines > 1) links = *link_gbps;
      for (double gbps : links) {
        const gpu::EmulationSettings emu{real_links ? 0.0 : gbps, o.latency_us};
        // (scheme, transport) cases, grouped by backend so each runtime is made once.
        for (const char* backend : {"nccl", "nvshmem"}) {
          struct Case {
            Scheme scheme;
            Transport transport;
            std::string mesh;  // empty: the scheme's default mesh
          };
          std::vector<Case> cases;
          std::vector<std::pair<Scheme, std::string>> wanted;
          for (Scheme s : schemes) wanted.emplace_back(s, "");
          for (const std::string& m : o.custom_meshes) wanted.emplace_back(Scheme::kCustom, m);
          for (const auto& [s, mesh] : wanted) {
            std::vector<Transport> ts;
            if (o.transports == "both") ts = {Transport::kTwoSided, Transport::kOneSided};
            else if (o.transports == "one-sided") ts = {Transport::kOneSided};
            else if (o.transports == "two-sided") ts = {Transport::kTwoSided};
            else if (s == Scheme::kCustom) ts = {Transport::kTwoSided, Transport::kOneSided};
            else ts = {s == Scheme::kSfu ? Transport::kOneSided : Transport::kTwoSided};
            for (Transport t : ts) {
              const bool on_nvshmem = t == Transport::kOneSided;
              if (on_nvshmem == (std::string(backend) == "nvshmem")) cases.push_back({s, t, mesh});
            }
          }
          if (cases.empty()) continue;
          if (std::string(backend) == "nvshmem" && !ctx->has_nvshmem()) continue;
          auto rt_r = ctx->make_runtime(backend, topo, emu);
          ATT_CHECK(rt_r.status());
          auto rt = std::move(rt_r.value());
          std::unique_ptr<RankRuntime> rt_free;  // --free-links: this backend without the emulated links
          for (const Case& c : cases) {
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
              continue;
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
              continue;
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
            if (rank != 0) continue;
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
            json_rows.push_back(js);
            if (!o.json.empty()) {
              std::ofstream f(o.json, std::ios::app);
              f << js << "\n";
            }
          }
        }
      }
    }
  }
  // A layer that could not run (out of memory, a mesh the planner refused) is skipped so that a sweep goes on; but a
  // run in which none ran did not do what was asked, and exits non-zero (4).
  const bool none_ran = row_id == 0 && skipped > 0;
  if (rank == 0) {
    const std::string skips = skipped == 0 ? "" : " (" + std::to_string(row_id) + " layers ran, " +
                                                      std::to_string(skipped) + " skipped: the reasons above)";
    std::printf("# gpu-attention: %s%s\n",
                none_ran ? "no layer ran" : all_ok ? "all outputs match the one-GPU result" : "SOME OUTPUTS WRONG",
                skips.c_str());
  }
  auto fin = gpu::gather_strings(*ctx, "att/final", "");
  ATT_CHECK(fin.status());
  return rank != 0 ? 0 : !all_ok ? 3 : none_ran ? 4 : 0;
}

}  // namespace

void register_gpu_attention_command(CLI::App& app) {
  auto o = std::make_shared<AttentionOptions>();
  CLI::App* sub = app.add_subcommand(
      "gpu-attention", "Run SpAttention on GPU ranks (NCCL/NVSHMEM), check against one GPU, time it (under launch)");
  sub->add_option("-S,--seq", o->seqs, "Sequence lengths (comma list)");
  sub->add_option("-H,--heads", o->heads, "Heads")->check(finite_number(1, 1 << 20));
  sub->add_option("-D,--head-dim", o->head_dim, "Head dim (at most 256)")->check(finite_number(1, 256));
  sub->add_option("-B,--batch", o->batch, "Batch")->check(finite_number(1, 1 << 20));
  sub->add_option("--dtype", o->dtype, "bf16, fp16 or fp32")->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  sub->add_option("--topology", o->topologies,
                  "MxN topologies (comma list; M > 1 on one host is emulated), or job: the job's hosts x ranks per host "
                  "(the default)");
  sub->add_option("--gbps", o->gbps, "Emulated inter-machine GB/s per GPU and direction (comma list)");
  sub->add_option("--latency-us", o->latency_us, "Emulated inter-machine latency")->check(finite_number(0, 1e6));
  sub->add_option("--schemes", o->schemes, "ring, ulysses, usp, tas, torus (SFU over NCCL), sfu (comma list)");
  sub->add_option("--transports", o->transports,
                  "auto (sfu one-sided on NVSHMEM, others two-sided on NCCL), two-sided, one-sided, both")
      ->check(CLI::IsMember({"auto", "two-sided", "one-sided", "both"}));
  sub->add_option("--custom-meshes", o->custom_meshes, "extra explicit meshes run as scheme custom, both transports "
                                                       "(comma list, e.g. T4,T2U2)")->delimiter(',');
  sub->add_option("--foreign-push", o->foreign_push,
                  "Torus foreign output after the last K/V set: auto (the planner), staggered (stage by stage, "
                  "one-sided) or together")
      ->check(CLI::IsMember({"auto", "staggered", "together"}));
  sub->add_option("--foreign-rows", o->foreign_rows,
                  "Torus foreign rows over a pulled K/V set (one segment per stage, ring inside machines): auto "
                  "(the planner), by-block (our Torus block first, then the ring peers' blocks) or by-set (the "
                  "whole set in one call)")
      ->check(CLI::IsMember({"auto", "by-block", "by-set"}));
  sub->add_option("--ring-share", o->ring_share,
                  "a lone one-sided ring inside the machine: auto (the planner), on (ranks that finish first take "
                  "blocks of work from the others' last call while it runs) or off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  sub->add_option("--ring-heads-per-step", o->ring_heads_per_step,
                  "a one-sided ring inside the machine: pull the ring peers' K/V (beside Torus stages their home K/V; "
                  "with the local diagonal on two machines their blocks of the first call's head block) in steps of "
                  "this many heads and take every block in one call that waits for each head's step (0: whole blocks "
                  "and two calls; -1: the planner decides)")
      ->check(CLI::Range(-1, 1 << 20));
  sub->add_option("--ring-first-wave-heads", o->ring_first_wave_heads,
                  "pulled by heads: how many of the first heads come peer by peer (0: about the call's first wave; "
                  "rounded up to whole steps)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--compute-lanes", o->compute_lanes,
                  "meshes with Torus stages: run the calls of foreign rows alone on a second compute stream beside our "
                  "own rows' calls (2), or every call in issue order (1; 0: the layer's choice)")
      ->check(CLI::Range(0, 2));
  sub->add_option("--merge-sets", o->merge_sets,
                  "Torus foreign rows over the pulled K/V sets (one segment per stage): auto (the planner), merged "
                  "(groups of doubling size, one call each) or each (one call per set)")
      ->check(CLI::IsMember({"auto", "merged", "each"}));
  sub->add_option("--local-diagonal", o->diagonal,
                  "one-sided Torus without Ulysses: auto (the planner), on (each rank computes its own rows against "
                  "its own machine's keys for every head; its Torus peers push partial outputs merged by lse) or off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  sub->add_option("--sustain-s", o->sustain_s,
                  "seconds of its own load before each timing (the one-GPU layer, the compute share, every layer), "
                  "on top of the warm-ups: each is timed in the state its own sustained load brings the power-capped "
                  "GPUs to, whatever ran before it")
      ->check(finite_number(0, 60));
  sub->add_option("--balance", o->balance,
                  "row loans for a lone one-sided ring inside the machine (faster GPUs compute some of the slower "
                  "GPUs' rows): off; layer (each rank's speed in the layer itself, its attention calls' time in "
                  "traced forwards after the warm-ups, as far as three measurements agree); or share (speeds from "
                  "each rank's compute-share time, not with --no-concurrent)")
      ->check(CLI::IsMember({"off", "layer", "share"}));
  sub->add_option("--rank-speeds", o->rank_speeds,
                  "row loans by these relative speeds, one per rank (comma list), for such rings")
      ->delimiter(',')
      ->check(finite_number(0, HUGE_VAL, true));
  sub->add_option("--pause-s", o->pause_s,
                  "idle seconds after the one-GPU baseline and the compute share, before the layers (the baseline "
                  "loads GPU 0 alone, and a GPU just loaded clocks lower under its power cap)")
      ->check(finite_number(0, 60));
  sub->add_option("--torus-chunks", o->torus_chunks,
                  "row segments per Torus transfer (-1: planner decides; 0: up to 4 as call sizes allow)")
      ->check(finite_number(-1, 1024));
  sub->add_option("-w,--warmup", o->warmup, "Warm-up iterations")->check(finite_number(0, 1e6));
  sub->add_option("-n,--iters", o->iters, "Timed iterations (median)")->check(finite_number(1, 1e6));
  sub->add_flag("!--no-single", o->single, "Skip timing the one-GPU layer");
  sub->add_flag("!--no-concurrent", o->concurrent,
                "Skip timing each rank's compute share (own rows, all keys) with all ranks at once");
  sub->add_flag("--free-links", o->free_links,
                "Time each multi-machine case again with the same plan and the inter-machine links at NVLink speed "
                "(the layer's compute without the emulated links; JSON free_links_ms)");
  sub->add_flag("--trace", o->trace,
               "Print every rank's timeline of the last timed forward of each case (attention calls, copies, "
               "gaps, transfer completions)");
  sub->add_option("--seed", o->seed, "Input seed");
  sub->add_option("--tol-rel", o->tol_rel, "Relative L2 tolerance vs the one-GPU result")
      ->check(finite_number(0, HUGE_VAL));
  sub->add_option("--tol-abs", o->tol_abs, "Max-abs tolerance vs the one-GPU result")
      ->check(finite_number(0, HUGE_VAL));
  sub->add_option("--json", o->json,
                  "Append one JSON object per row to this file (rank 0); plan_* fields are the configuration the "
                  "layer ran with (plan_torus_chunks 0: the layer picked the segments by call size; "
                  "torus_segments: what it picked)");
  sub->add_option("--label", o->label, "Label copied into the JSON rows (e.g. the model)");
  sub->callback([o] {
    const int rc = run_attention(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace sf::cli
