#include "emulated_link.h"

#include "gpu_check.h"

namespace sf::gpu {
namespace {

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

}  // namespace

EmulatedLinks::~EmulatedLinks() {
  if (state_) cudaFree(state_);
}

Status EmulatedLinks::init() {
  SF_CUDA_RETURN(cudaMalloc(&state_, (2 + kSlots) * sizeof(unsigned long long)));
  return reset();
}

Status EmulatedLinks::reset() {
  SF_CUDA_RETURN(cudaMemset(state_, 0, (2 + kSlots) * sizeof(unsigned long long)));
  SF_CUDA_RETURN(cudaDeviceSynchronize());
  return Status::ok();
}

Result<uint32_t> EmulatedLinks::book(cudaStream_t stream, LinkDirection dir, size_t bytes,
                                     const EmulationSettings& settings) {
  const uint32_t slot = next_slot_;
  next_slot_ = (next_slot_ + 1) % kSlots;
  // bytes / (GB/s) = nanoseconds
  const auto duration = static_cast<unsigned long long>(static_cast<double>(bytes) / settings.inter_gbps);
  const auto latency = static_cast<unsigned long long>(settings.latency_us * 1e3);
  book_kernel<<<1, 1, 0, stream>>>(state_ + static_cast<int>(dir), state_ + 2 + slot, duration, latency);
  SF_CUDA_LAUNCH_RETURN("emulated link: booking kernel launch");
  return slot;
}

Status EmulatedLinks::hold(cudaStream_t stream, uint32_t slot) {
  hold_kernel<<<1, 1, 0, stream>>>(state_ + 2 + slot);
  SF_CUDA_LAUNCH_RETURN("emulated link: hold kernel launch");
  return Status::ok();
}

Status EmulatedLinks::hold_latency(cudaStream_t stream, const EmulationSettings& settings) {
  hold_for_kernel<<<1, 1, 0, stream>>>(static_cast<unsigned long long>(settings.latency_us * 1e3));
  SF_CUDA_LAUNCH_RETURN("emulated link: latency kernel launch");
  return Status::ok();
}

}  // namespace sf::gpu
