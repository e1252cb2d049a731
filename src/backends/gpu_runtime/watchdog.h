// Watchdog: a process never hangs silently. The thread that issues GPU work marks each call that may block
// on a peer (NCCL group ends, stream synchronizations, NVSHMEM collectives) with a ScopedOp; a background
// thread ends the process with a message naming the rank and that operation once it has been blocked longer
// than the timeout, and polls the backends for asynchronous errors (NCCL's ncclCommGetAsyncError) in between.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sf::gpu {

class Watchdog {
 public:
  // Returns a non-empty message when a backend reports an asynchronous error.
  using ErrorPoll = std::function<std::string()>;

  Watchdog(int rank, double timeout_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  int rank() const { return rank_; }
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double t) { timeout_s_ = t; }
  // Polled every 100 ms; abort runs once before the process exits (e.g. ncclCommAbort on every comm).
  void add_error_poll(ErrorPoll poll);
  void add_abort(std::function<void()> abort);
  void clear_hooks();

  void begin(std::string op);
  void end();
  // The operation under way (blocks briefly for the watchdog's lock).
  std::string current_op() const;
  // The same without blocking, for a signal handler: "(busy)" while the watchdog's thread holds the lock.
  std::string current_op_if_free() const;
  // Prints "[streamfusion rank r] FATAL: <why>" to stderr, runs the abort hooks and exits with `code`.
  [[noreturn]] void fail(const std::string& why, int code);

  class ScopedOp {
   public:
    ScopedOp(Watchdog* w, std::string op) : w_(w) {
      if (w_) w_->begin(std::move(op));
    }
    ~ScopedOp() {
      if (w_) w_->end();
    }
    ScopedOp(const ScopedOp&) = delete;
    ScopedOp& operator=(const ScopedOp&) = delete;

   private:
    Watchdog* w_;
  };

 private:
  void loop();
  std::string describe_op() const;  // under mu_

  int rank_;
  std::atomic<double> timeout_s_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string op_;
  int depth_ = 0;
  std::chrono::steady_clock::time_point op_start_;
  std::string last_op_;
  std::vector<ErrorPoll> polls_;
  std::vector<std::function<void()>> aborts_;
  std::atomic<bool> failing_{false};
  std::thread thread_;
};

// The process-wide watchdog, if a GPU context created one (signal handlers and the CLI report through it).
Watchdog* process_watchdog();
void set_process_watchdog(Watchdog* w);

}  // namespace sf::gpu
