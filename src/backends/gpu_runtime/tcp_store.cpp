#include "tcp_store.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace sf::gpu {
namespace {

enum : uint8_t { kOpHello = 1, kOpSet = 2, kOpGet = 3, kOpBye = 4, kOpAbort = 5 };
enum : uint8_t { kReplyOk = 0, kReplyTimeout = 1, kReplyAborted = 2 };

std::string errno_text() { return std::strerror(errno); }

// What the server answers a greeting with, and what a client expects: a store of another job (or of a rank that
// counts another world) on the port a client tries is not taken for ours.
std::string store_token(const std::string& job, int world_size) {
  return "streamfusion-store job '" + job + "' world " + std::to_string(world_size);
}

std::string port_list(const std::vector<int>& ports) {
  std::string s;
  for (int p : ports) s += (s.empty() ? "" : ", ") + std::to_string(p);
  return s;
}

// Send and receive timeouts of a socket (zero: none).
void set_io_timeout(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// connect() bounded in time: a port whose listener does not accept (its backlog full, a firewall that drops)
// would otherwise hold a blocking connect for minutes, past the store's own timeout.
bool connect_within(int fd, const sockaddr* addr, socklen_t len, int timeout_ms, std::string* why) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int err = ::connect(fd, addr, len) == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    socklen_t n = sizeof err;
    if (r == 0) err = ETIMEDOUT;
    else if (r < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0) err = errno;
  }
  ::fcntl(fd, F_SETFL, flags);
  if (err != 0) *why = err == ETIMEDOUT ? "the connection was not accepted within " + std::to_string(timeout_ms) +
                                              " ms" : std::strerror(err);
  return err == 0;
}

// Whether a connected socket reached itself: on loopback, a connect() to a port nobody listens on can be given
// that very port as its own and "succeed" (TCP's simultaneous open). Clients retry for a long time while rank 0
// starts, and the port guessed beside torchrun's store is of the kind connect() hands out, so it can happen.
bool connected_to_itself(int fd) {
  sockaddr_in self{}, peer{};
  socklen_t a = sizeof self, b = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &a) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &b) != 0)
    return false;
  return self.sin_port == peer.sin_port && self.sin_addr.s_addr == peer.sin_addr.s_addr;
}

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_str(int fd, const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  return write_all(fd, &n, 4) && write_all(fd, s.data(), s.size());
}

bool read_str(int fd, std::string* s) {
  uint32_t n = 0;
  if (!read_all(fd, &n, 4)) return false;
  if (n > (64u << 20)) return false;  // garbage on the port: refuse rather than allocate
  s->resize(n);
  return read_all(fd, s->data(), n);
}

}  // namespace

struct TcpStore::Server {
  int listen_fd = -1;
  std::string token;  // the greeting's answer (store_token)
  std::chrono::milliseconds timeout{0};
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> kv;
  std::set<int> lost;
  std::string aborted;  // the first reason a rank gave for giving up (abort); empty: none
  int goodbyes = 0;
  bool stop = false;
  std::thread acceptor;
  std::vector<std::thread> workers;
  std::vector<int> client_fds;

  void serve(int fd) {
    int peer_rank = -1;
    bool said_bye = false;
    for (;;) {
      uint8_t op = 0;
      std::string key, value;
      if (!read_all(fd, &op, 1) || !read_str(fd, &key) || !read_str(fd, &value)) break;
      if (op == kOpHello) {  // value: the rank, a newline, the client's token
        const size_t nl = value.find('\n');
        const bool ours = nl != std::string::npos && value.compare(nl + 1, std::string::npos, token) == 0;
        uint8_t ok = kReplyOk;
        if (!write_all(fd, &ok, 1) || !write_str(fd, token) || !ours) break;  // another job's client: not a rank
        peer_rank = std::atoi(value.c_str());
      } else if (op == kOpSet) {
        {
          std::lock_guard<std::mutex> lock(mu);
          kv[key] = value;
        }
        cv.notify_all();
        uint8_t ok = kReplyOk;
        if (!write_all(fd, &ok, 1) || !write_str(fd, "")) break;
      } else if (op == kOpGet) {
        // A key that is not there yet is waited for until it comes, the timeout, or news that it never will: a rank
        // gave up (abort) or left without a goodbye. A job missing a rank cannot finish any wait that needs it.
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, timeout, [&] { return stop || kv.count(key) > 0 || !aborted.empty() || !lost.empty(); });
        uint8_t st = kReplyTimeout;  // also when the server stops
        std::string v;
        if (!stop && kv.count(key) > 0) {
          st = kReplyOk;
          v = kv[key];
        } else if (!stop && !aborted.empty()) {
          st = kReplyAborted;
          v = aborted;
        } else if (!stop && !lost.empty()) {
          st = kReplyAborted;
          v = "rank " + std::to_string(*lost.begin()) + " left the job without a goodbye (it exited or was killed)";
        }
        lock.unlock();
        if (!write_all(fd, &st, 1) || !write_str(fd, v)) break;
      } else if (op == kOpAbort) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (aborted.empty()) aborted = value;
        }
        cv.notify_all();
        uint8_t ok = kReplyOk;
        if (!write_all(fd, &ok, 1) || !write_str(fd, "")) break;
      } else if (op == kOpBye) {
        said_bye = true;
        {
          std::lock_guard<std::mutex> lock(mu);
          ++goodbyes;
        }
        cv.notify_all();
        uint8_t ok = kReplyOk;
        write_all(fd, &ok, 1) && write_str(fd, "");
        break;
      } else {
        break;
      }
    }
    if (!said_bye && peer_rank >= 0) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!stop) lost.insert(peer_rank);
      }
      cv.notify_all();
    }
  }

  void accept_loop() {
    for (;;) {
      pollfd p{listen_fd, POLLIN, 0};
      int r = ::poll(&p, 1, 100);
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) return;
      }
      if (r <= 0) continue;
      int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard<std::mutex> lock(mu);
      client_fds.push_back(fd);
      workers.emplace_back([this, fd] { serve(fd); });
    }
  }

  ~Server() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (acceptor.joinable()) acceptor.join();
    for (int fd : client_fds) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : workers) t.join();
    for (int fd : client_fds) ::close(fd);
    if (listen_fd >= 0) ::close(listen_fd);
  }
};

int TcpStore::bind_any_address(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  const int err = errno;
  ::close(fd);
  errno = err;
  return -1;
}

int TcpStore::connect_and_greet(const std::string& host, int port, int rank, const std::string& token,
                                std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    *why = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = ::socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  const bool connected = fd >= 0 && connect_within(fd, res->ai_addr, res->ai_addrlen, 2000, why);
  ::freeaddrinfo(res);
  if (!connected) {
    if (fd < 0) *why = errno_text();
    if (fd >= 0) ::close(fd);
    return -1;
  }
  if (connected_to_itself(fd)) {
    *why = "no server (the connection reached itself)";
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // The greeting, bounded in time: a program that is not a store may never answer.
  set_io_timeout(fd, 2);
  const std::string hello = std::to_string(rank) + "\n" + token;
  uint8_t op = kOpHello, st = 0;
  std::string reply;
  if (!write_all(fd, &op, 1) || !write_str(fd, "") || !write_str(fd, hello) || !read_all(fd, &st, 1) ||
      !read_str(fd, &reply)) {
    *why = "something listens there but did not answer as a store";
    ::close(fd);
    return -1;
  }
  if (st != kReplyOk || reply != token) {
    *why = "a store of another job answered (\"" + reply.substr(0, 120) + "\", expected \"" + token + "\")";
    ::close(fd);
    return -1;
  }
  set_io_timeout(fd, 0);  // a get may wait for as long as the store's timeout
  return fd;
}

Result<std::unique_ptr<TcpStore>> TcpStore::create(int rank, int world_size, const std::string& host,
                                                   const std::vector<int>& ports, std::chrono::milliseconds timeout,
                                                   const std::string& job) {
  if (ports.empty()) return invalid_argument("store: no port to serve or reach rank 0 on");
  std::unique_ptr<TcpStore> s(new TcpStore());
  s->rank_ = rank;
  s->world_ = world_size;
  s->timeout_ = timeout;
  const std::string token = store_token(job, world_size);
  std::vector<int> targets = ports;
  if (rank == 0) {
    auto srv = std::make_unique<Server>();
    srv->timeout = timeout;
    srv->token = token;
    // The first port free: one taken by another socket (EADDRINUSE) passes to the next; any other failure ends it.
    int bound = -1;
    for (int port : ports) {
      const int fd = bind_any_address(port);
      if (fd >= 0) {
        srv->listen_fd = fd;
        bound = port;
        break;
      }
      const int err = errno;
      if (err != EADDRINUSE || port == ports.back()) {
        errno = err;
        return backend_error("store: rank 0 cannot listen on port " +
                             (ports.size() == 1 ? std::to_string(port) : "any of " + port_list(ports)) + ": " +
                             errno_text() + " (is MASTER_PORT in use by another job?)");
      }
    }
    if (::listen(srv->listen_fd, 1024) != 0) return backend_error("store: listen() failed: " + errno_text());
    Server* raw = srv.get();
    srv->acceptor = std::thread([raw] { raw->accept_loop(); });
    s->server_ = std::move(srv);
    targets = {bound};
  }
  // Connect (rank 0 to its own server through loopback), each port in turn until one greets as ours.
  const std::string target = rank == 0 ? std::string("127.0.0.1") : host;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> why(targets.size(), "no attempt");
  while (s->fd_ < 0 && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < targets.size() && s->fd_ < 0; ++i)
      s->fd_ = connect_and_greet(target, targets[i], rank, token, &why[i]);
    if (s->fd_ < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (s->fd_ < 0) {
    std::string seen;
    for (size_t i = 0; i < targets.size(); ++i)
      seen += (i == 0 ? "" : "; ") + (targets.size() > 1 ? "port " + std::to_string(targets[i]) + ": " : "") + why[i];
    return Status(ErrorCode::kTimeout, "store: rank " + std::to_string(rank) + " could not reach rank 0 at " +
                                           target + ":" + port_list(targets) + " within " +
                                           std::to_string(timeout.count() / 1000) + " s: " + seen +
                                           " (check MASTER_ADDR/MASTER_PORT)");
  }
  return s;
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) {
    std::string reply;
    (void)request(kOpBye, "", "", &reply);
    ::close(fd_);
  }
  if (server_) {
    // Keep serving until every rank has said goodbye (or is gone), so nobody loses its last reply.
    std::unique_lock<std::mutex> lock(server_->mu);
    server_->cv.wait_for(lock, std::chrono::seconds(10), [&] {
      return server_->goodbyes + static_cast<int>(server_->lost.size()) >= world_;
    });
  }
  server_.reset();
}

Status TcpStore::request(uint8_t op, const std::string& key, const std::string& value, std::string* reply) {
  std::lock_guard<std::mutex> lock(client_mu_);
  uint8_t st = 0;
  if (!write_all(fd_, &op, 1) || !write_str(fd_, key) || !write_str(fd_, value) || !read_all(fd_, &st, 1) ||
      !read_str(fd_, reply)) {
    return backend_error("store: rank " + std::to_string(rank_) + " lost its connection to rank 0 (key '" + key +
                         "'); rank 0 has probably exited");
  }
  if (st == kReplyAborted) {
    return backend_error("store: rank " + std::to_string(rank_) + " stopped waiting for '" + key + "': " + *reply);
  }
  if (st == kReplyTimeout) {
    return Status(ErrorCode::kTimeout, "store: rank " + std::to_string(rank_) + " waited " +
                                           std::to_string(timeout_.count() / 1000) + " s for key '" + key +
                                           "' that no rank set; a peer has probably died or hung");
  }
  return Status::ok();
}

Status TcpStore::set(const std::string& key, const std::string& value) {
  std::string reply;
  return request(kOpSet, key, value, &reply);
}

Result<std::string> TcpStore::get(const std::string& key) {
  std::string reply;
  SF_RETURN_IF_ERROR(request(kOpGet, key, "", &reply));
  return reply;
}

Result<std::vector<std::string>> TcpStore::all_gather(const std::string& tag, const std::string& value) {
  SF_RETURN_IF_ERROR(set(tag + "/" + std::to_string(rank_), value));
  std::vector<std::string> out(static_cast<size_t>(world_));
  for (int r = 0; r < world_; ++r) {
    SF_ASSIGN_OR_RETURN(out[static_cast<size_t>(r)], get(tag + "/" + std::to_string(r)));
  }
  return out;
}

Status TcpStore::abort(const std::string& why) {
  std::string reply;
  return request(kOpAbort, "", why, &reply);
}

Status TcpStore::barrier(const std::string& tag) {
  auto r = all_gather("barrier/" + tag, "");
  return r.status();
}

std::vector<int> TcpStore::lost_ranks() const {
  if (!server_) return {};
  std::lock_guard<std::mutex> lock(server_->mu);
  return {server_->lost.begin(), server_->lost.end()};
}

}  // namespace sf::gpu
