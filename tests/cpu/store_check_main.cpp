// The bootstrap path every GPU rank takes before any GPU work (launch_env.cpp, then tcp_store.cpp), alone, so that
// CPU tests run it under real launchers (tests/cpu/CMakeLists.txt, store_*): the rank's place from the launcher's
// variables, the store on MASTER_ADDR and its ports, greeted with the job's name, a gather of every rank's value in
// rank order and a barrier. Prints "store ok: rank R of W, job '...', ports ..." and exits 0, or the error and 1.
// Rank 0 then keeps its store up for hold_s (tests of another job meeting it).
//   sf_store_check [timeout_s [hold_s]]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "backends/gpu_runtime/launch_env.h"
#include "backends/gpu_runtime/tcp_store.h"

int main(int argc, char** argv) {
  const int timeout_s = argc > 1 ? std::atoi(argv[1]) : 10;
  const double hold_s = argc > 2 ? std::atof(argv[2]) : 0.0;
  auto env = sf::gpu::read_launch_env();
  if (!env.is_ok()) {
    std::fprintf(stderr, "store check: %s\n", env.status().to_string().c_str());
    return 1;
  }
  const sf::gpu::LaunchInfo& l = env.value();
  auto store = sf::gpu::TcpStore::create(l.rank, l.world_size, l.master_addr, l.store_ports,
                                         std::chrono::seconds(timeout_s), l.job);
  if (!store.is_ok()) {
    std::fprintf(stderr, "store check: rank %d: %s\n", l.rank, store.status().to_string().c_str());
    return 1;
  }
  auto all = store.value()->all_gather("check", "rank-" + std::to_string(l.rank));
  if (!all.is_ok()) {
    std::fprintf(stderr, "store check: rank %d: %s\n", l.rank, all.status().to_string().c_str());
    return 1;
  }
  for (int r = 0; r < l.world_size; ++r) {
    if (all.value()[static_cast<size_t>(r)] != "rank-" + std::to_string(r)) {
      std::fprintf(stderr, "store check: rank %d got '%s' for rank %d\n", l.rank,
                   all.value()[static_cast<size_t>(r)].c_str(), r);
      return 1;
    }
  }
  if (const sf::Status b = store.value()->barrier("end"); !b.is_ok()) {
    std::fprintf(stderr, "store check: rank %d: %s\n", l.rank, b.to_string().c_str());
    return 1;
  }
  if (l.rank == 0) {
    std::printf("store ok: rank 0 of %d (%s), job '%s', ports %s\n", l.world_size, l.source.c_str(), l.job.c_str(),
                sf::gpu::store_ports_text(l).c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(hold_s));
  }
  return 0;
}
