#include "link_clock.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace sf::gpu {

LinkClock::LinkClock(volatile uint32_t* reached, volatile uint32_t* released, NicBoard* board, int rank,
                     Nanoseconds now)
    : reached_(reached), released_(released), now_(std::move(now)), board_(board), rank_(rank) {
  if (!board_) {
    own_board_ = NicBoard::create_private(1).value();
    board_ = own_board_.get();
    rank_ = 0;
  }
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

uint32_t LinkClock::book(int fifo, uint64_t duration_ns, uint64_t latency_ns, int far_rank, int far_fifo) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint32_t ticket = next_ticket_;
  next_ticket_ = next_ticket_ == UINT32_MAX ? 1 : next_ticket_ + 1;  // 0 is the flags' initial value
  pending_.push_back(Pending{ticket, fifo, duration_ns, latency_ns, far_rank, far_fifo});
  work_.notify_one();
  return ticket;
}

void LinkClock::stall() {
  std::lock_guard<std::mutex> lock(mutex_);
  stalled_ = true;
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
    // free, as on a NIC that sends its queue in order (and, one-sided, when the peer's is too).
    p.reached = true;
    p.reached_ns = p.start_ns = now;
    if (p.fifo != kNoFifo) p.flow = board_->start(now, rank_, p.fifo, p.far_rank, p.far_fifo, p.duration_ns);
    if (p.fifo != kNoFifo && p.flow == NicBoard::kNone) {
      std::fprintf(stderr, "emulated links: more than %d transfers in flight on this host; this one ignores the "
                   "others\n", NicBoard::kMaxFlows);
    }
    if (p.flow == NicBoard::kNone) {
      p.due = true;
      p.due_ns = now + p.duration_ns + p.latency_ns;
    }
  }
  board_->advance_to(now);
  for (Pending& p : pending_) {
    uint64_t started = 0, done = 0;
    if (p.due || p.flow == NicBoard::kNone || !board_->finished(p.flow, &started, &done)) continue;
    p.start_ns = started;
    p.due_ns = done + p.latency_ns;
    p.due = true;
    p.flow = NicBoard::kNone;
  }
  // Release whatever is due, in any order (the two lanes' holds are independent).
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->due && now >= it->due_ns && !stalled_) {
      released_[it->ticket % kSlots] = it->ticket;
      if (records_.size() < keep_records_)
        records_.push_back(Record{it->ticket, it->fifo, it->reached_ns, it->start_ns, it->due_ns, now, 0});
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  // Records waiting for their stream to get past the hold keep the thread polling.
  bool awaiting_resume = false;
  if (resumed_ != nullptr) {
    for (Record& r : records_) {
      if (r.resumed_ns != 0) continue;
      if (resumed_[r.ticket % kSlots] == r.ticket)
        r.resumed_ns = now;
      else
        awaiting_resume = true;
    }
  }
  return !pending_.empty() || awaiting_resume;
}

void LinkClock::keep_records(size_t max, const volatile uint32_t* resumed) {
  std::lock_guard<std::mutex> lock(mutex_);
  keep_records_ = max;
  resumed_ = resumed;
  records_.clear();
  records_.reserve(max);
}

bool LinkClock::keeping_records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return keep_records_ > 0;
}

std::vector<LinkClock::Record> LinkClock::take_records() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Record> out;
  out.swap(records_);
  records_.reserve(keep_records_);
  return out;
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

std::string format_link_records(std::vector<LinkClock::Record> records) {
  if (records.empty()) return "# (no link records: the kernel clock keeps none)\n";
  std::sort(records.begin(), records.end(),
            [](const LinkClock::Record& a, const LinkClock::Record& b) { return a.reached_ns < b.reached_ns; });
  const double t0 = static_cast<double>(records.front().reached_ns);
  const auto at = [&](uint64_t t) { return t == 0 ? -1.0 : (static_cast<double>(t) - t0) * 1e-3; };
  const auto gap = [](uint64_t from, uint64_t to) {
    return from == 0 || to == 0 ? -1.0 : (static_cast<double>(to) - static_cast<double>(from)) * 1e-3;
  };
  std::string out =
      "| ticket | fifo | reached us | start us | due us | released us | resumed us | late us | resume us | next us |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const LinkClock::Record& r = records[i];
    double next = -1;
    for (size_t j = i + 1; j < records.size(); ++j)
      if (records[j].fifo == r.fifo) {
        next = gap(r.resumed_ns, records[j].reached_ns);
        break;
      }
    char line[256];
    std::snprintf(line, sizeof line, "| %u | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", r.ticket,
                  r.fifo, at(r.reached_ns), at(r.start_ns), at(r.due_ns), at(r.released_ns), at(r.resumed_ns),
                  gap(r.due_ns, r.released_ns), gap(r.released_ns, r.resumed_ns), next);
    out += line;
  }
  return out;
}

}  // namespace sf::gpu
