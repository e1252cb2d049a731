#include "watchdog.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace sf::gpu {
namespace {

std::atomic<Watchdog*> g_watchdog{nullptr};

// Set by Watchdog::fail before it aborts the communicators: a library's abort may itself crash on a half-dead
// peer (ncclCommAbort did, with SIGSEGV, 1.6 s after the FATAL line of an NCCL fault test on 2x H100). By then the
// cause is printed, so the crash is reported as what it is and the process leaves with the failure's own code.
std::atomic<int> g_failing_rank{-1}, g_failing_code{1};

void on_crash_while_failing(int sig) {
  char buf[200];
  const int n = std::snprintf(buf, sizeof buf,
                              "[streamfusion rank %d] (signal %d while aborting the communicators after the error "
                              "above; exiting with code %d)\n",
                              g_failing_rank.load(), sig, g_failing_code.load());
  if (n > 0) {
    ssize_t ignored = ::write(2, buf, static_cast<size_t>(n));
    (void)ignored;
  }
  _exit(g_failing_code.load());
}

// SIGTERM/SIGINT from a launcher that gives up on this rank: say where we were before going.
void on_terminate(int sig) {
  Watchdog* w = g_watchdog.load();
  char buf[512];
  int n;
  if (w) {
    n = std::snprintf(buf, sizeof buf, "[streamfusion rank %d] terminated by signal %d while in: %s\n", w->rank(),
                      sig, w->current_op_if_free().c_str());
  } else {
    n = std::snprintf(buf, sizeof buf, "[streamfusion] terminated by signal %d\n", sig);
  }
  if (n > 0) {
    ssize_t ignored = ::write(2, buf, static_cast<size_t>(n));
    (void)ignored;
  }
  _exit(128 + sig);
}

}  // namespace

Watchdog* process_watchdog() { return g_watchdog.load(); }
void set_process_watchdog(Watchdog* w) {
  g_watchdog.store(w);
  if (w) {
    std::signal(SIGTERM, on_terminate);
    std::signal(SIGINT, on_terminate);
  }
}

Watchdog::Watchdog(int rank, double timeout_s) : rank_(rank), timeout_s_(timeout_s) {
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (g_watchdog.load() == this) g_watchdog.store(nullptr);
}

void Watchdog::add_error_poll(ErrorPoll poll) {
  std::lock_guard<std::mutex> lock(mu_);
  polls_.push_back(std::move(poll));
}

void Watchdog::add_abort(std::function<void()> abort) {
  std::lock_guard<std::mutex> lock(mu_);
  aborts_.push_back(std::move(abort));
}

void Watchdog::clear_hooks() {
  std::lock_guard<std::mutex> lock(mu_);
  polls_.clear();
  aborts_.clear();
}

void Watchdog::begin(std::string op) {
  std::lock_guard<std::mutex> lock(mu_);
  if (depth_++ == 0) {
    op_ = std::move(op);
    op_start_ = std::chrono::steady_clock::now();
  }
}

void Watchdog::end() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--depth_ == 0) {
    last_op_ = std::move(op_);
    op_.clear();
  }
}

std::string Watchdog::describe_op() const {
  if (depth_ > 0) return op_;
  return last_op_.empty() ? std::string("(no GPU operation)") : "(idle; last: " + last_op_ + ")";
}

std::string Watchdog::current_op() const {
  std::lock_guard<std::mutex> lock(mu_);
  return describe_op();
}

// Not blocking: a test that read the operation while the watchdog's thread held the lock got "(busy)" (seen once
// in the CPU tests under load, 2026-11-28), so only the signal handler takes this path.
std::string Watchdog::current_op_if_free() const {
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  return lock.owns_lock() ? describe_op() : std::string("(busy)");
}

void Watchdog::fail(const std::string& why, int code) {
  if (failing_.exchange(true)) {
    // Another thread is already failing; let it finish.
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::fprintf(stderr, "[streamfusion rank %d] FATAL: %s\n", rank_, why.c_str());
  std::fflush(stderr);
  g_failing_rank = rank_;
  g_failing_code = code;
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, on_crash_while_failing);
  std::vector<std::function<void()>> aborts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborts = aborts_;
  }
  // An abort can itself block on a wedged device: give it a few seconds, then leave regardless.
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    _exit(code);
  }).detach();
  for (auto& a : aborts) a();
  _exit(code);
}

void Watchdog::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (stop_) break;
    if (depth_ > 0) {
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - op_start_).count();
      if (waited > timeout_s_.load()) {
        // A host-side wait (a stream synchronize) names the last operation enqueued before it: on GPU backends
        // that is usually the one that never completes (a barrier or transfer whose peer is gone).
        const std::string op = op_, before = last_op_;
        lock.unlock();
        char msg[160];
        std::snprintf(msg, sizeof msg, " did not finish within %.0f s (watchdog); a peer has probably died or hung",
                      timeout_s_.load());
        fail(op + msg + (before.empty() ? std::string() : "; last operation issued before it: " + before), 124);
      }
    }
    auto polls = polls_;
    lock.unlock();
    for (auto& p : polls) {
      std::string err = p();
      if (!err.empty()) fail(err + " (while in: " + current_op() + ")", 1);
    }
    lock.lock();
  }
}

}  // namespace sf::gpu
