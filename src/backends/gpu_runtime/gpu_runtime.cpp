#include "gpu_runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <cuda_runtime.h>
#include <nccl.h>

#include "cuda_device.h"
#include "device_kernels.cuh"
#include "emulated_link.h"
#include "host_layout.h"
#include "rank_software.h"
#include "streamfusion/build_id.h"
#include "streamfusion/env_choice.h"
#include "gpu_check.h"
#include "gpu_streams.h"
#include "nccl_comm.h"
#include "tcp_store.h"
#include "watchdog.h"
#ifdef SF_HAVE_NVSHMEM
#include "nvshmem_comm.h"
#endif

namespace sf::gpu {
namespace {

std::string nccl_version_string() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

// What this rank runs, compared between ranks at start-up (rank_software.h).
RankSoftware this_rank_software() {
  RankSoftware s{{"StreamFusion", SF_BUILD_ID}, {"NCCL", nccl_version_string()}};
#ifdef SF_HAVE_NVSHMEM
  s.emplace_back("NVSHMEM", nvshmem_version_string());
#endif
  return s;
}

class GpuRankRuntime final : public RankRuntime {
 public:
  GpuRankRuntime(std::string backend, Device* device, std::unique_ptr<NcclComm> nccl, std::unique_ptr<Comm> comm)
      : backend_(std::move(backend)), device_(device), nccl_(std::move(nccl)), comm_(std::move(comm)) {}
  ~GpuRankRuntime() override {
    comm_.reset();  // the one-sided comm first: it may use the NCCL one
    nccl_.reset();
  }
  Comm& comm() override { return comm_ ? *comm_ : *nccl_; }
  Device& device() override { return *device_; }
  const char* backend_name() const override { return backend_.c_str(); }

 private:
  std::string backend_;
  Device* device_;
  std::unique_ptr<NcclComm> nccl_;
  std::unique_ptr<Comm> comm_;  // null for the nccl backend
};

}  // namespace

struct GpuContext::Impl {
  LaunchInfo launch;
  GpuContextOptions options;
  std::unique_ptr<Watchdog> watchdog;
  std::unique_ptr<TcpStore> store;
  GpuStreams streams;
  EmulatedLinks links;
  std::unique_ptr<CudaDevice> device;
  NcclWorld nccl;
  bool nccl_ready = false;
  bool nvshmem_ready = false;
  std::string gpu_name;
  std::vector<std::string> hosts;  // rank r's host name (host_layout.h)

  // Everything after the store: the GPU, the ranks' software, streams, links, NCCL, NVSHMEM, the start-up barrier.
  Status start(const std::string& who);

  Status init_nccl() {
    setenv("NCCL_NVLS_ENABLE", "0", 0);  // never NVLink multicast on shared machines (GPU-MACHINES.md)
    ncclUniqueId id;
    if (launch.rank == 0) {
      SF_RETURN_IF_ERROR(nccl_status(ncclGetUniqueId(&id), "ncclGetUniqueId"));
      SF_RETURN_IF_ERROR(store->set("nccl/id", std::string(reinterpret_cast<const char*>(&id), sizeof id)));
    }
    SF_ASSIGN_OR_RETURN(std::string got, store->get("nccl/id"));
    if (got.size() != sizeof id) return backend_error("NCCL unique id from rank 0 has the wrong size");
    std::memcpy(&id, got.data(), sizeof id);
    {
      Watchdog::ScopedOp op(watchdog.get(), "ncclCommInitRank (world of " + std::to_string(launch.world_size) + ")");
      // A failed start is most often the network plugin NCCL was told to use: name the variables that chose it.
      std::string chosen;
      for (const char* v : {"NCCL_NET", "NCCL_NET_PLUGIN", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME"})
        if (const char* x = std::getenv(v); x && *x) chosen += (chosen.empty() ? "" : ", ") + std::string(v) + "=" + x;
      const std::string init = "ncclCommInitRank" + (chosen.empty() ? "" : " with " + chosen);
      SF_RETURN_IF_ERROR(
          nccl_status(ncclCommInitRank(&nccl.lane_comm[0], launch.world_size, id, launch.rank), init.c_str()));
      SF_RETURN_IF_ERROR(nccl_status(ncclCommSplit(nccl.lane_comm[0], 0, launch.rank, &nccl.lane_comm[1], nullptr),
                                     "ncclCommSplit (ring lane)"));
    }
    nccl.rank = launch.rank;
    nccl.world_size = launch.world_size;
    NcclWorld* w = &nccl;
    watchdog->add_error_poll([w] { return w->async_error(); });
    watchdog->add_abort([w] { w->abort_all(); });
    nccl_ready = true;
    return Status::ok();
  }
};

GpuContext::GpuContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<GpuContext>> GpuContext::create(const LaunchInfo& launch, const GpuContextOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->launch = launch;
  impl->options = options;
  const std::string who = "rank " + std::to_string(launch.rank) + " (" + launch.hostname + ")";

  // Before CUDA starts: the emulated links' holds block their stream in the GPU's front end (emulated_link.h),
  // and streams that share one of its hardware queues (8 by default) would wait behind them. 32 queues keep our
  // compute stream, two lanes and the libraries' streams apart. A value the user set stays.
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  // The environment's value wins over the program's (the bench scripts bound every wait this way).
  SF_ASSIGN_OR_RETURN(const double timeout_s, env_seconds("SF_WATCHDOG_TIMEOUT_S", options.watchdog_timeout_s));
  impl->watchdog = std::make_unique<Watchdog>(launch.rank, timeout_s);
  set_process_watchdog(impl->watchdog.get());
  {
    Watchdog::ScopedOp op(impl->watchdog.get(), "connecting to the bootstrap store at " + launch.master_addr + ":" +
                                                    store_ports_text(launch));
    SF_ASSIGN_OR_RETURN(impl->store, TcpStore::create(launch.rank, launch.world_size, launch.master_addr,
                                                      launch.store_ports, std::chrono::seconds(120), launch.job));
  }
  // From here a rank that cannot start tells the others through the store (its first reason wins): they stop at
  // their next wait on it with that reason, instead of waiting out the store's timeout or the launcher's grace.
  if (Status started = impl->start(who); !started.is_ok()) {
    (void)impl->store->abort(started.message());
    return started;
  }
  return std::unique_ptr<GpuContext>(new GpuContext(std::move(impl)));
}

Status GpuContext::Impl::start(const std::string& who) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0) {
    return backend_error(who + ": no CUDA device usable (" +
                         std::string(e == cudaSuccess ? "0 devices" : cudaGetErrorString(e)) +
                         "); check the driver and CUDA_VISIBLE_DEVICES");
  }
  if (launch.local_rank >= count) {
    return invalid_argument(who + ": local rank " + std::to_string(launch.local_rank) + " but only " +
                            std::to_string(count) + " GPUs are visible on this host");
  }
  {
    // Every rank's host and software, before any library starts: ranks that load different libraries or run
    // different builds are refused here (rank_software.h), not left to fail or hang inside NCCL or NVSHMEM.
    Watchdog::ScopedOp op(watchdog.get(), "start-up gather (every rank's host and software)");
    const std::string mine = launch.hostname + "\n" + encode_software(this_rank_software());
    SF_ASSIGN_OR_RETURN(const std::vector<std::string> all, store->all_gather("start", mine));
    std::vector<RankSoftware> software;
    for (const std::string& a : all) {
      const size_t nl = a.find('\n');
      hosts.push_back(a.substr(0, nl));
      software.push_back(decode_software(nl == std::string::npos ? "" : a.substr(nl + 1)));
    }
    // Hosts whose names are all alike (containers given one name) while the launcher counts fewer ranks on this
    // host than in the job: told apart by the launcher's numbering, host by host.
    if (!gpu::spans_hosts(hosts) && launch.local_world_size != launch.world_size)
      for (size_t r = 0; r < hosts.size(); ++r)
        hosts[r] += "#" + std::to_string(static_cast<int>(r) / launch.local_world_size);
    if (Status same = check_same_software(software, hosts); !same.is_ok())
      return backend_error(who + ": " + same.message());
  }
  SF_RETURN_IF_ERROR(streams.init(launch.local_rank, watchdog.get()));
  SF_RETURN_IF_ERROR(
      links.init(launch.rank, launch.world_size, launch.local_world_size == launch.world_size, store.get()));
  device = std::make_unique<CudaDevice>(&streams);
  cudaDeviceProp prop{};
  SF_CUDA_RETURN(cudaGetDeviceProperties(&prop, launch.local_rank));
  gpu_name = prop.name;

  if (options.nccl) SF_RETURN_IF_ERROR(init_nccl());
  if (options.nvshmem) {
#ifdef SF_HAVE_NVSHMEM
    TcpStore* s = store.get();
    const int rank = launch.rank;
    Watchdog::ScopedOp op(watchdog.get(), "NVSHMEM initialization (unique-id bootstrap)");
    auto share_id = [s, rank](const std::string& mine) -> Result<std::string> {
      if (rank == 0) SF_RETURN_IF_ERROR(s->set("nvshmem/id", mine));
      return s->get("nvshmem/id");
    };
    SF_RETURN_IF_ERROR(nvshmem_initialize(launch.rank, launch.world_size, options.nvshmem_heap_bytes,
                                          gpu::spans_hosts(hosts), share_id));
    nvshmem_ready = true;
#else
    return unimplemented("this build has no NVSHMEM backend (configure with -DSTREAMFUSION_NVSHMEM=ON)");
#endif
  }
  Watchdog::ScopedOp op(watchdog.get(), "start-up barrier");
  return store->barrier("started");
}

GpuContext::~GpuContext() {
  if (!impl_) return;
  (void)impl_->streams.synchronize("shutdown: final synchronize");
  {
    Watchdog::ScopedOp op(impl_->watchdog.get(), "shutdown barrier");
    (void)impl_->store->barrier("shutdown");
  }
#ifdef SF_HAVE_NVSHMEM
  if (impl_->nvshmem_ready) {
    Watchdog::ScopedOp op(impl_->watchdog.get(), "nvshmem_finalize");
    nvshmem_finalize_process();
  }
#endif
  impl_->watchdog->clear_hooks();
  if (impl_->nccl_ready) impl_->nccl.destroy();
  impl_->device.reset();
  impl_->store.reset();
  set_process_watchdog(nullptr);
}

int GpuContext::rank() const { return impl_->launch.rank; }
int GpuContext::world_size() const { return impl_->launch.world_size; }
const LaunchInfo& GpuContext::launch() const { return impl_->launch; }
const std::vector<std::string>& GpuContext::hosts() const { return impl_->hosts; }
bool GpuContext::spans_hosts() const { return gpu::spans_hosts(impl_->hosts); }

Topology GpuContext::host_topology() const {
  int per_host = 0;
  for (const std::string& h : impl_->hosts) per_host += h == impl_->hosts.front() ? 1 : 0;
  const int n = per_host > 0 && world_size() % per_host == 0 ? per_host : world_size();
  return Topology{world_size() / n, n};
}
bool GpuContext::has_nccl() const { return impl_->nccl_ready; }
bool GpuContext::has_nvshmem() const { return impl_->nvshmem_ready; }
TcpStore& GpuContext::store() { return *impl_->store; }
Device& GpuContext::device() { return *impl_->device; }

const char* GpuContext::emulated_link_clock() const { return impl_->links.clock_name(); }

std::string GpuContext::describe() const {
  std::string s = impl_->gpu_name + ", " + std::to_string(world_size()) + " ranks";
  if (impl_->nccl_ready) s += ", NCCL " + nccl_version_string();
  s += ", StreamFusion " SF_BUILD_ID;
#ifdef SF_HAVE_NVSHMEM
  if (impl_->nvshmem_ready) s += ", NVSHMEM " + nvshmem_version_string();
  if (impl_->nvshmem_ready) {
    const Result<bool> pipeline = on_off_from_env("SF_NVSHMEM_PIPELINE");  // an invalid value fails in make_runtime
    if (pipeline && !pipeline.value())
      s += " (SF_NVSHMEM_PIPELINE=off: inter-machine transfers posted from the lane, one after another)";
    const Result<bool> flags = on_off_from_env("SF_LANDED_FLAGS");
    if (flags && !flags.value()) s += " (SF_LANDED_FLAGS=off: every call waits for its data on the stream)";
    const Result<bool> at_post = emulated_booking_at_post();
    if (at_post && at_post.value())
      s += " (SF_EMULATED_BOOKING=post: an emulated NIC sees a side stream's transfer only when it is posted)";
  }
#endif
  s += CudaDevice::fast_kernel_built() ? ", attention: sf::cuda::attention (fallback kernel for other cases)"
                                       : ", attention: fallback kernel (sf_cuda_kernels not built)";
  if (spans_hosts()) return s;  // nothing is emulated between hosts (host_layout.h)
  s += std::string(", emulated links clocked by the ") + impl_->links.clock_name();
  const Result<NicSharing> sharing = NicBoard::sharing_from_env();  // an invalid value fails in GpuContext::create
  if (sharing && sharing.value() == NicSharing::kFair) s += " (SF_EMULATED_NIC=fair: NICs share their bandwidth)";
  return s;
}

Result<std::unique_ptr<RankRuntime>> GpuContext::make_runtime(const std::string& backend, const Topology& topo,
                                                              const EmulationSettings& emulation) {
  SF_RETURN_IF_ERROR(topo.validate());
  if (topo.world_size() != world_size()) {
    return invalid_argument("topology " + topo.to_string() + " has " + std::to_string(topo.world_size()) +
                            " GPUs but " + std::to_string(world_size()) + " processes were launched");
  }
  if (emulation.enabled() && (emulation.inter_gbps <= 0 || emulation.latency_us < 0)) {
    return invalid_argument("emulated links need a positive bandwidth and a non-negative latency");
  }
  SF_RETURN_IF_ERROR(check_machines_on_hosts(topo, impl_->hosts));
  if (emulation.enabled() && topo.machines > 1 && spans_hosts()) {
    return invalid_argument("emulated links need a job on one host; this one spans hosts, whose links are real "
                            "(run without emulation)");
  }
  std::unique_ptr<NcclComm> nccl;
  if (impl_->nccl_ready) {
    nccl = std::make_unique<NcclComm>(topo, &impl_->nccl, &impl_->streams, &impl_->links, emulation);
    SF_RETURN_IF_ERROR(nccl->init());
  }
  if (backend == "nccl") {
    if (!nccl) return invalid_argument("backend nccl: this context was created without NCCL");
    return std::unique_ptr<RankRuntime>(new GpuRankRuntime("nccl", impl_->device.get(), std::move(nccl), nullptr));
  }
  if (backend == "nvshmem") {
#ifdef SF_HAVE_NVSHMEM
    if (!impl_->nvshmem_ready) return invalid_argument("backend nvshmem: this context was created without NVSHMEM");
    auto comm = std::make_unique<NvshmemComm>(topo, rank(), &impl_->streams, &impl_->links, emulation, nccl.get());
    SF_RETURN_IF_ERROR(comm->init());
    return std::unique_ptr<RankRuntime>(
        new GpuRankRuntime("nvshmem", impl_->device.get(), std::move(nccl), std::move(comm)));
#else
    return unimplemented("backend nvshmem: this build has no NVSHMEM (configure with -DSTREAMFUSION_NVSHMEM=ON)");
#endif
  }
  return invalid_argument("unknown GPU backend '" + backend + "' (expected nccl or nvshmem)");
}

Status GpuContext::fill_normal(void* data, int64_t n, DType dtype, uint64_t seed, int64_t first_index) {
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, impl_->streams.work_stream());
  return sf::gpu::fill_normal(data, n, dtype, seed, first_index, stream);
}

Result<TensorCompare> GpuContext::compare(const void* test, const void* ref, int64_t n, DType dtype) {
  SF_RETURN_IF_ERROR(impl_->streams.synchronize("compare: synchronize"));
  // Its read-back is a copy-engine copy: on the host-work stream (GpuStreams::begin_host_work).
  SF_ASSIGN_OR_RETURN(cudaStream_t stream, impl_->streams.begin_host_work());
  SF_ASSIGN_OR_RETURN(CompareResult r, sf::gpu::compare(test, ref, n, dtype, stream));
  return TensorCompare{r.max_abs, r.rel_l2(), r.non_finite};
}

Result<std::vector<double>> GpuContext::time_iterations(const std::function<Status()>& body, int warmup, int iters,
                                                        const std::function<Status()>& before_each) {
  GpuStreams& s = impl_->streams;
  for (int i = 0; i < warmup; ++i) {
    if (before_each) SF_RETURN_IF_ERROR(before_each());
    SF_RETURN_IF_ERROR(body());
  }
  SF_RETURN_IF_ERROR(s.join_lanes());
  std::vector<cudaEvent_t> ev(2 * static_cast<size_t>(iters), nullptr);
  for (auto& e : ev) SF_CUDA_RETURN(cudaEventCreate(&e));
  Status st;
  for (int i = 0; i < iters && st.is_ok(); ++i) {
    if (before_each) st = before_each();
    if (st.is_ok()) st = cuda_status(cudaEventRecord(ev[2 * i], s.compute()), "cudaEventRecord");
    if (st.is_ok()) st = body();
    if (st.is_ok()) st = s.join_lanes();
    if (st.is_ok()) st = cuda_status(cudaEventRecord(ev[2 * i + 1], s.compute()), "cudaEventRecord");
  }
  if (st.is_ok()) st = s.synchronize("timed iterations");
  std::vector<double> ms;
  for (int i = 0; i < iters && st.is_ok(); ++i) {
    float t = 0.f;
    st = cuda_status(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]), "cudaEventElapsedTime");
    ms.push_back(t);
  }
  for (auto& e : ev) cudaEventDestroy(e);
  if (!st.is_ok()) return st;
  return ms;
}

int64_t GpuContext::fallback_attention_calls() { return CudaDevice::fallback_calls(); }

Status GpuContext::synchronize() { return impl_->streams.synchronize("GpuContext::synchronize"); }

Status GpuContext::begin_trace() { return impl_->streams.trace().begin(impl_->streams.compute()); }

Result<std::vector<TraceEntry>> GpuContext::end_trace_entries() {
  SF_RETURN_IF_ERROR(impl_->streams.synchronize("end_trace"));
  return impl_->streams.trace().end();
}

Result<std::string> GpuContext::end_trace() {
  SF_ASSIGN_OR_RETURN(std::vector<TraceEntry> entries, end_trace_entries());
  return format_trace(entries);
}

Status GpuContext::reset_links() {
  SF_RETURN_IF_ERROR(impl_->streams.synchronize("reset_links"));
  return impl_->links.reset();
}

Status GpuContext::keep_link_records(size_t max) { return impl_->links.keep_records(max); }

Status GpuContext::stall_links() { return impl_->links.stall(); }

std::vector<LinkClock::Record> GpuContext::take_link_records() {
  // The clock's thread sees a stream's "resumed" flag microseconds after the stream wrote it: after a
  // synchronize, a millisecond lets it see the last one before the records are handed over.
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return impl_->links.take_records();
}

Result<std::vector<std::string>> gather_strings(GpuContext& ctx, const std::string& tag, const std::string& mine) {
  return ctx.store().all_gather(tag, mine);
}

}  // namespace sf::gpu
