// `streamfusion gpu-attention`: one SpAttention layer per process (run under `launch`, mpirun, torchrun or
// srun). For every shape, topology (emulated when M > 1 on one host), inter-machine bandwidth, scheme and
// transport: checks each rank's output against the one-GPU result computed by the same Device on the full
// tensors (output poisoned before the run), counts bytes per link class, and times warm-up + iterations with
// events (median of the slowest rank). Two baselines per shape: the whole layer on rank 0 alone (`1-GPU ms`), and
// every rank's own rows against all keys with all ranks busy at once (`all-P compute ms`, the compute share under
// the clocks and power of P busy GPUs). Prints a table (rank 0); --json writes one JSON object per row. Each row is
// one case run by attention_case.cpp; this file reads the options, times the baselines and walks the sweep.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gpu_commands.h"
#include "option_lists.h"
#include "gpu_runtime.h"
#include "attention_case.h"
#include "attention_options.h"
#include "attention_timing.h"
#include "streamfusion/planner.h"
#include "streamfusion/sp_attention.h"

namespace sf::cli {
namespace {



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
  SweepTally tally;  // every rank counts alike
  int& skipped = tally.skipped;

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
    const ShapeContext shape_context{o, *ctx, shape, buf, rows, local_bytes, one_gpu_ms, concurrent_ms,
                                     measured_tflops, speeds, real_links};
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
          std::vector<AttentionCase> cases;
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
          const LinkSetting setting{topo, gbps, backend, *rt, rt_free};
          for (const AttentionCase& c : cases) run_case(shape_context, setting, c, &tally);
        }
      }
    }
  }
  // A layer that could not run (out of memory, a mesh the planner refused) is skipped so that a sweep goes on; but a
  // run in which none ran did not do what was asked, and exits non-zero (4).
  const int row_id = tally.row_id;
  const bool all_ok = tally.all_ok;
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
