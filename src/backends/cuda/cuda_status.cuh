// Turns CUDA runtime errors into sf::Status at the library boundary (NCCLCHECK-style discipline).
#pragma once

#include <string>

#include <cuda_runtime.h>

#include "streamfusion/status.h"

namespace sf::cuda::detail {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  return backend_error(std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace sf::cuda::detail
