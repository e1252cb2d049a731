// `streamfusion gpu-links`: checks the emulated machines. Every rank exchanges a buffer with a partner on
// another emulated machine (inter) and with one on its own machine (intra), with emulation off and on, over
// NCCL (send/recv) and NVSHMEM (get). The received bytes are checked exactly (each rank's payload is its own
// seeded sequence), and the achieved bandwidth per direction is compared with the setting: inter within 5 %,
// intra unchanged (within 5 % of the run without emulation). One-sided fan-in: the N GPUs of machine 1 pull from
// rank 0 at once, and each must get the setting / N (rank 0's NIC sends the setting in all). Then, beside an
// attention call that holds every SM, the one-sided link must still deliver at its setting (time_beside_attention).
// On a job that spans hosts nothing is emulated (host_layout.h): the machines are the hosts, and the command only
// measures the real links, intra and inter, each rank against its partner: the inter figure, per GPU and direction,
// is what `gpu-attention --gbps` should tell the planner.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu_commands.h"
#include "option_lists.h"
#include "gpu_runtime.h"

namespace sf::cli {
namespace {

struct LinksOptions {
  std::string topology;  // empty: 2x2 on one host, the hosts (hosts x ranks per host) on several
  std::vector<std::string> gbps = {"50", "6.25"};
  double latency_us = 5.0;
  std::vector<std::string> backends = {"nccl", "nvshmem"};
  std::vector<std::string> sizes_mib = {"64", "256"};
  int warmup = 2, iters = 5;
  int64_t busy_seq = 16384;  // the attention call beside the transfers (0: no such check)
  bool trace = false;        // print rank 0's timeline of one iteration beside the call
  std::string json;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

#define CLI_CHECK(expr) SF_GPU_CLI_CHECK("gpu-links", expr)

// One bandwidth check (rank 0): printed as a table row, returned as its JSON line. pair: intra, inter, or N→1
// (fan-in).
std::string report_bandwidth(const std::string& backend, const std::string& pair, size_t bytes, double gbps,
                             double ms, double achieved, bool exact, const std::string& verdict) {
  char out[512];
  std::snprintf(out, sizeof out, "| %-7s | %-5s | %5zu MiB | %8s | %9.3f ms | %9.2f GB/s | %s |", backend.c_str(),
                pair.c_str(), bytes >> 20, gbps > 0 ? (std::to_string(gbps).substr(0, 5) + " GB/s").c_str() : "off",
                ms, achieved, verdict.c_str());
  std::printf("%s\n", out);
  std::fflush(stdout);
  return nlohmann::ordered_json{{"backend", backend}, {"pair", pair},     {"mib", bytes >> 20}, {"setting_gbps", gbps},
                                {"ms", ms},           {"gbps", achieved}, {"exact", exact},     {"verdict", verdict}}
      .dump();
}

// One attention call on this GPU (Flux-like: 24 heads of 128, bf16) that holds every SM for a few milliseconds.
struct BusyCall {
  std::vector<void*> buffers;
  QChunk q;
  KVChunk kv;
  AttentionProblem p;
};

Status make_busy_call(gpu::GpuContext& ctx, Device& dev, int64_t seq, BusyCall* c) {
  const int64_t H = 24, D = 128, n = seq * H * D;
  void* t[7] = {};
  for (int i = 0; i < 7; ++i) {
    SF_ASSIGN_OR_RETURN(t[i], dev.alloc(static_cast<size_t>(i < 4 ? 2 * n : 4 * (i == 4 ? n : seq * H))));
    c->buffers.push_back(t[i]);
  }
  for (int i = 0; i < 3; ++i) SF_RETURN_IF_ERROR(ctx.fill_normal(t[i], n, DType::kBF16, 77 + i, 0));
  c->q = QChunk{dense_rows(t[0], seq, H, D), static_cast<float*>(t[4]), static_cast<float*>(t[5]),
                static_cast<float*>(t[6]), dense_rows(t[3], seq, H, D)};
  c->kv = KVChunk{dense_rows(t[1], seq, H, D), dense_rows(t[2], seq, H, D)};
  c->p.dtype = DType::kBF16;
  c->p.batch = 1, c->p.heads = H, c->p.head_dim = D;
  c->p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  c->p.q = &c->q, c->p.num_q = 1, c->p.kv = &c->kv, c->p.num_kv = 1;
  c->p.mode = AccumulatorMode::kInit, c->p.finalize = true;
  return Status::ok();
}

// Beside an attention call: four inter-machine transfers are issued, then the call, which holds every SM for
// about twice their emulated time. Each iteration is traced (the moment every transfer's handle was reached, and
// the call's interval): a link that works beside compute delivers the last transfer about its emulated time after
// the call starts, not after the call. Returns "delivered_ms transfer_ms call_alone_ms" for this rank
// (medians; delivered: the last transfer's moment minus the call's start).
Result<std::string> time_beside_attention(gpu::GpuContext& ctx, Comm& comm, Device& dev, const BusyCall& call,
                                          const std::string& backend, double gbps, const SymmetricBuffer& sym,
                                          void* recvbuf, size_t max_bytes, int partner, int from, int warmup, int iters,
                                          bool trace) {
  SF_ASSIGN_OR_RETURN(std::vector<double> alone,
                      ctx.time_iterations([&] { return dev.attention(call.p); }, warmup, iters));
  const double call_ms = median(alone);
  // Half the call's time at the setting, in four chunks of whole MiB.
  const size_t mib = std::max<size_t>(1, static_cast<size_t>(gbps * 1e9 * 0.5 * call_ms * 1e-3 / 4) >> 20);
  const size_t chunk = std::min(mib << 20, max_bytes / 4);
  auto body = [&]() -> Status {
    std::vector<Handle> hs;
    if (backend == "nvshmem") {
      for (int i = 0; i < 4; ++i) {
        SF_ASSIGN_OR_RETURN(Handle h, comm.get(static_cast<char*>(recvbuf) + i * chunk, sym, i * chunk, from, chunk));
        hs.push_back(h);
      }
    } else {
      for (int i = 0; i < 4; ++i) {
        SF_RETURN_IF_ERROR(comm.begin_batch());
        SF_ASSIGN_OR_RETURN(Handle s, comm.send(partner, static_cast<char*>(sym.local) + i * chunk, chunk));
        SF_ASSIGN_OR_RETURN(Handle r, comm.recv(from, static_cast<char*>(recvbuf) + i * chunk, chunk));
        SF_RETURN_IF_ERROR(comm.end_batch());
        hs.push_back(s), hs.push_back(r);
      }
    }
    SF_RETURN_IF_ERROR(dev.attention(call.p));
    return comm.wait_all(hs);
  };
  SF_RETURN_IF_ERROR(comm.barrier_all());
  for (int i = 0; i < warmup; ++i) SF_RETURN_IF_ERROR(body());
  std::vector<double> delivered;
  for (int i = 0; i < iters; ++i) {
    const bool traced = trace && i == iters - 1 && ctx.rank() == 0;
    if (traced) SF_RETURN_IF_ERROR(ctx.keep_link_records(64));
    SF_RETURN_IF_ERROR(ctx.begin_trace());
    SF_RETURN_IF_ERROR(body());
    SF_ASSIGN_OR_RETURN(std::vector<gpu::TraceEntry> entries, ctx.end_trace_entries());
    double last = 0, call_start = -1;
    for (const gpu::TraceEntry& e : entries) {
      if (e.point)
        last = std::max(last, e.end_ms);
      else if (call_start < 0)
        call_start = e.start_ms;
    }
    if (call_start < 0) return internal_error("gpu-links: the traced iteration has no attention call");
    delivered.push_back(last - call_start);
    if (traced) {
      std::printf("# rank 0 beside attention, %s at %g GB/s, %zu MiB x 4:\n%s\n", backend.c_str(), gbps, chunk >> 20,
                  gpu::format_trace(entries).c_str());
      SF_RETURN_IF_ERROR(ctx.synchronize());  // every hold past, so every record has its resumed moment
      std::printf("%s", gpu::format_link_records(ctx.take_link_records()).c_str());
      SF_RETURN_IF_ERROR(ctx.keep_link_records(0));
    }
  }
  const double transfer_ms = 4.0 * static_cast<double>(chunk) / (gbps * 1e6);
  char line[160];
  std::snprintf(line, sizeof line, "%.4f %.4f %.4f", median(delivered), transfer_ms, call_ms);
  return std::string(line);
}

int run_links(const LinksOptions& o) {
  auto env = gpu::read_launch_env();
  if (!env) {
    std::fprintf(stderr, "gpu-links: %s\n", env.status().to_string().c_str());
    return 1;
  }
  const int rank = env->rank;
  Result<Topology> topo = Topology::parse(o.topology.empty() ? "2x2" : o.topology);
  if (!topo) {
    std::fprintf(stderr, "gpu-links: %s\n", topo.status().to_string().c_str());
    return 2;
  }
  const auto backends = split_list(o.backends);
  for (const std::string& b : backends)
    if (b != "nccl" && b != "nvshmem") {
      std::fprintf(stderr, "gpu-links: --backend takes nccl and nvshmem (a comma list), found '%s'\n", b.c_str());
      return 2;
    }
  // The number lists, read before any GPU starts (option_lists.h).
  auto gbps_list = parse_rates("--gbps", split_list(o.gbps));
  auto sizes_mib = parse_rates("--sizes-mib", split_list(o.sizes_mib));
  for (const Status& st : {gbps_list.status(), sizes_mib.status()})
    if (!st.is_ok()) {
      std::fprintf(stderr, "gpu-links: %s\n", st.to_string().c_str());
      return 2;
    }
  gpu::GpuContextOptions copt;
  copt.nvshmem = std::find(backends.begin(), backends.end(), "nvshmem") != backends.end();
  auto ctx_r = gpu::GpuContext::create(*env, copt);
  if (!ctx_r) {
    std::fprintf(stderr, "[rank %d] gpu-links: %s\n", rank, ctx_r.status().to_string().c_str());
    return 1;
  }
  auto ctx = std::move(ctx_r.value());
  const bool real_links = ctx->spans_hosts();  // then only measured, nothing emulated
  if (real_links && o.topology.empty()) topo = ctx->host_topology();
  const int P = ctx->world_size(), N = topo->gpus_per_machine;
  if (topo->world_size() != P) {
    std::fprintf(stderr, "gpu-links: topology %s needs %d processes, %d were launched\n", topo->to_string().c_str(),
                 topo->world_size(), P);
    return 2;
  }
  if (rank == 0)
    std::printf("# gpu-links on %s, topology %s (%s)\n", ctx->describe().c_str(), topo->to_string().c_str(),
                real_links ? "real links between the hosts: measured, nothing emulated" : "emulated");

  std::vector<double> settings = {0.0};
  if (!real_links) settings.insert(settings.end(), gbps_list->begin(), gbps_list->end());
  std::vector<size_t> sizes;  // whole bf16 elements, at least one
  for (double mib : *sizes_mib) sizes.push_back(std::max<size_t>(2, static_cast<size_t>(mib * (1 << 20)) / 2 * 2));
  const size_t max_bytes = *std::max_element(sizes.begin(), sizes.end());

  std::vector<std::string> lines, beside_rows;
  bool all_ok = true;
  // Unemulated throughput per (backend, pair kind, size): the baseline for "intra untouched".
  std::vector<std::pair<std::string, double>> baseline;
  // Pass 0: bandwidth, intra and inter. Pass 1: beside an attention call, after every bandwidth row (the calls
  // heat the GPUs, and NCCL's copies, made by SMs, would then run at lower clocks than their baseline).
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& backend : backends) {
      for (double gbps : settings) {
        if (pass == 1 && (gbps <= 0 || topo->machines < 2 || o.busy_seq <= 0)) continue;
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
          if (pass == 1) break;
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
            auto all = gpu::gather_strings(
                *ctx, "links/" + backend + "/" + kind + "/" + std::to_string(gbps) + "/" + std::to_string(bytes), line);
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
                char measured[96];
                std::snprintf(measured, sizeof measured, "measured (gpu-attention --gbps %.2f for the planner)", worst);
                verdict = !real_links ? "baseline" : inter ? measured : "measured";
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
              lines.push_back(report_bandwidth(backend, kind, bytes, gbps, worst_ms, worst, all_exact, verdict));
            }
          }
        }
        // Fan-in, one-sided: every GPU of machine 1 pulls from rank 0 at once. Rank 0's NIC sends at the setting
        // in all, so each puller gets the setting / N (a get books its peer's egress too: nic_board.h).
        if (pass == 0 && backend == "nvshmem" && gbps > 0 && topo->machines >= 2 && N >= 2) {
          const bool puller = topo->machine_of(rank) == 1;
          const size_t bytes = sizes.front();
          CLI_CHECK(ctx->reset_links());
          CLI_CHECK(dev.fill(recvbuf, 0xff, bytes));
          auto body = [&]() -> Status {
            if (!puller) return Status::ok();
            SF_ASSIGN_OR_RETURN(Handle h, comm.get(recvbuf, sym, 0, 0, bytes));
            return comm.wait(h);
          };
          CLI_CHECK(comm.barrier_all());
          auto ms_r = ctx->time_iterations(body, o.warmup, o.iters);
          CLI_CHECK(ms_r.status());
          const double ms = median(ms_r.value());
          bool exact = true;
          if (puller) {
            CLI_CHECK(ctx->fill_normal(expect, static_cast<int64_t>(bytes / 2), DType::kBF16, 1000, 0));
            auto cmp = ctx->compare(recvbuf, expect, static_cast<int64_t>(bytes / 2), DType::kBF16);
            CLI_CHECK(cmp.status());
            exact = cmp->max_abs == 0.0 && cmp->non_finite == 0;
          }
          char line[128];
          std::snprintf(line, sizeof line, "%d %.4f %d", puller ? 1 : 0, ms, exact ? 1 : 0);
          auto all = gpu::gather_strings(*ctx, "links/fan-in/" + std::to_string(gbps), line);
          CLI_CHECK(all.status());
          if (rank == 0) {
            double worst_ms = 0;
            bool all_exact = true;
            for (const auto& l : all.value()) {
              int is_puller = 0, ex = 0;
              double t = 0;
              if (std::sscanf(l.c_str(), "%d %lf %d", &is_puller, &t, &ex) == 3 && is_puller) {
                worst_ms = std::max(worst_ms, t);
                all_exact = all_exact && ex == 1;
              }
            }
            const double each = static_cast<double>(bytes) / (worst_ms * 1e6), share = gbps / N;
            const bool ok = std::fabs(each / share - 1.0) <= 0.05 && all_exact;
            const std::string verdict = std::string(ok ? "ok" : "FAIL") + " (" +
                                        std::to_string(each / share * 100).substr(0, 5) + " % of the setting / " +
                                        std::to_string(N) + ")" + (all_exact ? "" : " WRONG DATA");
            all_ok = all_ok && ok;
            const std::string pair = std::to_string(N) + "→1";
            lines.push_back(report_bandwidth(backend, pair, bytes, gbps, worst_ms, each, all_exact, verdict));
          }
        }
        if (pass == 1) {
          const int m = topo->machine_of(rank), n = topo->local_index(rank);
          const int partner = ((m + 1) % topo->machines) * N + n;
          const int from = ((m + topo->machines - 1) % topo->machines) * N + n;
          BusyCall call;
          CLI_CHECK(make_busy_call(*ctx, dev, o.busy_seq, &call));
          auto mine = time_beside_attention(*ctx, comm, dev, call, backend, gbps, sym, recvbuf, max_bytes, partner,
                                            from, o.warmup, o.iters, o.trace);
          CLI_CHECK(mine.status());
          for (void* b : call.buffers) dev.free(b);
          auto all = gpu::gather_strings(*ctx, "links/beside/" + backend + "/" + std::to_string(gbps), mine.value());
          CLI_CHECK(all.status());
          if (rank == 0) {
            double delivered = 0, transfer = 0, alone = 0;  // the rank whose transfers landed last
            for (const auto& l : all.value()) {
              double d, t, a;
              if (std::sscanf(l.c_str(), "%lf %lf %lf", &d, &t, &a) == 3 && d >= delivered)
                delivered = d, transfer = t, alone = a;
            }
            // One-sided gets move on copy engines: the link must deliver during the call, about its emulated time
            // after the call starts (5 %, plus the microseconds of latency and launch). NCCL's kernels need SMs,
            // on a real cluster too: reported, not judged.
            std::string verdict = "reported (NCCL's kernels wait for free SMs)";
            if (backend == "nvshmem") {
              const bool ok = delivered <= 1.05 * transfer + 0.05;
              // Late by less than the call: something between the transfers held them (--trace prints the
              // links' records); past the call's time, they waited for it.
              char late[96];
              std::snprintf(late, sizeof late, "FAIL (%.3f ms late, during the call)", delivered - transfer);
              verdict = ok ? "ok" : delivered >= alone ? "FAIL (the link waited for the call)" : late;
              all_ok = all_ok && ok;
            }
            char out[512];
            std::snprintf(out, sizeof out, "| %-7s | %5s GB/s | %9.3f ms | %9.3f ms | %9.3f ms | %s |", backend.c_str(),
                          std::to_string(gbps).substr(0, 5).c_str(), alone, transfer, delivered, verdict.c_str());
            beside_rows.push_back(out);
            const nlohmann::ordered_json row = {{"backend", backend},        {"beside_attention", true},
                                                {"setting_gbps", gbps},      {"call_ms", alone},
                                                {"transfer_ms", transfer},   {"delivered_ms", delivered},
                                                {"verdict", verdict}};
            lines.push_back(row.dump());
          }
        }
        CLI_CHECK(ctx->synchronize());
        dev.free(recvbuf);
        dev.free(expect);
        CLI_CHECK(comm.free_symmetric(sym));
      }
    }
  if (rank == 0 && !beside_rows.empty()) {
    std::printf(
        "\n# Beside an attention call (S=%lld, 24 heads of 128, every SM busy): four inter-machine transfers "
        "of half the call's time at the setting, issued before it; delivered = the last one's arrival after "
        "the call's start (rank whose landed last, median of the iterations); links clocked by the %s\n",
        static_cast<long long>(o.busy_seq), ctx->emulated_link_clock());
    std::printf(
        "| backend | setting | call alone | transfers at setting | delivered | verdict |\n"
        "|---|---|---|---|---|---|\n");
    for (const auto& r : beside_rows) std::printf("%s\n", r.c_str());
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
  CLI::App* sub =
      app.add_subcommand("gpu-links",
                         "Check emulated machines: achieved inter-machine bandwidth vs the setting, intra untouched "
                         "(run under `launch`); on several hosts, measure the real links");
  sub->add_option("--topology", o->topology,
                  "Emulated MxN (M*N = processes; default 2x2); on a job that spans hosts, the hosts (default)");
  sub->add_option("--gbps", o->gbps, "Inter-machine settings, GB/s per GPU and direction (comma list)");
  sub->add_option("--latency-us", o->latency_us, "Inter-machine latency")->check(finite_number(0, 1e6));
  sub->add_option("--backend", o->backends, "nccl,nvshmem");
  sub->add_option("--sizes-mib", o->sizes_mib, "Transfer sizes in MiB (comma list)");
  sub->add_option("--warmup", o->warmup, "Warm-up iterations")->check(finite_number(0, 1e6));
  sub->add_option("--iters", o->iters, "Timed iterations (median)")->check(finite_number(1, 1e6));
  sub->add_option("--busy-seq", o->busy_seq,
                  "Sequence length of the attention call beside which the links are checked (0: skip)")
      ->check(finite_number(0, 1e9));
  sub->add_flag("--trace", o->trace, "Print rank 0's timeline of one iteration beside the attention call");
  sub->add_option("--json", o->json, "Write JSON lines here (rank 0)");
  sub->callback([o] {
    const int rc = run_links(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace sf::cli
