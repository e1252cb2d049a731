#include "nic_board.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <new>
#include <thread>

#include "streamfusion/env_choice.h"

namespace sf::gpu {

NicBoard::~NicBoard() {
  if (mapped_) munmap(s_, sizeof(Shared));
  else delete s_;
}

Status NicBoard::check_ranks(int ranks) {
  if (ranks < 1 || ranks > kMaxRanks)
    return invalid_argument("emulated NICs: between 1 and " + std::to_string(kMaxRanks) + " ranks on one host, found " +
                            std::to_string(ranks));
  return Status::ok();
}

Result<NicSharing> NicBoard::sharing_from_env() {
  SF_ASSIGN_OR_RETURN(const int fair, env_choice("SF_EMULATED_NIC", {"fifo", "fair"}));
  return fair == 1 ? NicSharing::kFair : NicSharing::kFifo;
}

Result<std::unique_ptr<NicBoard>> NicBoard::create_private(int ranks, NicSharing sharing) {
  SF_RETURN_IF_ERROR(check_ranks(ranks));
  Shared* s = new Shared{};  // zeroed: no flow in use
  s->ranks = static_cast<uint32_t>(ranks);
  s->sharing = sharing;
  return std::unique_ptr<NicBoard>(new NicBoard(s, false));
}

namespace {

Result<void*> map_shared(const std::string& name, bool create, size_t bytes) {
  const int fd = shm_open(name.c_str(), create ? O_CREAT | O_EXCL | O_RDWR : O_RDWR, 0600);
  if (fd < 0)
    return backend_error("emulated NICs: shm_open(" + name + ") failed: " + std::strerror(errno) +
                         (create ? "" : " (rank 0 creates it; do all ranks run on one host?)"));
  if (create && ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    close(fd);
    return backend_error("emulated NICs: ftruncate of " + name + " failed: " + std::strerror(err));
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  close(fd);
  if (p == MAP_FAILED) return backend_error("emulated NICs: mmap of " + name + " failed: " + std::strerror(err));
  return p;
}

}  // namespace

Result<std::unique_ptr<NicBoard>> NicBoard::create_shared(const std::string& name, int ranks, NicSharing sharing) {
  SF_RETURN_IF_ERROR(check_ranks(ranks));
  SF_ASSIGN_OR_RETURN(void* p, map_shared(name, true, sizeof(Shared)));
  Shared* s = new (p) Shared{};  // ftruncate zeroed the pages; this starts the atomic's lifetime
  s->ranks = static_cast<uint32_t>(ranks);
  s->sharing = sharing;
  return std::unique_ptr<NicBoard>(new NicBoard(s, true));
}

Result<std::unique_ptr<NicBoard>> NicBoard::open_shared(const std::string& name, int ranks, NicSharing sharing) {
  SF_RETURN_IF_ERROR(check_ranks(ranks));
  SF_ASSIGN_OR_RETURN(void* p, map_shared(name, false, sizeof(Shared)));
  auto board = std::unique_ptr<NicBoard>(new NicBoard(static_cast<Shared*>(p), true));
  if (board->s_->ranks != static_cast<uint32_t>(ranks))
    return internal_error("emulated NICs: " + name + " was made for " + std::to_string(board->s_->ranks) +
                          " ranks, this one expects " + std::to_string(ranks));
  if (board->s_->sharing != sharing)
    return invalid_argument("emulated NICs: " + name + " shares bandwidth as '" +
                            (board->s_->sharing == NicSharing::kFair ? "fair" : "fifo") +
                            "', this rank expects '" + (sharing == NicSharing::kFair ? "fair" : "fifo") +
                            "' (SF_EMULATED_NIC must be the same on every rank)");
  return board;
}

void NicBoard::unlink(const std::string& name) { shm_unlink(name.c_str()); }

void NicBoard::lock() {
  while (s_->lock.exchange(1, std::memory_order_acquire) != 0) std::this_thread::yield();
}

void NicBoard::unlock() { s_->lock.store(0, std::memory_order_release); }

int NicBoard::start(uint64_t now_ns, int rank, int fifo, int far_rank, int far_fifo, uint64_t duration_ns) {
  lock();
  advance(now_ns);  // the flows in flight moved at their old rates until now
  int id = kNone;
  for (int i = 0; i < kMaxFlows && id == kNone; ++i)
    if (s_->flows[i].state == 0) id = i;
  if (id != kNone) {
    Flow& f = s_->flows[id];
    f.queue[0] = rank * 2 + fifo;
    f.queue[1] = far_rank == kNone ? -1 : far_rank * 2 + far_fifo;
    f.order = s_->next_order++;
    f.left_ns = duration_ns;
    f.fair_left_ns = static_cast<double>(duration_ns);
    f.started_ns = duration_ns == 0 ? now_ns : kNotYet;
    f.done_ns = now_ns;
    f.state = duration_ns == 0 ? 2 : 1;
    s_->high = std::max(s_->high, id + 1);
  }
  unlock();
  return id;
}

void NicBoard::advance_to(uint64_t now_ns) {
  lock();
  advance(now_ns);
  unlock();
}

void NicBoard::advance(uint64_t now_ns) {
  if (s_->sharing == NicSharing::kFair) advance_fair(now_ns);
  else advance_fifo(now_ns);
  s_->now_ns = std::max(s_->now_ns, now_ns);
}

// Piecewise: which flows move holds until the next one finishes.
void NicBoard::advance_fifo(uint64_t now_ns) {
  uint64_t t = s_->now_ns;
  int live[kMaxFlows];
  bool taken[kMaxRanks * 2];
  while (t < now_ns) {
    int n = 0;
    for (int i = 0; i < s_->high; ++i)
      if (s_->flows[i].state == 1) live[n++] = i;
    std::sort(live, live + n, [this](int a, int b) { return s_->flows[a].order < s_->flows[b].order; });
    std::fill(taken, taken + kMaxRanks * 2, false);
    uint64_t step = now_ns - t;
    int moving = 0;
    for (int k = 0; k < n; ++k) {
      Flow& f = s_->flows[live[k]];
      const bool free0 = !taken[f.queue[0]], free1 = f.queue[1] < 0 || !taken[f.queue[1]];
      if (!free0 || !free1) {
        live[k] = -1;  // waits this step
        continue;
      }
      taken[f.queue[0]] = true;
      if (f.queue[1] >= 0) taken[f.queue[1]] = true;
      if (f.started_ns == kNotYet) f.started_ns = t;
      step = std::min(step, f.left_ns);
      ++moving;
    }
    if (moving == 0) break;
    for (int k = 0; k < n; ++k) {
      if (live[k] < 0) continue;
      Flow& f = s_->flows[live[k]];
      f.left_ns -= step;
      if (f.left_ns == 0) {
        f.state = 2;
        f.done_ns = t + step;
      }
    }
    t += step;
  }
}

// Piecewise: the rates hold until the next flow finishes. Only the earliest-booked flow between two queues moves
// (one queue pair is one connection, whose requests a NIC serves in order); those share by progressive filling:
// the queue that can give its unfixed flows the least each fixes them at that share, which then counts against
// their other queue.
void NicBoard::advance_fair(uint64_t now_ns) {
  if (now_ns <= s_->now_ns) return;
  // Times from the board's last point, so that doubles keep sub-nanosecond steps (the clock counts from boot).
  const uint64_t base = s_->now_ns;
  double t = 0.0;
  const double end = static_cast<double>(now_ns - base);
  int live[kMaxFlows];
  double rate[kMaxFlows];
  double capacity[kMaxRanks * 2];
  int unfixed_users[kMaxRanks * 2];
  while (t < end) {
    int n = 0;
    for (int i = 0; i < s_->high; ++i) {
      const Flow& f = s_->flows[i];
      if (f.state != 1) continue;
      bool first_of_pair = true;  // no earlier flow between the same two queues still moving
      for (int j = 0; j < s_->high && first_of_pair; ++j) {
        const Flow& g = s_->flows[j];
        first_of_pair = !(g.state == 1 && g.order < f.order && g.queue[0] == f.queue[0] && g.queue[1] == f.queue[1]);
      }
      if (first_of_pair) live[n++] = i;
    }
    if (n == 0) break;
    std::fill(capacity, capacity + kMaxRanks * 2, 1.0);
    std::fill(rate, rate + n, -1.0);  // -1: not fixed yet
    for (int fixed = 0; fixed < n;) {
      std::fill(unfixed_users, unfixed_users + kMaxRanks * 2, 0);
      for (int k = 0; k < n; ++k) {
        if (rate[k] >= 0.0) continue;
        for (int q : s_->flows[live[k]].queue)
          if (q >= 0) ++unfixed_users[q];
      }
      int tight = -1;
      for (int q = 0; q < kMaxRanks * 2; ++q) {
        if (unfixed_users[q] == 0) continue;
        if (tight < 0 || capacity[q] / unfixed_users[q] < capacity[tight] / unfixed_users[tight]) tight = q;
      }
      const double share = std::max(capacity[tight], 0.0) / unfixed_users[tight];
      for (int k = 0; k < n; ++k) {
        const Flow& f = s_->flows[live[k]];
        if (rate[k] >= 0.0 || (f.queue[0] != tight && f.queue[1] != tight)) continue;
        rate[k] = share;
        ++fixed;
        for (int q : f.queue)
          if (q >= 0) capacity[q] -= share;
      }
    }
    double step = end - t;
    for (int k = 0; k < n; ++k)
      if (rate[k] > 0.0) step = std::min(step, s_->flows[live[k]].fair_left_ns / rate[k]);
    for (int k = 0; k < n; ++k) {
      Flow& f = s_->flows[live[k]];
      if (rate[k] <= 0.0) continue;
      if (f.started_ns == kNotYet) f.started_ns = base + static_cast<uint64_t>(std::llround(t));
      f.fair_left_ns -= rate[k] * step;
      if (f.fair_left_ns <= 1e-3) {  // what rounding leaves of a flow that ends in this step
        f.state = 2;
        f.done_ns = base + static_cast<uint64_t>(std::llround(t + step));
      }
    }
    if (!(step > 0.0)) break;  // nothing can move (not reached with capacities of 1)
    t += step;
  }
}

bool NicBoard::finished(int flow, uint64_t* started_ns, uint64_t* done_ns) {
  lock();
  Flow& f = s_->flows[flow];
  const bool done = f.state == 2;
  if (done) {
    *started_ns = f.started_ns;
    *done_ns = f.done_ns;
    f.state = 0;
    while (s_->high > 0 && s_->flows[s_->high - 1].state == 0) --s_->high;
  }
  unlock();
  return done;
}

}  // namespace sf::gpu
