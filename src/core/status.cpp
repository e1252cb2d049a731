#include "streamfusion/status.h"

namespace sf {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kInfeasible: return "infeasible";
    case ErrorCode::kOutOfMemory: return "out of memory";
    case ErrorCode::kBackendError: return "backend error";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kUnimplemented: return "unimplemented";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown error";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(error_code_name(code_)) + ": " + message_;
}

}  // namespace sf
