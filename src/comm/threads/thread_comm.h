// Comm for one rank of a threads-backend world (see thread_backend.h).
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "comm/threads/thread_world.h"
#include "streamfusion/comm.h"

namespace sf::threads {

class ThreadComm final : public Comm {
 public:
  // lag > 0 (with chaos_seed != 0): every one-sided operation completes only when waited on, lag after that
  // (ThreadWorldOptions::lagging_rank).
  ThreadComm(ThreadWorld& world, int rank, uint64_t chaos_seed, std::chrono::microseconds lag = {});
  ~ThreadComm() override;

  int rank() const override { return rank_; }
  const Topology& topology() const override { return world_.topology(); }

  Result<SymmetricBuffer> alloc_symmetric(size_t bytes) override;
  Status free_symmetric(SymmetricBuffer& buf) override;
  void* peer_address(const SymmetricBuffer& buf, int peer) override;

  Result<Handle> send(int peer, const void* data, size_t bytes, Lane lane) override;
  Result<Handle> recv(int peer, void* data, size_t bytes, Lane lane) override;
  Result<Handle> put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src, size_t bytes,
                     Lane lane) override;
  Result<Handle> get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer, size_t bytes,
                     Lane lane) override;
  Result<Handle> get_strided(void* dst, size_t dst_pitch, const SymmetricBuffer& src, size_t src_offset,
                             size_t src_pitch, size_t width, size_t rows, int peer, Lane lane) override;
  Status barrier_impl(const std::vector<int>& group, Lane lane) override;
  Status wait(Handle h) override;
  // Signals: a put_signal lands without this rank's help (a peer blocked in wait_signal must not wait for this
  // rank, which may be blocked itself, waiting for that peer's signal): at once, or with chaos from a thread of its
  // own after a random delay, so that a receiver reading before its wait_signal finds the poison.
  Result<SymmetricBuffer> alloc_signals(size_t words) override;
  Result<Handle> put_signal(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src, size_t bytes,
                            const SymmetricBuffer& signals, size_t word, uint64_t value, Lane lane) override;
  Status wait_signal(const SymmetricBuffer& signals, size_t word, uint64_t value) override;
  // Waits for every put_signal still landing from its own thread (run_thread_ranks, before any buffer is freed).
  void join_landings();

 private:
  struct PendingOp {
    bool one_sided = false;
    Lane lane = Lane::kMain;
    int recv_peer = -1;  // for receives: complete earlier receives from the same peer first (FIFO)
    std::function<Status()> complete;
  };
  Status check_peer(int peer, const char* op) const;
  Result<Handle> add_one_sided(Lane lane, std::function<Status()> complete);
  Status complete(int64_t id);

  ThreadWorld& world_;
  const int rank_;
  int next_buffer_id_ = 0;
  int64_t next_op_ = 0;
  std::map<int64_t, PendingOp> pending_;  // ordered by issue
  std::map<int32_t, void*> owned_;        // symmetric buffers this rank allocated
  std::mt19937_64 chaos_;
  bool chaos_on_;
  std::chrono::microseconds lag_;
  std::vector<std::shared_ptr<std::thread>> landings_;  // chaos: put_signals landing from threads of their own
  // Chaos: each lane's last put_signal landing; the next one lands after it, as a GPU stream's transfers do (a
  // later put that landed first would raise a word that the earlier put's data is still behind).
  std::shared_future<void> last_landing_[2];
};

}  // namespace sf::threads
