// Turns CUDA and NCCL return codes into sf::Status with the rank and the operation in the message
// (NCCLCHECK discipline: every call checked, the error travels up as a value).
#pragma once

#include <string>

#include <cuda.h>
#include <cuda_runtime.h>

#include "streamfusion/status.h"

namespace sf::gpu {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  const ErrorCode code = err == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kBackendError;
  return Status(code, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// The driver API's (stream memory operations: cuStreamWriteValue32, cuStreamWaitValue32).
inline Status driver_status(CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return Status::ok();
  const char* name = nullptr;
  const char* text = nullptr;
  cuGetErrorName(r, &name);
  cuGetErrorString(r, &text);
  return backend_error(std::string(what) + ": " + (name ? name : "unknown driver error") +
                       (text ? std::string(" (") + text + ")" : std::string()));
}

}  // namespace sf::gpu

#define SF_CUDA_RETURN(call) SF_RETURN_IF_ERROR(::sf::gpu::cuda_status((call), #call))
// Checks the launch just made (bad configuration) without synchronizing.
#define SF_CUDA_LAUNCH_RETURN(what) SF_RETURN_IF_ERROR(::sf::gpu::cuda_status(cudaGetLastError(), what))
