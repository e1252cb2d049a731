// A tiny key-value store over TCP for bootstrapping processes (NCCL and NVSHMEM unique ids, barriers, result
// gathering) without MPI. Rank 0 serves on MASTER_PORT; every rank, rank 0 included, talks to it through the
// same blocking set/get calls. Works across hosts: nothing here assumes one machine.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "streamfusion/status.h"

namespace sf::gpu {

class TcpStore {
 public:
  // Rank 0 starts the server (binding `port` on all interfaces); the others connect to host:port, retrying
  // until `timeout` (the server may start after them).
  static Result<std::unique_ptr<TcpStore>> create(int rank, int world_size, const std::string& host, int port,
                                                  std::chrono::milliseconds timeout);
  ~TcpStore();
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  Status set(const std::string& key, const std::string& value);
  // Blocks until the key exists (kTimeout after the store's timeout).
  Result<std::string> get(const std::string& key);
  // Every rank contributes `value`; returns all ranks' values in rank order. `tag` must be unique per call.
  Result<std::vector<std::string>> all_gather(const std::string& tag, const std::string& value);
  Status barrier(const std::string& tag);

  // Ranks whose connection dropped without a goodbye (only known on rank 0, the server).
  std::vector<int> lost_ranks() const;

 private:
  TcpStore() = default;
  struct Server;
  Status request(uint8_t op, const std::string& key, const std::string& value, std::string* reply);

  int rank_ = 0;
  int world_ = 1;
  std::chrono::milliseconds timeout_{0};
  int fd_ = -1;  // client connection (every rank, rank 0 to its own server)
  std::mutex client_mu_;
  std::unique_ptr<Server> server_;
};

}  // namespace sf::gpu
