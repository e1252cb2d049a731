// Turns CUDA and NCCL return codes into sf::Status with the rank and the operation in the message
// (NCCLCHECK discipline: every call checked, the error travels up as a value).
#pragma once

#include <string>

#include <cuda_runtime.h>

#include "streamfusion/status.h"

namespace sf::gpu {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  const ErrorCode code = err == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kBackendError;
  return Status(code, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace sf::gpu

#define SF_CUDA_RETURN(call) SF_RETURN_IF_ERROR(::sf::gpu::cuda_status((call), #call))
// Checks the launch just made (bad configuration) without synchronizing.
#define SF_CUDA_LAUNCH_RETURN(what) SF_RETURN_IF_ERROR(::sf::gpu::cuda_status(cudaGetLastError(), what))
