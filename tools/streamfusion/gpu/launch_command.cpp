// `streamfusion launch -n 4 -- <command...>`: starts one process per GPU of this host with the variables
// torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), waits for all,
// and when one fails gives the others a grace period (their own watchdogs report where they are stuck), then
// terminates them. The exit code is the first failure's. Stopped itself (SIGTERM, SIGINT, SIGHUP) it terminates
// the ranks and exits 128 + the signal; killed outright, the kernel terminates them (PR_SET_PDEATHSIG).
// On several hosts, as torchrun's static rendezvous: one launch per host with `--nnodes N --node-rank K
// --master-addr HOST0` (and one `--port` everywhere), ranks K·n .. K·n + n - 1 here; the job's ranks meet in rank 0's
// store on HOST0, so the launches may start in any order. A failure ends this host's ranks only: the others learn
// of it through their own watchdogs and NCCL's error polling, and end with a message (watchdog.h).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpu_commands.h"
#include "tcp_store.h"

namespace sf::cli {
namespace {

// True when a listening socket could take `port` on every address, as rank 0's store will (INADDR_ANY).
bool port_free(int port) {
  const int fd = gpu::TcpStore::bind_any_address(port);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

// The store's port. Chosen below the kernel's ephemeral range (ip_local_port_range, where outgoing connections
// take their local ports): a port picked by bind(0) lies inside it and can be taken by some connection between
// this check and rank 0's bind, which happened once on a busy GPU host ("Address already in use").
int free_port() {
  int low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &low) != 1) low = 32768;
    std::fclose(f);
  }
  const int first = 20000, last = std::max(first + 1000, low - 1);
  std::mt19937 rng(static_cast<unsigned>(::getpid()) ^
                   static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 64; ++attempt) {
    const int port = first + static_cast<int>(rng() % static_cast<unsigned>(last - first + 1));
    if (port_free(port)) return port;
  }
  return 29500;  // torchrun's default; rank 0 says clearly if it is taken
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

struct LaunchOptions {
  int nproc = 1;
  int nnodes = 1, node_rank = 0;
  std::string master_addr;  // node 0's host (required with nnodes > 1)
  int port = 0;
  double grace_s = 30.0;
  std::vector<std::string> command;
};

// The command after `launch ... --`, taken off the command line before CLI11 parses it (launch_command_from):
// CLI11 reads an argument like "[a,b]" as a list and would hand on "a" "b", so the launched command never goes
// through it.
struct SplitCommand {
  bool split = false;
  std::vector<std::string> command;
};
SplitCommand& split_command() {
  static SplitCommand c;
  return c;
}

// A signal that asks the launcher to stop (SIGTERM from a scheduler or `timeout`, SIGINT, SIGHUP): the wait loop
// passes it on to the ranks, which would otherwise keep their GPUs busy as orphans.
volatile sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

int run_launch(const LaunchOptions& o) {
  // One process per GPU of this host: thousands would be a typo, and forking them all would exhaust the host first.
  constexpr int kMostPerHost = 256;
  if (o.nproc < 1 || o.nproc > kMostPerHost) {
    std::fprintf(stderr, "launch: -n must be at least 1 and at most %d, one process per GPU of this host (got %d)\n",
                 kMostPerHost, o.nproc);
    return 2;
  }
  // The store takes the first free of MASTER_PORT and MASTER_PORT+2..+8 (tcp_store.h); 0 picks a free port.
  if (o.port < 0 || o.port > 65535 - 8) {
    std::fprintf(stderr, "launch: --port must be 0 (a free port) or from 1 to %d (got %d)\n", 65535 - 8, o.port);
    return 2;
  }
  if (!(o.grace_s >= 0)) {
    std::fprintf(stderr, "launch: --grace must be a number of seconds of at least 0 (got %g)\n", o.grace_s);
    return 2;
  }
  if (o.command.empty()) {
    std::fprintf(stderr, "launch: no command given (usage: streamfusion launch -n 4 -- ./program args)\n");
    return 2;
  }
  if (o.nnodes < 1 || o.node_rank < 0 || o.node_rank >= o.nnodes) {
    std::fprintf(stderr, "launch: --node-rank must be in [0, --nnodes %d) (got %d)\n", o.nnodes, o.node_rank);
    return 2;
  }
  const bool several_hosts = o.nnodes > 1;
  if (several_hosts && o.master_addr.empty()) {
    std::fprintf(stderr, "launch: --nnodes %d needs --master-addr (node 0's host name or address, where rank 0's "
                 "bootstrap store listens)\n", o.nnodes);
    return 2;
  }
  // One port on every host: a free port found here would be this host's guess alone.
  const int port = o.port > 0 ? o.port : several_hosts ? 29500 : free_port();
  const std::string master_addr = o.master_addr.empty() ? "127.0.0.1" : o.master_addr;
  // This launch's name, which its ranks greet the bootstrap store with (tcp_store.h): ranks of another job whose
  // store sits on the same port pass it over instead of joining it. On several hosts every launch must give the
  // same: the store's address and the job's size.
  const std::string launch_id = several_hosts ? master_addr + ":" + std::to_string(port) + "/" +
                                                    std::to_string(o.nnodes) + "x" + std::to_string(o.nproc)
                                              : std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
  const int first_rank = o.node_rank * o.nproc;  // this host's ranks: first_rank + local rank
  std::vector<pid_t> pids(static_cast<size_t>(o.nproc), -1);
  catch_stop_signals();
  const pid_t launcher = ::getpid();
  for (int r = 0; r < o.nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("launch: fork");
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGTERM);
      return 1;
    }
    if (pid == 0) {
      // A launcher killed outright (SIGKILL, a crash) cannot pass anything on: the kernel sends the rank SIGTERM
      // when it goes (kept across exec); one already gone before this line leaves the rank nothing to run for.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) _exit(128 + SIGTERM);
      setenv("RANK", std::to_string(first_rank + r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(o.nnodes * o.nproc).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
      setenv("GROUP_RANK", std::to_string(o.node_rank).c_str(), 1);
      setenv("MASTER_ADDR", master_addr.c_str(), 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("SF_LAUNCH_ID", launch_id.c_str(), 1);
      // NVLink multicast stays off on shared machines (GPU-MACHINES.md), whatever the parent had.
      setenv("NCCL_NVLS_ENABLE", "0", 1);
      setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1);
      setenv("NVSHMEM_DISABLE_NVLS", "1", 1);
      std::vector<char*> argv;
      for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::fprintf(stderr, "launch: rank %d could not start '%s': %s\n", first_rank + r, argv[0],
                   std::strerror(errno));
      _exit(127);
    }
    pids[static_cast<size_t>(r)] = pid;
  }

  int first_failure = 0;
  int running = o.nproc;
  std::chrono::steady_clock::time_point failed_at{}, terminated_at{};
  bool terminated = false, killed = false;
  const auto terminate_all = [&](const char* why) {
    terminated = true;
    terminated_at = std::chrono::steady_clock::now();
    for (int r = 0; r < o.nproc; ++r) {
      if (pids[static_cast<size_t>(r)] > 0) {
        std::fprintf(stderr, "[launch] terminating rank %d%s\n", first_rank + r, why);
        ::kill(pids[static_cast<size_t>(r)], SIGTERM);
      }
    }
  };
  while (running > 0) {
    if (const int sig = g_stop_signal; sig != 0 && !terminated) {
      std::fprintf(stderr, "[launch] got signal %d (%s)\n", sig, strsignal(sig));
      if (first_failure == 0) first_failure = 128 + sig;
      terminate_all(" (the launcher was stopped)");
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int rank = -1;
      for (int r = 0; r < o.nproc; ++r)
        if (pids[static_cast<size_t>(r)] == pid) rank = r;
      if (rank < 0) continue;
      pids[static_cast<size_t>(rank)] = -1;
      --running;
      const int code = exit_code_of(status);
      if (code != 0) {
        std::fprintf(stderr, "[launch] rank %d %s\n", first_rank + rank, describe_status(status).c_str());
        if (first_failure == 0) {
          first_failure = code;
          failed_at = std::chrono::steady_clock::now();
          if (running > 0) {
            std::fprintf(stderr, "[launch] giving the %d other rank(s) %.0f s to finish before terminating them\n",
                         running, o.grace_s);
          }
        }
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    const auto now = std::chrono::steady_clock::now();
    if (first_failure != 0 && !terminated &&
        std::chrono::duration<double>(now - failed_at).count() > o.grace_s) {
      terminate_all("");
    } else if (terminated && !killed && std::chrono::duration<double>(now - terminated_at).count() > 10.0) {
      killed = true;  // SIGTERM was not enough within 10 s
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return first_failure;
}

}  // namespace

int launch_command_from(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "launch") != 0) return argc;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      split_command().split = true;
      split_command().command.assign(argv + i + 1, argv + argc);
      return i;
    }
  }
  return argc;
}

void register_launch_command(CLI::App& app) {
  auto opts = std::make_shared<LaunchOptions>();
  CLI::App* sub = app.add_subcommand(
      "launch", "Start one process per GPU on this host, with RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT set "
                "(on several hosts: one launch per host with --nnodes, --node-rank, --master-addr)");
  sub->add_option("-n,--nproc", opts->nproc, "Number of processes (GPUs) on this host")->required();
  sub->add_option("--nnodes", opts->nnodes, "Hosts in the job, one launch on each (default 1)");
  sub->add_option("--node-rank", opts->node_rank, "This host's place among them, 0 .. nnodes-1 (default 0)");
  sub->add_option("--master-addr", opts->master_addr, "Node 0's host, where rank 0's store listens (nnodes > 1)");
  sub->add_option("--port", opts->port,
                  "MASTER_PORT for the bootstrap store (default: a free port; 29500 on several hosts)");
  sub->add_option("--grace", opts->grace_s, "Seconds the other ranks get after one fails, before SIGTERM");
  sub->add_option("command", opts->command, "The command to run, after --");
  sub->callback([opts] {
    if (split_command().split) opts->command = split_command().command;
    const int rc = run_launch(*opts);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace sf::cli
