// Status and Result: how errors travel through the library.
//
// Library code never throws; a failing call returns a Status whose message says what was expected and what
// was found. The CLI and tests turn a failed Status into an exit code or a test failure at the edge.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sf {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something malformed (bad shape, bad mesh string, ...)
  kInfeasible,       // well-formed but impossible on this topology/shape (heads not divisible, ...)
  kOutOfMemory,
  kBackendError,     // CUDA / NCCL / NVSHMEM / OS reported a failure
  kTimeout,          // a peer did not answer in time (watchdog)
  kUnimplemented,
  kInternal,         // a broken invariant inside StreamFusion: a bug
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: heads (24) must divide by the Ulysses degree (5)"
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status infeasible(std::string m) { return {ErrorCode::kInfeasible, std::move(m)}; }
inline Status backend_error(std::string m) { return {ErrorCode::kBackendError, std::move(m)}; }
inline Status internal_error(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
inline Status unimplemented(std::string m) { return {ErrorCode::kUnimplemented, std::move(m)}; }

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sf

// Return the Status up the stack when a call fails (NCCL's NCCLCHECK discipline).
#define SF_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::sf::Status sf_status_ = (expr);     \
    if (!sf_status_.is_ok()) return sf_status_; \
  } while (0)

#define SF_CONCAT_INNER(a, b) a##b
#define SF_CONCAT(a, b) SF_CONCAT_INNER(a, b)
// SF_ASSIGN_OR_RETURN(auto x, make_x()): unwraps a Result or returns its Status.
#define SF_ASSIGN_OR_RETURN(lhs, expr)                            \
  auto SF_CONCAT(sf_result_, __LINE__) = (expr);                  \
  if (!SF_CONCAT(sf_result_, __LINE__).is_ok())                   \
    return SF_CONCAT(sf_result_, __LINE__).status();              \
  lhs = std::move(SF_CONCAT(sf_result_, __LINE__)).value()
