#include "emulated_link.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <cuda.h>

#include "streamfusion/env_choice.h"
#include "gpu_check.h"

namespace sf::gpu {
namespace {

// ---- kernel clock

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void book_kernel(unsigned long long* tail, unsigned long long* slot, unsigned long long duration_ns,
                            unsigned long long latency_ns) {
  const unsigned long long now = global_ns();
  unsigned long long old = *reinterpret_cast<volatile unsigned long long*>(tail);
  unsigned long long assumed, end;
  do {  // both lanes book on the same FIFO, possibly at once
    assumed = old;
    end = (now > assumed ? now : assumed) + duration_ns;
    old = atomicCAS(tail, assumed, end);
  } while (old != assumed);
  *slot = end + latency_ns;
  __threadfence();
}

__global__ void hold_kernel(const unsigned long long* slot) {
  const unsigned long long until = *reinterpret_cast<const volatile unsigned long long*>(slot);
  while (global_ns() < until) __nanosleep(256);
}

__global__ void hold_for_kernel(unsigned long long duration_ns) {
  const unsigned long long until = global_ns() + duration_ns;
  while (global_ns() < until) __nanosleep(256);
}

Status link_driver_status(CUresult r, const char* what) {
  const Status st = driver_status(r, what);
  if (st.is_ok()) return st;
  return backend_error(st.message() + "; the host clock of the emulated links needs stream memory operations on "
                       "mapped host memory (SF_EMULATED_LINK_CLOCK=kernel uses kernels instead)");
}

uint64_t duration_ns(size_t bytes, const EmulationSettings& s) {
  return static_cast<uint64_t>(static_cast<double>(bytes) / s.inter_gbps);  // bytes / (GB/s) = ns
}
uint64_t latency_ns(const EmulationSettings& s) { return static_cast<uint64_t>(s.latency_us * 1e3); }

}  // namespace

EmulatedLinks::~EmulatedLinks() {
  clock_.reset();  // stops the thread before its flags go
  if (flags_) cudaFreeHost(flags_);
  if (state_) cudaFree(state_);
}

Status EmulatedLinks::init(int rank, int world, bool one_host, TcpStore* store) {
  SF_ASSIGN_OR_RETURN(const int kernel_clock, env_choice("SF_EMULATED_LINK_CLOCK", {"host", "kernel"}));
  host_ = kernel_clock == 0;
  if (host_) return init_host_clock(rank, world, one_host, store);
  SF_CUDA_RETURN(cudaMalloc(&state_, (2 + kSlots) * sizeof(unsigned long long)));
  return reset();
}

Status EmulatedLinks::init_host_clock(int rank, int world, bool one_host, TcpStore* store) {
  SF_CUDA_RETURN(cudaHostAlloc(reinterpret_cast<void**>(&flags_), 3 * kSlots * sizeof(uint32_t), cudaHostAllocMapped));
  std::memset(flags_, 0, 3 * kSlots * sizeof(uint32_t));
  SF_CUDA_RETURN(cudaHostGetDevicePointer(reinterpret_cast<void**>(&flags_on_device_), flags_, 0));
  // Emulated machines are GPUs of one host: ranks on several hosts (a real cluster), or a host without shared
  // memory (no /dev/shm, say; a warning, not a failed start, since most runs emulate nothing), book their own side
  // of a transfer only.
  SF_ASSIGN_OR_RETURN(const NicSharing sharing, NicBoard::sharing_from_env());
  if (one_host && world > 1 && world <= NicBoard::kMaxRanks && store != nullptr) {
    std::string name;
    Status shared = Status::ok();
    if (rank == 0) {
      name = "/streamfusion-nics-" + std::to_string(::getpid()) + "-" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007);
      auto made = NicBoard::create_shared(name, world, sharing);
      if (made.is_ok()) board_ = std::move(made.value());
      else shared = made.status();
      SF_RETURN_IF_ERROR(store->set("links/nics", board_ ? name : std::string()));  // empty: no board
    } else {
      SF_ASSIGN_OR_RETURN(name, store->get("links/nics"));
      if (!name.empty()) {
        auto opened = NicBoard::open_shared(name, world, sharing);
        if (opened.is_ok()) board_ = std::move(opened.value());
        else shared = opened.status();
      }
    }
    const Status met = store->barrier("links/nics");  // everyone has it mapped: the name can go
    if (rank == 0 && board_) NicBoard::unlink(name);
    SF_RETURN_IF_ERROR(met);
    if (!shared.is_ok())
      std::fprintf(stderr, "[streamfusion rank %d] warning: %s; emulated inter-machine transfers book only this "
                   "rank's side of a one-sided transfer (two ranks pulling from one GPU then each get the full "
                   "setting)\n", rank, shared.to_string().c_str());
  }
  shared_board_ = board_ != nullptr;
  if (!shared_board_) {  // this rank's own queues only, under the same sharing model
    SF_ASSIGN_OR_RETURN(board_, NicBoard::create_private(1, sharing));
  }
  clock_ = std::make_unique<LinkClock>(flags_, flags_ + kSlots, board_.get(), shared_board_ ? rank : 0);
  clock_->start();
  return Status::ok();
}

Status EmulatedLinks::reset() {
  if (host_) {
    // Nothing to forget: the host clock keeps no state between transfers (nic_board.h).
    if (clock_->outstanding() != 0) return internal_error("emulated links reset while transfers are in flight");
    return Status::ok();
  }
  SF_CUDA_RETURN(cudaMemset(state_, 0, (2 + kSlots) * sizeof(unsigned long long)));
  SF_CUDA_RETURN(cudaDeviceSynchronize());
  return Status::ok();
}

Status EmulatedLinks::keep_records(size_t max) {
  if (host_) clock_->keep_records(max, flags_ + 2 * kSlots);
  return Status::ok();
}

Status EmulatedLinks::stall() {
  if (!host_) return unimplemented("stalling the emulated links needs their host clock (SF_EMULATED_LINK_CLOCK=host)");
  clock_->stall();
  return Status::ok();
}

std::vector<LinkClock::Record> EmulatedLinks::take_records() {
  return host_ ? clock_->take_records() : std::vector<LinkClock::Record>{};
}

Status EmulatedLinks::write_reached(cudaStream_t stream, uint32_t ticket, const char* what) {
  const auto at = reinterpret_cast<CUdeviceptr>(flags_on_device_ + ticket % kSlots);
  return link_driver_status(cuStreamWriteValue32(reinterpret_cast<CUstream>(stream), at, ticket, 0), what);
}

Result<uint32_t> EmulatedLinks::book(cudaStream_t stream, LinkDirection dir, size_t bytes,
                                     const EmulationSettings& settings, int far_rank) {
  if (host_) {
    const int far = shared_board_ ? far_rank : NicBoard::kNone;
    const LinkDirection opposite = dir == LinkDirection::kEgress ? LinkDirection::kIngress : LinkDirection::kEgress;
    const int far_fifo = static_cast<int>(opposite);
    const uint32_t ticket =
        clock_->book(static_cast<int>(dir), duration_ns(bytes, settings), latency_ns(settings), far, far_fifo);
    SF_RETURN_IF_ERROR(write_reached(stream, ticket, "emulated link: booking (cuStreamWriteValue32)"));
    return ticket;
  }
  const uint32_t slot = next_slot_;
  next_slot_ = (next_slot_ + 1) % kSlots;
  book_kernel<<<1, 1, 0, stream>>>(state_ + static_cast<int>(dir), state_ + 2 + slot, duration_ns(bytes, settings),
                                   latency_ns(settings));
  SF_CUDA_LAUNCH_RETURN("emulated link: booking kernel launch");
  return slot;
}

Status EmulatedLinks::hold(cudaStream_t stream, uint32_t ticket) {
  if (host_) {
    const auto at = reinterpret_cast<CUdeviceptr>(flags_on_device_ + kSlots + ticket % kSlots);
    SF_RETURN_IF_ERROR(
        link_driver_status(cuStreamWaitValue32(reinterpret_cast<CUstream>(stream), at, ticket, CU_STREAM_WAIT_VALUE_EQ),
                      "emulated link: hold (cuStreamWaitValue32)"));
    if (!clock_->keeping_records()) return Status::ok();
    const auto resumed = reinterpret_cast<CUdeviceptr>(flags_on_device_ + 2 * kSlots + ticket % kSlots);
    return link_driver_status(cuStreamWriteValue32(reinterpret_cast<CUstream>(stream), resumed, ticket, 0),
                         "emulated link: resumed flag (cuStreamWriteValue32)");
  }
  hold_kernel<<<1, 1, 0, stream>>>(state_ + 2 + ticket);
  SF_CUDA_LAUNCH_RETURN("emulated link: hold kernel launch");
  return Status::ok();
}

Status EmulatedLinks::hold_latency(cudaStream_t stream, const EmulationSettings& settings) {
  if (host_) {
    const uint32_t ticket = clock_->book(LinkClock::kNoFifo, 0, latency_ns(settings));
    SF_RETURN_IF_ERROR(write_reached(stream, ticket, "emulated link: latency (cuStreamWriteValue32)"));
    return hold(stream, ticket);
  }
  hold_for_kernel<<<1, 1, 0, stream>>>(latency_ns(settings));
  SF_CUDA_LAUNCH_RETURN("emulated link: latency kernel launch");
  return Status::ok();
}

}  // namespace sf::gpu
