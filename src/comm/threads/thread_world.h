// State shared by the rank threads of one threads-backend world: the symmetric heap table, the two-sided
// mailboxes, group barriers, and the abort flag that releases every waiter once a rank has failed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "streamfusion/status.h"
#include "streamfusion/topology.h"

namespace sf::threads {

class ThreadWorld {
 public:
  ThreadWorld(const Topology& topo, std::chrono::milliseconds timeout) : topo_(topo), timeout_(timeout) {}

  const Topology& topology() const { return topo_; }

  // Blocks until every rank in `group` has arrived (group-specific generation counting).
  Status barrier(int rank, const std::vector<int>& group, const char* what);

  // Symmetric heap: buffer `id` of `rank`. register_buffer is called by each rank inside a collective
  // allocation; sizes must agree.
  Status register_buffer(int rank, int id, void* ptr, size_t bytes);
  void unregister_buffer(int rank, int id);
  // Peer's instance of buffer id, checked against [offset, offset + bytes).
  Result<char*> peer_buffer(int peer, int id, size_t offset, size_t bytes);

  // Two-sided: FIFO per (src, dst) pair.
  void post(int src, int dst, std::vector<char> message);
  Result<std::vector<char>> take(int src, int dst);

  // Arrival signals: a word of a symmetric buffer, written and read under the world's lock (so the data a put
  // wrote before setting it is visible to whoever sees the value), and waited for until it reaches `value`.
  void set_word(uint64_t* word, uint64_t value);
  Status wait_word(int rank, const uint64_t* word, uint64_t value, const std::string& what);

  // Marks the world failed and wakes every waiter.
  void abort(const std::string& why);
  bool aborted();

 private:
  Status failed_status(int rank, const std::string& op) const;

  const Topology topo_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  std::string abort_reason_;
  struct BarrierState {
    int arrived = 0;
    uint64_t generation = 0;
  };
  std::map<std::vector<int>, BarrierState> barriers_;
  struct BufferEntry {
    char* ptr = nullptr;
    size_t bytes = 0;
  };
  std::map<std::pair<int, int>, BufferEntry> heap_;  // (id, rank) -> buffer
  std::map<std::pair<int, int>, std::deque<std::vector<char>>> mail_;  // (src, dst) -> messages
};

}  // namespace sf::threads
