// NVSHMEM's symmetric heap as the environment sets it, read before NVSHMEM starts, so that a heap that cannot fit
// is our error naming the variables rather than NVSHMEM's: with a fixed heap (NVSHMEM_DISABLE_CUDA_VMM=1) a heap
// larger than the GPU's free memory makes NVSHMEM's initialization print "nvshmem reserve static heaps failed" and
// exit the process itself (status 255, seen with NVSHMEM 3.4.5 on 4x H200, 2026-11-28), so nvshmemx_init_attr
// never returns an error we could report. Where NVSHMEM grows its heap on demand (CUDA VMM, the default between
// P2P GPUs) the size only reserves address space and any value starts. Plain C++, so CPU tests reach it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>

namespace sf::gpu {

// NVSHMEM_SYMMETRIC_SIZE's format: a non-negative number (".5" allowed) with an optional multiplier k, m, g or t
// (either case, powers of 2^10), characters after the multiplier ignored, as NVSHMEM reads it. nullopt where
// NVSHMEM would refuse the value (it then reports that itself).
inline std::optional<size_t> nvshmem_size_bytes(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || !(value >= 0.0)) return std::nullopt;
  double scale = 1.0;
  switch (*end) {
    case '\0': break;
    case 'k': case 'K': scale = 1024.0; break;
    case 'm': case 'M': scale = 1024.0 * 1024.0; break;
    case 'g': case 'G': scale = 1024.0 * 1024.0 * 1024.0; break;
    case 't': case 'T': scale = 1024.0 * 1024.0 * 1024.0 * 1024.0; break;
    default: return std::nullopt;
  }
  const double bytes = value * scale;
  if (bytes > 1.8e19) return std::nullopt;
  return static_cast<size_t>(std::ceil(bytes));  // NVSHMEM rounds up to a whole byte
}

// Whether the environment asks NVSHMEM for a fixed heap (NVSHMEM_DISABLE_CUDA_VMM set to a true value).
inline bool nvshmem_fixed_heap() {
  const char* v = std::getenv("NVSHMEM_DISABLE_CUDA_VMM");
  if (v == nullptr) return false;
  const std::string s(v);
  return s == "1" || s == "y" || s == "Y" || s == "yes" || s == "true" || s == "TRUE" || s == "True";
}

// The error a fixed heap that cannot fit in `free_bytes` gets (empty: it fits, or the heap grows on demand, or the
// size is not one we can read).
inline std::string fixed_heap_misfit(const char* size_text, size_t free_bytes, size_t total_bytes) {
  if (!nvshmem_fixed_heap()) return "";
  const std::optional<size_t> heap = nvshmem_size_bytes(size_text);
  if (!heap || *heap <= free_bytes) return "";
  return "NVSHMEM's fixed symmetric heap (NVSHMEM_DISABLE_CUDA_VMM) of NVSHMEM_SYMMETRIC_SIZE=" +
         std::string(size_text) + " (" + std::to_string(*heap >> 20) + " MiB) does not fit in the GPU's " +
         std::to_string(free_bytes >> 20) + " MiB free of " + std::to_string(total_bytes >> 20) +
         " MiB: set a smaller NVSHMEM_SYMMETRIC_SIZE, or leave NVSHMEM_DISABLE_CUDA_VMM unset so that the heap grows";
}

}  // namespace sf::gpu
