// `streamfusion attention`: run one attention layer for each scheme on CPU ranks (threads), check every
// rank's output against the float64 reference, count bytes per link class, and time it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

#include "commands.h"
#include "shape_options.h"
#include "streamfusion/layer_check.h"

namespace sf::cli {
namespace {

struct AttentionOptions {
  ShapeOptions shape;
  std::string backend = "threads";
  bool check = true;
  int warmup = 1, iterations = 3;
  uint64_t seed = 2026;
  uint64_t chaos = 0;
};

double tolerance(DType t) { return t == DType::kF32 ? 1e-5 : t == DType::kF16 ? 5e-3 : 2e-2; }

int run_attention(const AttentionOptions& o) {
  if (o.backend != "threads")
    return report_error(invalid_argument(
        "--backend " + o.backend + " is not available in `attention`; it runs CPU ranks as threads (--backend threads). "
        "GPU backends run one process per GPU: see `streamfusion launch` and `streamfusion gpu-attention`"));
  if (o.warmup < 0 || o.iterations < 1)
    return report_error(invalid_argument("--warmup must be ≥ 0 and --iters ≥ 1, found " + std::to_string(o.warmup) +
                                         " and " + std::to_string(o.iterations)));
  Result<std::vector<Plan>> plans = o.shape.plans();
  if (!plans) return report_error(plans.status());
  const Topology topo = *o.shape.topo();
  const AttentionShape shape = *o.shape.shape();
  // CPU ranks hold the global Q/K/V, every rank's slices, workspaces and the float64 reference in host
  // memory: refuse a layer that cannot fit instead of dying in the allocator.
  const double elems = static_cast<double>(shape.batch) * shape.seq_len * shape.heads * shape.head_dim;
  const double need = elems * (12.0 * dtype_size(shape.dtype) + (o.check ? 8.0 : 0.0) + 12.0);
  const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  if (have > 0 && need > 0.6 * have) {
    char msg[256];
    std::snprintf(msg, sizeof msg, "this layer needs about %.1f GiB on CPU ranks but the machine has %.1f GiB; use a "
                  "smaller --seq/--batch or a GPU backend", need / (1 << 30), have / (1 << 30));
    return report_error(invalid_argument(msg));
  }
  const LayerInputs in = make_random_inputs(shape, o.seed);
  std::vector<double> ref;
  if (o.check) ref = reference_output(in);
  ThreadRunOptions run;
  run.warmup = o.warmup;
  run.iterations = o.iterations;
  run.world.chaos_seed = o.chaos;

  const double tol = tolerance(shape.dtype);
  int wrong = 0;
  nlohmann::json rows = nlohmann::json::array();
  if (!o.shape.json) {
    std::printf("# streamfusion attention: %s on %s, backend threads (%d CPU ranks as threads; machines emulated "
                "in one process, no link timing), %u hardware threads\n",
                shape.to_string().c_str(), topo.to_string().c_str(), topo.world_size(), std::thread::hardware_concurrency());
    std::printf("# warm-up %d, iterations %d, median wall time of the slowest rank; check vs float64 reference: %s\n",
                o.warmup, o.iterations, o.check ? "on" : "off");
    // inter barriers: barriers with a member on another machine, per GPU per forward (one-sided schemes meet
    // that way; two-sided ones wait on messages instead and show 0). calls: attention calls per GPU per
    // forward (on a GPU each costs its tiles' set-up and a partly empty last wave).
    std::printf("%-8s %-10s %-10s %13s %13s %14s %6s %11s %11s %6s\n", "scheme", "mesh", "transport",
                "intra MB/GPU", "inter MB/GPU", "inter barriers", "calls", "time ms", "rel err", "check");
  }
  for (const Plan& p : *plans) {
    Result<ThreadRunResult> r = run_layer_on_threads(topo, in, ref, p.config, run);
    if (!r) return report_error(r.status());
    LinkBytes mean;
    for (const LinkBytes& b : r->bytes) mean += b;
    uint64_t inter_barriers = 0;  // the most any rank took
    for (const BarrierCounts& b : r->barriers) inter_barriers = std::max(inter_barriers, b.inter);
    int64_t calls = 0;  // the most any rank made
    for (int64_t c : r->attention_calls) calls = std::max(calls, c);
    const double P = topo.world_size();
    const bool ok = !o.check || (r->error.non_finite == 0 && r->error.rel() < tol);
    wrong += !ok;
    if (o.shape.json) {
      rows.push_back({{"scheme", scheme_name(p.scheme)}, {"mesh", p.config.mesh.to_string()},
                      {"transport", transport_name(p.config.transport)}, {"intra_bytes_per_gpu", mean.intra() / P},
                      {"inter_bytes_per_gpu", mean.inter() / P}, {"inter_barriers_per_gpu", inter_barriers}, {"attention_calls_per_gpu", calls},
                      {"median_ms", r->median_ms()},
                      {"rel_error", o.check ? nlohmann::json(r->error.rel()) : nlohmann::json()},
                      {"non_finite", r->error.non_finite}, {"ok", ok}});
    } else {
      char err[32] = "-";
      if (o.check) std::snprintf(err, sizeof err, "%.2e", r->error.rel());
      std::printf("%-8s %-10s %-10s %13.3f %13.3f %14llu %6lld %11.2f %11s %6s\n", scheme_name(p.scheme),
                  p.config.mesh.to_string().c_str(), transport_name(p.config.transport), mean.intra() / P / 1e6,
                  mean.inter() / P / 1e6, static_cast<unsigned long long>(inter_barriers),
                  static_cast<long long>(calls), r->median_ms(), err, !o.check ? "-" : ok ? "ok" : "WRONG");
    }
  }
  if (o.shape.json) {
    std::cout << nlohmann::json{{"topology", topo.to_string()}, {"shape", shape.to_string()}, {"backend", "threads"},
                                {"warmup", o.warmup}, {"iterations", o.iterations}, {"tolerance", tol},
                                {"results", rows}, {"wrong", wrong}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("# %d wrong (tolerance %.0e relative to the largest reference value)\n", wrong, tol);
  }
  return wrong ? 1 : 0;
}

}  // namespace

void register_attention(CLI::App& app) {
  auto o = std::make_shared<AttentionOptions>();
  CLI::App* cmd = app.add_subcommand("attention", "run one attention layer per scheme, checked and timed");
  o->shape.add_to(cmd);
  cmd->add_option("--backend", o->backend, "threads (CPU ranks)")->capture_default_str();
  cmd->add_flag("--check,!--no-check", o->check, "compare with the float64 reference")->capture_default_str();
  cmd->add_option("-w,--warmup", o->warmup, "untimed forwards before timing")->capture_default_str();
  cmd->add_option("-n,--iters", o->iterations, "timed forwards (median reported)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "input seed")->capture_default_str();
  cmd->add_option("--chaos", o->chaos, "seed for randomized one-sided completion order (0 = off)")->capture_default_str();
  cmd->callback([o] { set_exit_code(run_attention(*o)); });
}

}  // namespace sf::cli
