// Multi-GPU tests (tier 2), one process per GPU, started by `streamfusion-gpu launch -n P -- sf_gpu_multi_test`.
//  1. Exchange routing on both backends and both lanes: every payload is the sender's seeded sequence for that
//     receiver, so a misrouted or partial message fails exactly (DeepEP-style); byte counters vs the sum of
//     what was sent per link class.
//  2. Every scheme × transport (two-sided on NCCL, one-sided on NVSHMEM) on every topology (M > 1 emulated):
//     output vs the one-GPU result of the same Device (bf16 tolerance, poisoned output), and each rank's byte
//     counters equal to the CPU threads backend's for the same configuration.
//  3. --fault: rank 1 exits right after start-up; the others must end with a message naming their rank and the
//     operation (NCCL's own error, or the watchdog's timeout if NCCL keeps waiting), never hang; --fault nvshmem
//     does the same with an NVSHMEM barrier, which only the watchdog can end.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "../../scoped_env.h"
#include "gpu_commands.h"
#include "gpu_runtime.h"
#include "streamfusion/layer_check.h"
#include "streamfusion/planner.h"
#include "streamfusion/sp_attention.h"

namespace {

using namespace sf;

int g_rank = 0;
int g_failures = 0;

#define EXPECT(cond, ...)                                             \
  do {                                                                \
    if (!(cond)) {                                                    \
      ++g_failures;                                                   \
      std::fprintf(stderr, "[rank %d] FAIL %s:%d: ", g_rank, __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                              \
      std::fprintf(stderr, "\n");                                     \
    }                                                                 \
  } while (0)

#define REQUIRE_OK(expr)                                                                              \
  do {                                                                                                \
    ::sf::Status st_ = (expr);                                                                        \
    if (!st_.is_ok()) {                                                                               \
      std::fprintf(stderr, "[rank %d] FATAL %s:%d: %s\n", g_rank, __FILE__, __LINE__, st_.to_string().c_str()); \
      std::exit(1);                                                                                   \
    }                                                                                                 \
  } while (0)

template <typename T>
T take(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "[rank %d] FATAL: %s: %s\n", g_rank, what, r.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(r.value());
}

// Elements (bf16) of the message from `from` to `to`: sizes differ per pair so a swapped message shows.
int64_t msg_elems(int from, int to) { return 4096 + 97 * from + 13 * to; }
uint64_t msg_seed(int from, int to, int round) { return 100000ull * round + 1000ull * from + to; }

void test_exchange(gpu::GpuContext& ctx, const std::string& backend, const Topology& topo, double gbps) {
  const int P = ctx.world_size(), me = ctx.rank();
  auto rt = take(ctx.make_runtime(backend, topo, gpu::EmulationSettings{gbps, 5.0}), "make_runtime");
  Comm& comm = rt->comm();
  Device& dev = rt->device();
  const int64_t max_elems = msg_elems(P, P);
  const size_t slot_bytes = static_cast<size_t>(max_elems) * 2;
  SymmetricBuffer inbox = take(comm.alloc_symmetric(slot_bytes * P), "alloc_symmetric");
  void* outbox = take(dev.alloc(slot_bytes * P), "alloc");
  void* expect = take(dev.alloc(slot_bytes), "alloc");
  std::vector<Lane> lanes = {Lane::kMain, Lane::kRing};
  for (int round = 0; round < 2; ++round) {
    const Lane lane = lanes[static_cast<size_t>(round)];
    REQUIRE_OK(dev.fill(inbox.local, 0xff, slot_bytes * P));
    for (int p = 0; p < P; ++p) {
      REQUIRE_OK(ctx.fill_normal(static_cast<char*>(outbox) + slot_bytes * p, msg_elems(me, p), DType::kBF16,
                                 msg_seed(me, p, round), 0));
    }
    REQUIRE_OK(ctx.synchronize());
    REQUIRE_OK(comm.barrier_all(lane));
    comm.reset_counters();
    LinkBytes expected_bytes;
    std::vector<Handle> hs;
    const bool one_sided = backend == "nvshmem" && round == 1;  // nvshmem: round 0 two-sided, round 1 puts
    if (!one_sided) REQUIRE_OK(comm.begin_batch());
    for (int p = 0; p < P; ++p) {
      if (p == me) continue;
      const size_t n = static_cast<size_t>(msg_elems(me, p)) * 2;
      expected_bytes.bytes[static_cast<int>(topo.link(me, p))] += n;
      if (one_sided) {
        hs.push_back(take(comm.put(inbox, slot_bytes * me, p, static_cast<char*>(outbox) + slot_bytes * p, n, lane), "put"));
      } else {
        hs.push_back(take(comm.send(p, static_cast<char*>(outbox) + slot_bytes * p, n, lane), "send"));
        hs.push_back(take(comm.recv(p, static_cast<char*>(inbox.local) + slot_bytes * p,
                                    static_cast<size_t>(msg_elems(p, me)) * 2, lane), "recv"));
      }
    }
    if (!one_sided) REQUIRE_OK(comm.end_batch());
    REQUIRE_OK(comm.wait_all(hs));
    if (one_sided) REQUIRE_OK(comm.barrier_all(lane));
    REQUIRE_OK(ctx.synchronize());
    for (int p = 0; p < P; ++p) {
      if (p == me) continue;
      REQUIRE_OK(ctx.fill_normal(expect, msg_elems(p, me), DType::kBF16, msg_seed(p, me, round), 0));
      auto c = take(ctx.compare(static_cast<char*>(inbox.local) + slot_bytes * p, expect, msg_elems(p, me), DType::kBF16), "compare");
      EXPECT(c.max_abs == 0.0 && c.non_finite == 0, "%s %s round %d: message from rank %d to %d differs (max abs %g, %lld non-finite)",
             backend.c_str(), topo.to_string().c_str(), round, p, me, c.max_abs, static_cast<long long>(c.non_finite));
    }
    EXPECT(comm.bytes_moved().intra() == expected_bytes.intra() && comm.bytes_moved().inter() == expected_bytes.inter(),
           "%s %s: counted %llu/%llu intra/inter bytes, sent %llu/%llu", backend.c_str(), topo.to_string().c_str(),
           (unsigned long long)comm.bytes_moved().intra(), (unsigned long long)comm.bytes_moved().inter(),
           (unsigned long long)expected_bytes.intra(), (unsigned long long)expected_bytes.inter());
  }
  if (backend == "nvshmem") {
    // Gets from every peer, then group barriers over strided (across machines) and contiguous groups.
    REQUIRE_OK(ctx.fill_normal(inbox.local, max_elems, DType::kBF16, msg_seed(me, me, 7), 0));
    REQUIRE_OK(ctx.synchronize());
    REQUIRE_OK(comm.barrier_all());
    for (int p = 0; p < P; ++p) {
      Handle h = take(comm.get(outbox, inbox, 0, p, static_cast<size_t>(max_elems) * 2, Lane::kRing), "get");
      REQUIRE_OK(comm.wait(h));
      REQUIRE_OK(ctx.fill_normal(expect, max_elems, DType::kBF16, msg_seed(p, p, 7), 0));
      auto c = take(ctx.compare(outbox, expect, max_elems, DType::kBF16), "compare");
      EXPECT(c.max_abs == 0.0 && c.non_finite == 0, "nvshmem get from rank %d wrong", p);
    }
    REQUIRE_OK(comm.barrier_all());
    const int N = topo.gpus_per_machine, M = topo.machines;
    std::vector<int> machine_group, strided_group;
    for (int n = 0; n < N; ++n) machine_group.push_back(topo.machine_of(me) * N + n);
    for (int m = 0; m < M; ++m) strided_group.push_back(m * N + topo.local_index(me));
    // Groups progress independently (a member of one machine group may start the strided phase while another
    // machine group is still checking), so each phase writes its own slot and the phases are fenced. First with
    // the signal barrier, then, once every group is prepared (NVSHMEM teams, one per group and lane), on both
    // lanes with the teams.
    std::vector<std::vector<int>> every_group;
    for (int m = 0; m < M; ++m) {
      every_group.emplace_back();
      for (int n = 0; n < N; ++n) every_group.back().push_back(m * N + n);
    }
    for (int n = 0; n < N; ++n) {
      every_group.emplace_back();
      for (int m = 0; m < M; ++m) every_group.back().push_back(m * N + n);
    }
    size_t phase = 0;
    for (int prepared = 0; prepared < 2; ++prepared) {
      if (prepared) REQUIRE_OK(comm.prepare_barriers(every_group));  // collective
      for (const Lane lane : {Lane::kMain, Lane::kRing}) {
        if (!prepared && lane == Lane::kRing) continue;
        for (const auto* group : {&machine_group, &strided_group}) {
          const size_t slot = phase++ * 2048;
          REQUIRE_OK(comm.barrier_all());
          for (int it = 0; it < 3; ++it) {
            // Each member puts a token into the next member's inbox, barrier, checks the token it got.
            const size_t k = static_cast<size_t>(std::find(group->begin(), group->end(), me) - group->begin());
            const int next = (*group)[(k + 1) % group->size()];
            const int prev = (*group)[(k + group->size() - 1) % group->size()];
            REQUIRE_OK(ctx.fill_normal(outbox, 1024, DType::kBF16, msg_seed(me, next, 20 + it), 0));
            Handle h = take(comm.put(inbox, slot, next, outbox, 2048, lane), "put");
            (void)h;
            REQUIRE_OK(comm.barrier(*group, lane));
            REQUIRE_OK(ctx.fill_normal(expect, 1024, DType::kBF16, msg_seed(prev, me, 20 + it), 0));
            auto c = take(ctx.compare(static_cast<char*>(inbox.local) + slot, expect, 1024, DType::kBF16), "compare");
            EXPECT(c.max_abs == 0.0,
                   "group barrier of %zu ranks (%s, lane %d): token from rank %d not visible after the barrier",
                   group->size(), prepared ? "prepared" : "signals", static_cast<int>(lane), prev);
            REQUIRE_OK(comm.barrier(*group, lane));  // nobody overwrites before everyone has read
          }
        }
      }
    }
    // Arrival signals: every rank puts a token into the next rank's inbox with a signal and waits (on its compute
    // stream, no barrier) for the previous rank's; the token is there once the word is. Across emulated machines
    // the signal follows the link's hold.
    SymmetricBuffer tokens = take(comm.alloc_symmetric(3 * 2048), "alloc_symmetric");
    SymmetricBuffer sig = take(comm.alloc_signals(static_cast<size_t>(P)), "alloc_signals");
    const int next = (me + 1) % P, prev = (me + P - 1) % P;
    for (int it = 0; it < 3; ++it) {
      const size_t slot = static_cast<size_t>(it) * 2048;
      REQUIRE_OK(ctx.fill_normal(outbox, 1024, DType::kBF16, msg_seed(me, next, 40 + it), 0));
      Handle h = take(comm.put_signal(tokens, slot, next, outbox, 2048, sig, static_cast<size_t>(me),
                                      static_cast<uint64_t>(it + 1)), "put_signal");
      (void)h;
      REQUIRE_OK(comm.wait_signal(sig, static_cast<size_t>(prev), static_cast<uint64_t>(it + 1)));
      REQUIRE_OK(ctx.fill_normal(expect, 1024, DType::kBF16, msg_seed(prev, me, 40 + it), 0));
      auto c = take(ctx.compare(static_cast<char*>(tokens.local) + slot, expect, 1024, DType::kBF16), "compare");
      EXPECT(c.max_abs == 0.0 && c.non_finite == 0,
             "put_signal round %d: token from rank %d not there once its signal was (max abs %g)", it, prev,
             c.max_abs);
    }
    REQUIRE_OK(comm.barrier_all());
    REQUIRE_OK(comm.free_symmetric(sig));
    REQUIRE_OK(comm.free_symmetric(tokens));
  }
  REQUIRE_OK(ctx.synchronize());
  dev.free(outbox);
  dev.free(expect);
  REQUIRE_OK(comm.free_symmetric(inbox));
  if (ctx.rank() == 0) std::printf("exchange %-7s %s: done\n", backend.c_str(), topo.to_string().c_str());
}

// Speeds for the row-loan variant: forward 0 has rank 0 slow, forward 1 the last rank.
std::vector<double> loan_test_speeds(int P, int forward) {
  std::vector<double> v(static_cast<size_t>(P), 1.0);
  v[forward == 0 ? 0 : static_cast<size_t>(P - 1)] = 0.6;
  if (P > 2) v[1] = 1.25;
  return v;
}

struct LayerCase {
  AttentionShape shape;
  LayerInputs inputs;
  std::vector<double> ref;
};

void test_layers(gpu::GpuContext& ctx, const LayerCase& lc, const std::vector<Topology>& topos, double gbps,
                 bool cpu_bytes) {
  const int P = ctx.world_size(), me = ctx.rank();
  const AttentionShape& sh = lc.shape;
  Device& dev = ctx.device();
  const int64_t rows = seq_count(sh.seq_len, P, me);
  const size_t es = static_cast<size_t>(dtype_size(sh.dtype));
  const size_t local_bytes = static_cast<size_t>(sh.batch * rows * sh.heads * sh.head_dim) * es;
  const size_t full_bytes = static_cast<size_t>(sh.batch * sh.seq_len * sh.heads * sh.head_dim) * es;
  // Inputs from the CPU harness (the same bytes the threads backend sees).
  std::vector<char> q = slice_rows(lc.inputs.q, sh, P, me), k = slice_rows(lc.inputs.k, sh, P, me),
                    v = slice_rows(lc.inputs.v, sh, P, me);
  void* dq = take(dev.alloc(local_bytes), "alloc");
  void* dk = take(dev.alloc(local_bytes), "alloc");
  void* dv = take(dev.alloc(local_bytes), "alloc");
  void* dout = take(dev.alloc(local_bytes), "alloc");
  void* dref = take(dev.alloc(local_bytes), "alloc");
  void* kfull = take(dev.alloc(full_bytes), "alloc");
  void* vfull = take(dev.alloc(full_bytes), "alloc");
  REQUIRE_OK(dev.copy_to_device(dq, q.data(), local_bytes));
  REQUIRE_OK(dev.copy_to_device(dk, k.data(), local_bytes));
  REQUIRE_OK(dev.copy_to_device(dv, v.data(), local_bytes));
  REQUIRE_OK(dev.copy_to_device(kfull, lc.inputs.k.data(), full_bytes));
  REQUIRE_OK(dev.copy_to_device(vfull, lc.inputs.v.data(), full_bytes));
  {  // One-GPU result of this rank's rows.
    QChunk qc;
    qc.q = dense_rows(dq, rows, sh.heads, sh.head_dim);
    qc.out = dense_rows(dref, rows, sh.heads, sh.head_dim);
    KVChunk kv{dense_rows(kfull, sh.seq_len, sh.heads, sh.head_dim), dense_rows(vfull, sh.seq_len, sh.heads, sh.head_dim)};
    AttentionProblem p;
    p.dtype = sh.dtype;
    p.batch = sh.batch;
    p.heads = sh.heads;
    p.head_dim = sh.head_dim;
    p.scale = 1.0f / std::sqrt(static_cast<float>(sh.head_dim));
    p.q = &qc;
    p.num_q = 1;
    p.kv = &kv;
    p.num_kv = 1;
    p.finalize = true;
    REQUIRE_OK(dev.attention(p));
    REQUIRE_OK(ctx.synchronize());
  }
  // The one-GPU result itself against the float64 reference (the GPU kernel is the oracle's oracle here).
  {
    std::vector<char> host(local_bytes);
    REQUIRE_OK(dev.copy_to_host(host.data(), dref, local_bytes));
    ErrorStats e = compare_rows(host.data(), lc.ref, sh, P, me);
    EXPECT(e.non_finite == 0 && e.rel() < 2e-2, "%s: one-GPU result vs float64: rel %g", sh.to_string().c_str(), e.rel());
  }
  // The first of each layer's two forwards runs on sign-flipped q, k, v (exactly the negated output): ranks meet no
  // barrier between the forwards, so a layer that let a peer's second forward overwrite buffers its first still read,
  // or read data of the other forward, gives a wrong answer in one of them.
  auto negated = [&](const void* src) {
    std::vector<char> host(local_bytes);
    REQUIRE_OK(dev.copy_to_host(host.data(), src, local_bytes));
    const int64_t n = static_cast<int64_t>(local_bytes / es);
    for (int64_t i = 0; i < n; ++i)
      store_from_float(host.data(), i, sh.dtype, -load_as_float(host.data(), i, sh.dtype));
    void* d = take(dev.alloc(local_bytes), "alloc");
    REQUIRE_OK(dev.copy_to_device(d, host.data(), local_bytes));
    return d;
  };
  void* nq = negated(dq);
  void* nk = negated(dk);
  void* nv = negated(dv);
  void* nref = negated(dref);
  for (const Topology& topo : topos) {
    for (Transport transport : {Transport::kTwoSided, Transport::kOneSided}) {
      const std::string backend = transport == Transport::kOneSided ? "nvshmem" : "nccl";
      if (backend == "nvshmem" && !ctx.has_nvshmem()) continue;
      auto rt = take(ctx.make_runtime(backend, topo, gpu::EmulationSettings{topo.machines > 1 ? gbps : 0.0, 5.0}),
                     "make_runtime");
      for (Scheme scheme : all_schemes()) {
        auto plan = make_plan(scheme, topo, sh, "", transport);
        if (!plan) {
          if (me == 0) std::printf("  skip %s/%s on %s: %s\n", scheme_name(scheme), transport_name(transport),
                                   topo.to_string().c_str(), plan.status().to_string().c_str());
          continue;
        }
        std::vector<SpAttentionConfig> variants{plan->config};
        // A lone one-sided ring inside the machine also runs with row loans, their plan changing between the two
        // forwards (the second lends the other way).
        if (plan->config.mesh.degree(LevelKind::kRing) == P && transport == Transport::kOneSided && topo.machines == 1) {
          variants.push_back(plan->config);
          variants.back().row_loan_limit = 0.3;
          variants.back().ring_heads_per_step = 0;
          // ... and shared (ring_share): the second forward with rank 0 held to one thread block per call, so that
          // the others take blocks of its last call.
          variants.push_back(plan->config);
          variants.back().ring_share = true;
          variants.back().ring_heads_per_step = 0;
          // ... and shared with our rows' one call pulled by heads (the whole call shared).
          variants.push_back(plan->config);
          variants.back().ring_share = true;
          variants.back().ring_heads_per_step = 2;
          // ... and pulled by heads (ring_heads_per_step) in one call, steps of 3 heads (not dividing the heads)
          // across the peers from the first, and of 1 with the first 2 heads peer by peer (ring_first_wave_heads: at
          // these sizes the planner's first wave takes every head); and whole blocks in two calls.
          for (const auto& [step, first] : {std::pair{3, 3}, std::pair{1, 2}, std::pair{0, 0}}) {
            variants.push_back(plan->config);
            variants.back().ring_heads_per_step = step;
            variants.back().ring_first_wave_heads = first;
          }
        }
        // Three or more Torus stages also run compute-bound style (one segment per stage) with the K/V sets merged
        // in groups, or not, whichever the planner did not pick.
        if (plan->config.mesh.degree(LevelKind::kTorus) > 2) {
          variants.push_back(plan->config);
          variants.back().torus_chunks = 1;
          variants.back().merge_kv_sets = !plan->config.merge_kv_sets;
        }
        // A one-sided Torus level without Ulysses also runs with the local diagonal flipped: the diagonal blocks
        // at home, the others' partials merged by their lse (Device::merge_partials).
        if (plan->config.mesh.degree(LevelKind::kTorus) > 1 && plan->config.mesh.degree(LevelKind::kUlysses) == 1 &&
            transport == Transport::kOneSided) {
          variants.push_back(plan->config);
          variants.back().local_diagonal = !plan->config.local_diagonal;
          // ... and, with a ring inside the machines and no local diagonal, its home K/V pulled by heads (our rows'
          // first call takes every home block, waiting per head), steps of 3 heads with the first 3 peer by peer.
          if (plan->config.mesh.degree(LevelKind::kRing) > 1 && topo.gpus_per_machine > 1) {
            variants.push_back(plan->config);
            variants.back().local_diagonal = false;
            variants.back().ring_heads_per_step = 3;
            variants.back().ring_first_wave_heads = 3;
            // ... and with the local diagonal both ways: by home blocks (whole pulls), and on two machines by head
            // blocks with steps of 3 heads (the first call polling the ring peers' flags), the first 3 peer by peer.
            for (int step : {0, 3}) {
              variants.push_back(plan->config);
              variants.back().local_diagonal = true;
              variants.back().ring_heads_per_step = step;
              variants.back().ring_first_wave_heads = step;
            }
          }
        }
        // Every Torus mesh also runs its plan, and the local diagonal flipped where it applies, with the foreign rows'
        // calls on a second compute lane beside our own rows' (compute_lanes: the planner keeps one).
        if (plan->config.mesh.degree(LevelKind::kTorus) > 1) {
          variants.push_back(plan->config);
          variants.back().compute_lanes = 2;
          if (plan->config.mesh.degree(LevelKind::kUlysses) == 1 && transport == Transport::kOneSided) {
            variants.push_back(plan->config);
            variants.back().compute_lanes = 2;
            variants.back().local_diagonal = !plan->config.local_diagonal;
          }
        }
        for (const SpAttentionConfig& config : variants) {
          auto sp = take(SpAttention::create(rt->comm(), rt->device(), sh, config), "SpAttention::create");
          for (int rep = 0; rep < 2; ++rep) {  // twice: workspaces are reused across forwards
            if (config.row_loan_limit > 0.0) REQUIRE_OK(sp->rebalance(loan_test_speeds(P, rep)));
            REQUIRE_OK(dev.fill(dout, 0xff, local_bytes));
            rt->comm().reset_counters();
            {
              const bool slow = config.ring_share && rep == 1 && me == 0;  // one thread block per call
              test::ScopedEnv few("SF_CUDA_PERSISTENT", slow ? "1" : std::getenv("SF_CUDA_PERSISTENT"));
              const bool flipped = rep == 0;
              REQUIRE_OK(flipped ? sp->forward(nq, nk, nv, dout) : sp->forward(dq, dk, dv, dout));
              REQUIRE_OK(ctx.synchronize());
            }
            if (config.ring_share) {
              const int64_t helped = take(sp->blocks_taken_by_helpers(), "blocks_taken_by_helpers");
              if (me == 0) std::printf("    ring_share rep %d: helpers took %lld blocks of rank 0's last call\n", rep,
                                       static_cast<long long>(helped));
              EXPECT(me != 0 || rep != 1 || helped > 0, "ring_share: rank 0, slowed, was helped with %lld blocks",
                     static_cast<long long>(helped));
            }
            auto c = take(ctx.compare(dout, rep == 0 ? nref : dref, static_cast<int64_t>(local_bytes / es), sh.dtype),
                          "compare");
            EXPECT(c.non_finite == 0 && c.rel_l2 <= 1e-2 && c.max_abs <= 6e-2,
                   "%s %s %s/%s mesh %s merged sets %d diagonal %d loans %s share %d heads "
                   "per step %d (first %lld) lanes %d rep %d: vs one GPU max abs %g rel L2 %g non-finite %lld",
                   sh.to_string().c_str(), topo.to_string().c_str(), scheme_name(scheme), transport_name(transport),
                   config.mesh.to_string().c_str(),
                   config.merge_kv_sets ? 1 : 0,
                   config.local_diagonal ? 1 : 0, sp->loans_summary().c_str(), config.ring_share ? 1 : 0,
                   config.ring_heads_per_step, static_cast<long long>(sp->ring_first_wave_heads()),
                   sp->compute_lanes(), rep, c.max_abs,
                   c.rel_l2, static_cast<long long>(c.non_finite));
          }
          const LinkBytes got = rt->comm().bytes_moved();
          const std::string loans = sp->loans_summary();
          const long long first_wave = sp->ring_first_wave_heads();
          const int lanes = sp->compute_lanes();
          sp.reset();
          if (cpu_bytes) {
            ThreadRunOptions topt;
            if (config.row_loan_limit > 0.0) topt.rank_speeds = {loan_test_speeds(P, 1)};  // the last forward's
            auto cpu = take(run_layer_on_threads(topo, lc.inputs, lc.ref, config, topt), "run_layer_on_threads");
            const LinkBytes& want = cpu.bytes[static_cast<size_t>(me)];
            EXPECT(got.intra() == want.intra() && got.inter() == want.inter(),
                   "%s %s %s/%s: GPU counted %llu/%llu intra/inter bytes, CPU backend %llu/%llu",
                   sh.to_string().c_str(), topo.to_string().c_str(), scheme_name(scheme), transport_name(transport),
                   (unsigned long long)got.intra(), (unsigned long long)got.inter(), (unsigned long long)want.intra(),
                   (unsigned long long)want.inter());
          }
          if (me == 0) {
            std::printf("  %-8s %-9s %-5s mesh %-8s merged sets %d diagonal %d loans %s share "
                        "%d heads per step %d (first %lld) lanes %d ok so far (%d failures)\n",
                        scheme_name(scheme), transport_name(transport), topo.to_string().c_str(),
                        config.mesh.to_string().c_str(),
                        config.merge_kv_sets ? 1 : 0,
                        config.local_diagonal ? 1 : 0, loans.empty() ? "none" : loans.c_str(),
                        config.ring_share ? 1 : 0, config.ring_heads_per_step, first_wave, lanes, g_failures);
            std::fflush(stdout);
          }
        }
      }
    }
  }
  for (void* p : {dq, dk, dv, dout, dref, kfull, vfull, nq, nk, nv, nref}) dev.free(p);
}

// A link that dies under a one-sided transfer (--fault link): two emulated machines; rank 0's links stop delivering
// and it pulls from a rank on the other machine. The pull is posted from a side stream of its lane (NvshmemComm
// posts transfers to other machines there), so rank 0 hangs in synchronize() on that side stream, where its
// watchdog must stop it with a message naming the stream; the other ranks hang in a barrier rank 0 never reaches.
int run_link_fault_test(gpu::GpuContext& ctx) {
  const int P = ctx.world_size();
  auto rt = take(ctx.make_runtime("nvshmem", Topology{2, P / 2}, gpu::EmulationSettings{50.0, 5.0}), "make_runtime");
  SymmetricBuffer sym = take(rt->comm().alloc_symmetric(1 << 20), "alloc_symmetric");
  if (ctx.rank() == 0) {
    void* buf = take(ctx.device().alloc(1 << 20), "alloc");
    REQUIRE_OK(ctx.stall_links());
    std::fprintf(stderr, "[rank 0] fault test: the links stop delivering; pulling 1 MiB from rank %d\n", P / 2);
    Handle h = take(rt->comm().get(buf, sym, 0, P / 2, 1 << 20), "get");
    (void)h;
  } else {
    REQUIRE_OK(rt->comm().barrier_all());  // rank 0 never arrives
  }
  REQUIRE_OK(ctx.synchronize());  // never returns: the watchdog ends the process with a message
  std::fprintf(stderr, "[rank %d] fault test: a transfer over a dead link completed?!\n", ctx.rank());
  return 1;
}

int run_fault_test(gpu::GpuContext& ctx, const std::string& backend) {
  if (backend == "link") return run_link_fault_test(ctx);
  auto rt = take(ctx.make_runtime(backend, Topology{1, ctx.world_size()}, {}), "make_runtime");
  if (ctx.rank() == 1) {
    std::fprintf(stderr, "[rank 1] fault test: exiting without a word to the others\n");
    std::_Exit(0);
  }
  if (backend == "nvshmem") {
    REQUIRE_OK(rt->comm().barrier_all());  // rank 1 never arrives
  } else {
    void* buf = take(ctx.device().alloc(1 << 20), "alloc");
    Handle h = take(rt->comm().recv(1, buf, 1 << 20), "recv");
    REQUIRE_OK(rt->comm().wait(h));
  }
  REQUIRE_OK(ctx.synchronize());  // never returns: the watchdog ends the process with a message
  std::fprintf(stderr, "[rank %d] fault test: the receive from a dead rank completed?!\n", ctx.rank());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"StreamFusion multi-GPU tests (run under streamfusion-gpu launch)"};
  std::vector<std::string> topo_s = {"1x4", "2x2", "4x1"};
  std::vector<std::string> seqs = {"1021", "1024"};
  std::vector<std::string> dims = {"64", "128"};
  int64_t heads = 8, batch = 1;
  double gbps = 50.0, timeout_s = 120.0;
  bool cpu_bytes = true;
  std::string fault;
  app.add_option("--topologies", topo_s, "MxN list (M*N = processes)");
  app.add_option("--seq", seqs, "Sequence lengths");
  app.add_option("--head-dims", dims, "Head dims");
  app.add_option("--heads", heads, "Heads");
  app.add_option("--batch", batch, "Batch size (B > 1 takes other paths: the local diagonal's per-head-block calls)")
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  app.add_option("--gbps", gbps, "Emulated inter-machine GB/s");
  app.add_option("--timeout", timeout_s, "Watchdog timeout, s");
  app.add_option("--fault", fault,
                 "Fault test: nccl or nvshmem (rank 1 dies, the others must report and exit), or link (rank 0's "
                 "emulated links die under a one-sided pull)");
  app.add_flag("!--no-cpu-bytes", cpu_bytes, "Skip the byte comparison with the CPU threads backend");
  CLI11_PARSE(app, argc, argv);

  auto env = take(gpu::read_launch_env(), "launch environment");
  g_rank = env.rank;
  gpu::GpuContextOptions opt;
  opt.nvshmem = fault.empty() || fault == "nvshmem" || fault == "link";
#ifndef SF_HAVE_NVSHMEM
  opt.nvshmem = false;
#endif
  opt.watchdog_timeout_s = timeout_s;
  opt.nvshmem_heap_bytes = size_t(4) << 30;
  auto ctx = take(gpu::GpuContext::create(env, opt), "GpuContext::create");
  if (env.rank == 0) std::printf("multi-GPU tests on %s\n", ctx->describe().c_str());
  if (!fault.empty()) return run_fault_test(*ctx, fault);

  std::vector<Topology> topos;
  for (const auto& t : sf::cli::split_list(topo_s)) {
    Topology tp = take(Topology::parse(t), "topology");
    if (tp.world_size() == ctx->world_size()) topos.push_back(tp);
  }
  for (const Topology& t : topos) {
    test_exchange(*ctx, "nccl", t, t.machines > 1 ? gbps : 0.0);
    if (!ctx->has_nvshmem()) continue;
    // The group barriers both ways: signal barriers (the default), then teams (read when the runtime is made).
    test_exchange(*ctx, "nvshmem", t, t.machines > 1 ? gbps : 0.0);
    setenv("SF_NVSHMEM_GROUP_BARRIER", "team", 1);
    test_exchange(*ctx, "nvshmem", t, t.machines > 1 ? gbps : 0.0);
    unsetenv("SF_NVSHMEM_GROUP_BARRIER");
  }
  bool first_case = true;  // the CPU backend's byte counts are compared on the first shape (they scale with it)
  for (const auto& d : sf::cli::split_list(dims)) {
    for (const auto& s : sf::cli::split_list(seqs)) {
      LayerCase lc;
      lc.shape.batch = batch;
      lc.shape.seq_len = std::stoll(s);
      lc.shape.heads = heads;
      lc.shape.head_dim = std::stoll(d);
      lc.shape.dtype = DType::kBF16;
      lc.inputs = make_random_inputs(lc.shape, 42);
      lc.ref = reference_output(lc.inputs);
      if (env.rank == 0) std::printf("layers %s\n", lc.shape.to_string().c_str());
      test_layers(*ctx, lc, topos, gbps, cpu_bytes && first_case);
      first_case = false;
    }
  }
  auto all = take(gpu::gather_strings(*ctx, "test/failures", std::to_string(g_failures)), "gather");
  int total = 0;
  for (const auto& f : all) total += std::stoi(f);
  if (env.rank == 0) std::printf("%s: %d failure(s) over %d ranks\n", total == 0 ? "PASSED" : "FAILED", total, ctx->world_size());
  return total == 0 ? 0 : 1;
}
