// `streamfusion gpu-links`: checks the emulated machines. Every rank exchanges a buffer with a partner on
// another emulated machine (inter) and with one on its own machine (intra), with emulation off and on, over
// NCCL (send/recv) and NVSHMEM (get). The received bytes are checked exactly (each rank's payload is its own
// seeded sequence), and the achieved bandwidth per direction is compared with the setting: inter within 5 %,
// intra unchanged (within 5 % of the run without emulation).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gpu_commands.h"
#include "gpu_runtime.h"

namespace sf::cli {
namespace {

struct LinksOptions {
  std::string topology = "2x2";
  std::vector<std::string> gbps = {"50", "6.25"};
  double latency_us = 5.0;
  std::vector<std::string> backends = {"nccl", "nvshmem"};
  std::vector<std::string> sizes_mib = {"64", "256"};
  int warmup = 2, iters = 5;
  std::string json;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

#define CLI_CHECK(expr) SF_GPU_CLI_CHECK("gpu-links", expr)

int run_links(const LinksOptions& o) {
  auto env = gpu::read_launch_env();
  if (!env) {
    std::fprintf(stderr, "gpu-links: %s\n", env.status().to_string().c_str());
    return 1;
  }
  const int rank = env->rank;
  auto topo = Topology::parse(o.topology);
  if (!topo) {
    std::fprintf(stderr, "gpu-links: %s\n", topo.status().to_string().c_str());
    return 2;
  }
  const auto backends = split_list(o.backends);
  gpu::GpuContextOptions copt;
  copt.nvshmem = std::find(backends.begin(), backends.end(), "nvshmem") != backends.end();
  auto ctx_r = gpu::GpuContext::create(*env, copt);
  if (!ctx_r) {
    std::fprintf(stderr, "[rank %d] gpu-links: %s\n", rank, ctx_r.status().to_string().c_str());
    return 1;
  }
  auto ctx = std::move(ctx_r.value());
  const int P = ctx->world_size(), N = topo->gpus_per_machine;
  if (topo->world_size() != P) {
    std::fprintf(stderr, "gpu-links: topology %s needs %d processes, %d were launched\n", o.topology.c_str(),
                 topo->world_size(), P);
    return 2;
  }
  if (rank == 0) std::printf("# gpu-links on %s, topology %s (emulated)\n", ctx->describe().c_str(), o.topology.c_str());

  std::vector<double> settings = {0.0};
  for (const auto& g : split_list(o.gbps)) settings.push_back(std::stod(g));
  std::vector<size_t> sizes;
  for (const auto& s : split_list(o.sizes_mib)) sizes.push_back(static_cast<size_t>(std::stod(s) * (1 << 20)));
  const size_t max_bytes = *std::max_element(sizes.begin(), sizes.end());

  std::vector<std::string> lines;
  bool all_ok = true;
  // Unemulated throughput per (backend, pair kind, size): the baseline for "intra untouched".
  std::vector<std::pair<std::string, double>> baseline;
  for (const auto& backend : backends) {
    for (double gbps : settings) {
      gpu::EmulationSettings emu{gbps, gbps > 0 ? o.latency_us : 0.0};
      auto rt_r = ctx->make_runtime(backend, *topo, emu);
      CLI_CHECK(rt_r.status());
      auto rt = std::move(rt_r.value());
      Comm& comm = rt->comm();
      Device& dev = rt->device();
      auto sym_r = comm.alloc_symmetric(max_bytes);
      CLI_CHECK(sym_r.status());
      SymmetricBuffer sym = sym_r.value();
      auto recv_r = dev.alloc(max_bytes);
      CLI_CHECK(recv_r.status());
      void* recvbuf = recv_r.value();
      auto expect_r = dev.alloc(max_bytes);
      CLI_CHECK(expect_r.status());
      void* expect = expect_r.value();
      // Payload: this rank's own seeded sequence, as 16-bit elements.
      CLI_CHECK(ctx->fill_normal(sym.local, static_cast<int64_t>(max_bytes / 2), DType::kBF16, 1000 + rank, 0));
      CLI_CHECK(ctx->synchronize());
      CLI_CHECK(comm.barrier_all());
      for (const char* kind : {"intra", "inter"}) {
        const bool inter = std::string(kind) == "inter";
        if (inter && topo->machines < 2) continue;
        if (!inter && N < 2) continue;
        const int m = topo->machine_of(rank), n = topo->local_index(rank);
        const int partner = inter ? ((m + 1) % topo->machines) * N + n : m * N + (n ^ 1);
        const int from = inter ? ((m + topo->machines - 1) % topo->machines) * N + n : partner;
        if (!inter && (n ^ 1) >= N) continue;
        for (size_t bytes : sizes) {
          CLI_CHECK(ctx->reset_links());
          CLI_CHECK(dev.fill(recvbuf, 0xff, bytes));
          auto body = [&]() -> Status {
            if (backend == "nvshmem") {
              SF_ASSIGN_OR_RETURN(Handle h, comm.get(recvbuf, sym, 0, from, bytes));
              return comm.wait(h);
            }
            SF_RETURN_IF_ERROR(comm.begin_batch());
            SF_ASSIGN_OR_RETURN(Handle hs, comm.send(partner, sym.local, bytes));
            SF_ASSIGN_OR_RETURN(Handle hr, comm.recv(from, recvbuf, bytes));
            SF_RETURN_IF_ERROR(comm.end_batch());
            SF_RETURN_IF_ERROR(comm.wait(hs));
            return comm.wait(hr);
          };
          CLI_CHECK(comm.barrier_all());
          auto ms_r = ctx->time_iterations(body, o.warmup, o.iters);
          CLI_CHECK(ms_r.status());
          const double ms = median(ms_r.value());
          // Exact routing: what arrived is the sender's sequence.
          CLI_CHECK(ctx->fill_normal(expect, static_cast<int64_t>(bytes / 2), DType::kBF16, 1000 + from, 0));
          auto cmp = ctx->compare(recvbuf, expect, static_cast<int64_t>(bytes / 2), DType::kBF16);
          CLI_CHECK(cmp.status());
          const bool exact = cmp->max_abs == 0.0 && cmp->non_finite == 0;
          const double achieved = static_cast<double>(bytes) / (ms * 1e6);  // GB/s
          char line[512];
          std::snprintf(line, sizeof line, "%s %s %zu %.3f %.4f %.2f %d", backend.c_str(), kind, bytes >> 20, gbps,
                        ms, achieved, exact ? 1 : 0);
          auto all = gpu::gather_strings(*ctx, "links/" + backend + "/" + kind + "/" + std::to_string(gbps) + "/" +
                                                   std::to_string(bytes),
                                         line);
          CLI_CHECK(all.status());
          if (rank == 0) {
            // Slowest rank's throughput; every rank's payload exact.
            double worst = 1e30, worst_ms = 0;
            bool all_exact = true;
            for (const auto& l : all.value()) {
              char b[32], k[16];
              size_t mib;
              double g, t, a;
              int ex;
              if (std::sscanf(l.c_str(), "%31s %15s %zu %lf %lf %lf %d", b, k, &mib, &g, &t, &a, &ex) == 7) {
                if (a < worst) {
                  worst = a;
                  worst_ms = t;
                }
                all_exact = all_exact && ex == 1;
              }
            }
            std::string verdict;
            const std::string key = backend + "/" + kind + "/" + std::to_string(bytes);
            if (gbps == 0.0) {
              baseline.emplace_back(key, worst);
              verdict = "baseline";
            } else if (inter) {
              const double ratio = worst / gbps;
              const bool ok = std::fabs(ratio - 1.0) <= 0.05;
              verdict = std::string(ok ? "ok" : "FAIL") + " (" + std::to_string(ratio * 100).substr(0, 5) +
                        " % of setting)";
              all_ok = all_ok && ok;
            } else {
              double base = 0;
              for (auto& [k2, v] : baseline)
                if (k2 == key) base = v;
              const double ratio = base > 0 ? worst / base : 0;
              const bool ok = ratio >= 0.95;
              verdict = std::string(ok ? "ok" : "FAIL") + " (" + std::to_string(ratio * 100).substr(0, 5) +
                        " % of unemulated)";
              all_ok = all_ok && ok;
            }
            if (!all_exact) {
              verdict += " WRONG DATA";
              all_ok = false;
            }
            char out[512];
            std::snprintf(out, sizeof out, "| %-7s | %-5s | %5zu MiB | %8s | %9.3f ms | %9.2f GB/s | %s |",
                          backend.c_str(), kind, bytes >> 20,
                          gbps > 0 ? (std::to_string(gbps).substr(0, 5) + " GB/s").c_str() : "off", worst_ms,
                          worst, verdict.c_str());
            std::printf("%s\n", out);
            std::fflush(stdout);
            char js[512];
            std::snprintf(js, sizeof js,
                          "{\"backend\":\"%s\",\"pair\":\"%s\",\"mib\":%zu,\"setting_gbps\":%.3f,\"ms\":%.4f,"
                          "\"gbps\":%.3f,\"exact\":%s,\"verdict\":\"%s\"}",
                          backend.c_str(), kind, bytes >> 20, gbps, worst_ms, worst, all_exact ? "true" : "false",
                          verdict.c_str());
            lines.push_back(js);
          }
        }
      }
      CLI_CHECK(ctx->synchronize());
      dev.free(recvbuf);
      dev.free(expect);
      CLI_CHECK(comm.free_symmetric(sym));
    }
  }
  if (rank == 0) {
    if (!o.json.empty()) {
      std::ofstream f(o.json);
      for (auto& l : lines) f << l << "\n";
    }
    std::printf("# gpu-links: %s\n", all_ok ? "all checks passed" : "SOME CHECKS FAILED");
  }
  auto verdicts = gpu::gather_strings(*ctx, "links/verdict", all_ok ? "1" : "0");
  CLI_CHECK(verdicts.status());
  if (rank == 0) return all_ok ? 0 : 3;
  return 0;
}

}  // namespace

void register_gpu_links_command(CLI::App& app) {
  auto o = std::make_shared<LinksOptions>();
  CLI::App* sub = app.add_subcommand(
      "gpu-links", "Check emulated machines: achieved inter-machine bandwidth vs the setting, intra untouched "
                   "(run under `launch`)");
  sub->add_option("--topology", o->topology, "Emulated MxN (M*N = processes)");
  sub->add_option("--gbps", o->gbps, "Inter-machine settings, GB/s per GPU and direction (comma list)");
  sub->add_option("--latency-us", o->latency_us, "Inter-machine latency");
  sub->add_option("--backend", o->backends, "nccl,nvshmem");
  sub->add_option("--sizes-mib", o->sizes_mib, "Transfer sizes in MiB (comma list)");
  sub->add_option("--warmup", o->warmup, "Warm-up iterations");
  sub->add_option("--iters", o->iters, "Timed iterations (median)");
  sub->add_option("--json", o->json, "Write JSON lines here (rank 0)");
  sub->callback([o] {
    const int rc = run_links(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace sf::cli
