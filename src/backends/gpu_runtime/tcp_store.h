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
  // Rank 0 starts the server on the first of `ports` that is free (on all interfaces); the others try host:port
  // for each port in turn, retrying until `timeout` (the server may start after them), and keep the first whose
  // server answers the greeting as this job's store: `job` and the world size, so that a port held by another
  // program, or by another job's store, is passed over. One port is the usual case (MASTER_PORT); several serve
  // where the port is a guess that another socket may hold (launch_env.h: beside torchrun's own store).
  static Result<std::unique_ptr<TcpStore>> create(int rank, int world_size, const std::string& host,
                                                  const std::vector<int>& ports, std::chrono::milliseconds timeout,
                                                  const std::string& job = "");
  static Result<std::unique_ptr<TcpStore>> create(int rank, int world_size, const std::string& host, int port,
                                                  std::chrono::milliseconds timeout) {
    return create(rank, world_size, host, std::vector<int>{port}, timeout);
  }
  // A socket bound to `port` on every address (SO_REUSEADDR), as rank 0's server binds it, not yet listening;
  // -1 with errno set when the port cannot be taken.
  static int bind_any_address(int port);

  ~TcpStore();
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  Status set(const std::string& key, const std::string& value);
  // Blocks until the key exists (kTimeout after the store's timeout). Fails at once, with the reason, once a rank
  // has given up (abort) or has left without a goodbye: the key may never come.
  Result<std::string> get(const std::string& key);
  // This rank cannot go on: every rank's waiting or later get fails with `why` (the first reason given wins).
  Status abort(const std::string& why);
  // Every rank contributes `value`; returns all ranks' values in rank order. `tag` must be unique per call.
  Result<std::vector<std::string>> all_gather(const std::string& tag, const std::string& value);
  Status barrier(const std::string& tag);

  // Ranks whose connection dropped without a goodbye (only known on rank 0, the server).
  std::vector<int> lost_ranks() const;

 private:
  TcpStore() = default;
  struct Server;
  Status request(uint8_t op, const std::string& key, const std::string& value, std::string* reply);
  // One connection attempt to host:port with the greeting; the connected socket, or -1 and *why.
  static int connect_and_greet(const std::string& host, int port, int rank, const std::string& token,
                               std::string* why);

  int rank_ = 0;
  int world_ = 1;
  std::chrono::milliseconds timeout_{0};
  int fd_ = -1;  // client connection (every rank, rank 0 to its own server)
  std::mutex client_mu_;
  std::unique_ptr<Server> server_;
};

}  // namespace sf::gpu
