#include "comm/threads/thread_world.h"

namespace sf::threads {

Status ThreadWorld::failed_status(int rank, const std::string& op) const {
  return Status(ErrorCode::kBackendError,
                "rank " + std::to_string(rank) + " " + op + ": another rank failed (" + abort_reason_ + ")");
}

Status ThreadWorld::barrier(int rank, const std::vector<int>& group, const char* what) {
  std::unique_lock lock(mu_);
  if (aborted_) return failed_status(rank, what);
  BarrierState& b = barriers_[group];
  const uint64_t gen = b.generation;
  if (++b.arrived == static_cast<int>(group.size())) {
    b.arrived = 0;
    ++b.generation;
    cv_.notify_all();
    return Status::ok();
  }
  const bool done = cv_.wait_for(lock, timeout_, [&] { return aborted_ || b.generation != gen; });
  if (b.generation != gen) return Status::ok();
  (void)done;
  --b.arrived;  // withdraw, so the group's count stays right for anyone who carries on
  if (aborted_) return failed_status(rank, what);
  return Status(ErrorCode::kTimeout, "rank " + std::to_string(rank) + " " + what + ": waited " +
                                         std::to_string(timeout_.count()) + " ms for " +
                                         std::to_string(group.size() - b.arrived) + " of " +
                                         std::to_string(group.size()) + " group members");
}

Status ThreadWorld::register_buffer(int rank, int id, void* ptr, size_t bytes) {
  std::lock_guard lock(mu_);
  for (const auto& [key, entry] : heap_)
    if (key.first == id && entry.bytes != bytes)
      return invalid_argument("symmetric allocation " + std::to_string(id) + ": rank " + std::to_string(rank) +
                              " asked for " + std::to_string(bytes) + " bytes, rank " + std::to_string(key.second) +
                              " for " + std::to_string(entry.bytes) + "; every rank must ask for the same size");
  heap_[{id, rank}] = {static_cast<char*>(ptr), bytes};
  return Status::ok();
}

void ThreadWorld::unregister_buffer(int rank, int id) {
  std::lock_guard lock(mu_);
  heap_.erase({id, rank});
}

Result<char*> ThreadWorld::peer_buffer(int peer, int id, size_t offset, size_t bytes) {
  std::lock_guard lock(mu_);
  auto it = heap_.find({id, peer});
  if (it == heap_.end())
    return invalid_argument("rank " + std::to_string(peer) + " has no symmetric buffer " + std::to_string(id));
  if (offset > it->second.bytes || bytes > it->second.bytes - offset)
    return invalid_argument("one-sided access [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                            ") is outside symmetric buffer " + std::to_string(id) + " of " +
                            std::to_string(it->second.bytes) + " bytes");
  return it->second.ptr + offset;
}

void ThreadWorld::post(int src, int dst, std::vector<char> message) {
  std::lock_guard lock(mu_);
  mail_[{src, dst}].push_back(std::move(message));
  cv_.notify_all();
}

Result<std::vector<char>> ThreadWorld::take(int src, int dst) {
  std::unique_lock lock(mu_);
  auto& box = mail_[{src, dst}];
  cv_.wait_for(lock, timeout_, [&] { return aborted_ || !box.empty(); });
  if (!box.empty()) {
    std::vector<char> m = std::move(box.front());
    box.pop_front();
    return m;
  }
  if (aborted_) return failed_status(dst, "recv from rank " + std::to_string(src));
  return Status(ErrorCode::kTimeout, "rank " + std::to_string(dst) + " recv from rank " + std::to_string(src) +
                                         ": no message after " + std::to_string(timeout_.count()) + " ms");
}

void ThreadWorld::set_word(uint64_t* word, uint64_t value) {
  std::lock_guard lock(mu_);
  *word = value;
  cv_.notify_all();
}

Status ThreadWorld::wait_word(int rank, const uint64_t* word, uint64_t value, const std::string& what) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout_, [&] { return aborted_ || *word >= value; });
  if (*word >= value) return Status::ok();
  if (aborted_) return failed_status(rank, what);
  return Status(ErrorCode::kTimeout, "rank " + std::to_string(rank) + " " + what + ": the word reads " +
                                         std::to_string(*word) + " after " + std::to_string(timeout_.count()) +
                                         " ms");
}

bool ThreadWorld::aborted() {
  std::lock_guard lock(mu_);
  return aborted_;
}

void ThreadWorld::abort(const std::string& why) {
  std::lock_guard lock(mu_);
  if (!aborted_) abort_reason_ = why;
  aborted_ = true;
  cv_.notify_all();
}

}  // namespace sf::threads
