#include "nic_board.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

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

Result<std::unique_ptr<NicBoard>> NicBoard::create_private(int ranks) {
  SF_RETURN_IF_ERROR(check_ranks(ranks));
  Shared* s = new Shared{};
  s->ranks = static_cast<uint32_t>(ranks);
  return std::unique_ptr<NicBoard>(new NicBoard(s, ranks, false));
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

Result<std::unique_ptr<NicBoard>> NicBoard::create_shared(const std::string& name, int ranks) {
  SF_RETURN_IF_ERROR(check_ranks(ranks));
  SF_ASSIGN_OR_RETURN(void* p, map_shared(name, true, sizeof(Shared)));
  Shared* s = new (p) Shared{};  // ftruncate zeroed the pages; this starts the atomic's lifetime
  s->ranks = static_cast<uint32_t>(ranks);
  return std::unique_ptr<NicBoard>(new NicBoard(s, ranks, true));
}

Result<std::unique_ptr<NicBoard>> NicBoard::open_shared(const std::string& name, int ranks) {
  SF_RETURN_IF_ERROR(check_ranks(ranks));
  SF_ASSIGN_OR_RETURN(void* p, map_shared(name, false, sizeof(Shared)));
  auto board = std::unique_ptr<NicBoard>(new NicBoard(static_cast<Shared*>(p), ranks, true));
  if (board->s_->ranks != static_cast<uint32_t>(ranks))
    return internal_error("emulated NICs: " + name + " was made for " + std::to_string(board->s_->ranks) +
                          " ranks, this one expects " + std::to_string(ranks));
  return board;
}

void NicBoard::unlink(const std::string& name) { shm_unlink(name.c_str()); }

uint64_t NicBoard::book(uint64_t now_ns, int rank, int fifo, int far_rank, int far_fifo, uint64_t duration_ns) {
  while (s_->lock.exchange(1, std::memory_order_acquire) != 0) std::this_thread::yield();
  uint64_t& mine = s_->tail_ns[rank][fifo];
  uint64_t start = std::max(now_ns, mine);
  if (far_rank != kNone) start = std::max(start, s_->tail_ns[far_rank][far_fifo]);
  mine = start + duration_ns;
  if (far_rank != kNone) s_->tail_ns[far_rank][far_fifo] = start + duration_ns;
  s_->lock.store(0, std::memory_order_release);
  return start;
}

void NicBoard::reset(int rank) {
  while (s_->lock.exchange(1, std::memory_order_acquire) != 0) std::this_thread::yield();
  s_->tail_ns[rank][0] = s_->tail_ns[rank][1] = 0;
  s_->lock.store(0, std::memory_order_release);
}

}  // namespace sf::gpu
