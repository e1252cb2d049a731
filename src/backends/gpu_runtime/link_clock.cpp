#include "link_clock.h"

#include <algorithm>
#include <chrono>

namespace sf::gpu {

LinkClock::LinkClock(volatile uint32_t* reached, volatile uint32_t* released, Nanoseconds now)
    : reached_(reached), released_(released), now_(std::move(now)) {
  if (!now_) {
    now_ = [] {
      return static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
              .count());
    };
  }
}

LinkClock::~LinkClock() {
  {
    std::lock_guard<std::mutex> lock(mutex_);  // else the thread could miss the notification below
    stop_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint32_t LinkClock::book(int fifo, uint64_t duration_ns, uint64_t latency_ns) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint32_t ticket = next_ticket_;
  next_ticket_ = next_ticket_ == UINT32_MAX ? 1 : next_ticket_ + 1;  // 0 is the flags' initial value
  pending_.push_back(Pending{ticket, fifo, duration_ns, latency_ns});
  work_.notify_one();
  return ticket;
}

void LinkClock::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  tail_ns_[0] = tail_ns_[1] = 0;
}

size_t LinkClock::outstanding() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.size();
}

bool LinkClock::poll() {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t now = now_();
  for (Pending& p : pending_) {
    if (p.reached || reached_[p.ticket % kSlots] != p.ticket) continue;
    // The stream got here at `now` (give or take one pass of this loop): the transfer starts when its FIFO is
    // free, as on a NIC that sends its queue in order.
    p.reached = true;
    uint64_t end = now + p.duration_ns;
    if (p.fifo != kNoFifo) {
      end = std::max(now, tail_ns_[p.fifo]) + p.duration_ns;
      tail_ns_[p.fifo] = end;
    }
    p.due_ns = end + p.latency_ns;
  }
  // Release whatever is due, in any order (the two lanes' holds are independent).
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->reached && now >= it->due_ns) {
      released_[it->ticket % kSlots] = it->ticket;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return !pending_.empty();
}

void LinkClock::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void LinkClock::run() {
  while (!stop_) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_.wait(lock, [this] { return stop_ || !pending_.empty(); });
    }
    // Outstanding tickets: poll without sleeping, since a sleep's wake-up (tens of microseconds) would show as
    // latency on every transfer.
    while (!stop_ && poll()) std::this_thread::yield();
  }
}

}  // namespace sf::gpu
