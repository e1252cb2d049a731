#include "comm/threads/thread_comm.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "streamfusion/cpu_device.h"
#include "streamfusion/thread_backend.h"

namespace sf::threads {

ThreadComm::ThreadComm(ThreadWorld& world, int rank, uint64_t chaos_seed, std::chrono::microseconds lag)
    : world_(world), rank_(rank), chaos_(chaos_seed * 7919 + rank), chaos_on_(chaos_seed != 0), lag_(lag) {}

ThreadComm::~ThreadComm() {
  join_landings();
  for (auto& [id, p] : owned_) {
    world_.unregister_buffer(rank_, id);
    std::free(p);
  }
}

Status ThreadComm::check_peer(int peer, const char* op) const {
  if (peer < 0 || peer >= world_size())
    return invalid_argument(std::string(op) + ": peer rank " + std::to_string(peer) + " is outside the world of " +
                            std::to_string(world_size()) + " ranks");
  return Status::ok();
}

Result<SymmetricBuffer> ThreadComm::alloc_symmetric(size_t bytes) {
  void* p = std::aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
  if (!p) return Status(ErrorCode::kOutOfMemory, "symmetric allocation of " + std::to_string(bytes) + " bytes failed");
  std::memset(p, 0xff, bytes);  // poison: as fp32/bf16/fp16 this reads as NaN, so unwritten data shows
  SymmetricBuffer buf{next_buffer_id_++, p, bytes};
  owned_[buf.id] = p;
  SF_RETURN_IF_ERROR(world_.register_buffer(rank_, buf.id, p, bytes));
  std::vector<int> all(world_size());
  for (int i = 0; i < world_size(); ++i) all[i] = i;
  SF_RETURN_IF_ERROR(world_.barrier(rank_, all, "alloc_symmetric"));  // collective, like nvshmem_malloc
  return buf;
}

// Rank threads share one address space; only ranks on our (emulated) machine count as reachable.
void* ThreadComm::peer_address(const SymmetricBuffer& buf, int peer) {
  if (peer < 0 || peer >= world_size() || topology().link(rank_, peer) != LinkClass::kIntra) return nullptr;
  Result<char*> p = world_.peer_buffer(peer, buf.id, 0, buf.bytes);
  return p.is_ok() ? p.value() : nullptr;
}

Status ThreadComm::free_symmetric(SymmetricBuffer& buf) {
  std::vector<int64_t> mine;  // finish our own transfers on every lane, then make sure the peers did too
  for (const auto& [id, op] : pending_)
    if (op.one_sided) mine.push_back(id);
  for (int64_t id : mine) SF_RETURN_IF_ERROR(complete(id));
  SF_RETURN_IF_ERROR(barrier_all());
  auto it = owned_.find(buf.id);
  if (it == owned_.end()) return invalid_argument("free_symmetric: buffer " + std::to_string(buf.id) + " is not live");
  world_.unregister_buffer(rank_, buf.id);
  std::free(it->second);
  owned_.erase(it);
  buf = {};
  return Status::ok();
}

Result<Handle> ThreadComm::send(int peer, const void* data, size_t bytes, Lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, "send"));
  // Eager: the payload is copied at issue, like a buffered send. The receiver sees it in FIFO order.
  std::vector<char> msg(bytes);
  if (bytes) std::memcpy(msg.data(), data, bytes);
  world_.post(rank_, peer, std::move(msg));
  count(peer, bytes);
  return Handle{};
}

Result<Handle> ThreadComm::recv(int peer, void* data, size_t bytes, Lane lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, "recv"));
  PendingOp op;
  op.lane = lane;
  op.recv_peer = peer;
  op.complete = [this, peer, data, bytes]() -> Status {
    SF_ASSIGN_OR_RETURN(std::vector<char> msg, world_.take(peer, rank_));
    if (msg.size() != bytes)
      return internal_error("rank " + std::to_string(rank_) + " expected a " + std::to_string(bytes) +
                            "-byte message from rank " + std::to_string(peer) + ", got " + std::to_string(msg.size()));
    if (bytes) std::memcpy(data, msg.data(), bytes);
    return Status::ok();
  };
  const int64_t id = next_op_++;
  pending_.emplace(id, std::move(op));
  return Handle{id};
}

Result<Handle> ThreadComm::add_one_sided(Lane lane, std::function<Status()> fn) {
  if (chaos_on_ && lag_.count() == 0 && (chaos_() & 1)) {  // this time the copy lands at once
    SF_RETURN_IF_ERROR(fn());
    return Handle{};
  }
  PendingOp op;
  op.one_sided = true;
  op.lane = lane;
  op.complete = std::move(fn);
  const int64_t id = next_op_++;
  pending_.emplace(id, std::move(op));
  if (!chaos_on_) SF_RETURN_IF_ERROR(complete(id));
  return Handle{id};
}

Result<Handle> ThreadComm::put(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src,
                               size_t bytes, Lane lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, "put"));
  SF_ASSIGN_OR_RETURN(char* target, world_.peer_buffer(peer, dst.id, dst_offset, bytes));
  count(peer, bytes);
  return add_one_sided(lane, [target, src, bytes] {
    if (bytes) std::memcpy(target, src, bytes);
    return Status::ok();
  });
}

Result<Handle> ThreadComm::get(void* dst, const SymmetricBuffer& src, size_t src_offset, int peer, size_t bytes,
                               Lane lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, "get"));
  SF_ASSIGN_OR_RETURN(char* source, world_.peer_buffer(peer, src.id, src_offset, bytes));
  count(peer, bytes);
  return add_one_sided(lane, [dst, source, bytes] {
    if (bytes) std::memcpy(dst, source, bytes);
    return Status::ok();
  });
}

Result<SymmetricBuffer> ThreadComm::alloc_signals(size_t words) {
  SF_ASSIGN_OR_RETURN(SymmetricBuffer buf, alloc_symmetric(words * sizeof(uint64_t)));
  std::memset(buf.local, 0, buf.bytes);
  SF_RETURN_IF_ERROR(barrier_all());  // every rank's words are zero before anyone may set one
  return buf;
}

Result<Handle> ThreadComm::put_signal(const SymmetricBuffer& dst, size_t dst_offset, int peer, const void* src,
                                      size_t bytes, const SymmetricBuffer& signals, size_t word, uint64_t value,
                                      Lane lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, "put_signal"));
  SF_RETURN_IF_ERROR(check_signal_word("put_signal", signals, word));
  SF_ASSIGN_OR_RETURN(char* target, world_.peer_buffer(peer, dst.id, dst_offset, bytes));
  SF_ASSIGN_OR_RETURN(char* flag, world_.peer_buffer(peer, signals.id, word * sizeof(uint64_t), sizeof(uint64_t)));
  count(peer, bytes);
  ThreadWorld* world = &world_;
  auto land = [world, target, src, bytes, flag, value] {
    if (bytes) std::memcpy(target, src, bytes);
    world->set_word(reinterpret_cast<uint64_t*>(flag), value);
  };
  if (!chaos_on_) {
    land();
    return Handle{};
  }
  const auto delay = std::chrono::microseconds(chaos_() % 2000);
  std::shared_future<void>& last = last_landing_[static_cast<int>(lane)];
  auto landed = std::make_shared<std::promise<void>>();
  std::shared_future<void> before = std::exchange(last, landed->get_future().share());
  auto landing = std::make_shared<std::thread>([land, delay, before, landed] {
    std::this_thread::sleep_for(delay);
    if (before.valid()) before.wait();  // the lane's puts land in issue order
    land();
    landed->set_value();
  });
  std::erase_if(landings_, [](const std::shared_ptr<std::thread>& t) { return !t->joinable(); });  // waited for
  landings_.push_back(landing);
  PendingOp op;  // waited for like any one-sided transfer (wait, a barrier on its lane)
  op.one_sided = true;
  op.lane = lane;
  op.complete = [landing] {
    if (landing->joinable()) landing->join();
    return Status::ok();
  };
  const int64_t id = next_op_++;
  pending_.emplace(id, std::move(op));
  return Handle{id};
}

void ThreadComm::join_landings() {
  for (auto& t : landings_)
    if (t->joinable()) t->join();
  landings_.clear();
}

Status ThreadComm::wait_signal(const SymmetricBuffer& signals, size_t word, uint64_t value) {
  SF_RETURN_IF_ERROR(check_signal_word("wait_signal", signals, word));
  return world_.wait_word(rank_, static_cast<const uint64_t*>(signals.local) + word, value,
                          "wait_signal for word " + std::to_string(word) + " to reach " + std::to_string(value));
}

// Only from ranks of our (emulated) machine, as on GPUs, where it is a copy-engine 2D copy over NVLink.
Result<Handle> ThreadComm::get_strided(void* dst, size_t dst_pitch, const SymmetricBuffer& src, size_t src_offset,
                                       size_t src_pitch, size_t width, size_t rows, int peer, Lane lane) {
  SF_RETURN_IF_ERROR(check_peer(peer, "get_strided"));
  SF_RETURN_IF_ERROR(check_strided("get_strided", width, src_pitch, dst_pitch));
  if (topology().link(rank_, peer) != LinkClass::kIntra)
    return unimplemented("get_strided: rank " + std::to_string(peer) + " is on another machine than rank " +
                         std::to_string(rank_) + " (strided reads are for peers of one machine)");
  if (rows == 0 || width == 0) return Handle{};
  SF_ASSIGN_OR_RETURN(char* source, world_.peer_buffer(peer, src.id, src_offset, (rows - 1) * src_pitch + width));
  count(peer, rows * width);
  char* target = static_cast<char*>(dst);
  return add_one_sided(lane, [=] {
    for (size_t i = 0; i < rows; ++i) std::memcpy(target + i * dst_pitch, source + i * src_pitch, width);
    return Status::ok();
  });
}

Status ThreadComm::complete(int64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return Status::ok();  // already complete
  if (it->second.recv_peer >= 0) {  // FIFO: earlier receives from the same peer take earlier messages
    const int peer = it->second.recv_peer;
    for (auto e = pending_.begin(); e != it;) {
      auto next = std::next(e);
      if (e->second.recv_peer == peer) {
        PendingOp op = std::move(e->second);
        pending_.erase(e);
        SF_RETURN_IF_ERROR(op.complete());
      }
      e = next;
    }
  }
  PendingOp op = std::move(it->second);
  pending_.erase(it);
  if (op.one_sided && lag_.count() > 0) std::this_thread::sleep_for(lag_);
  // A peer has failed: its buffer may hold anything, so a late one-sided transfer must not report success.
  if (op.one_sided && world_.aborted())
    return Status(ErrorCode::kBackendError, "rank " + std::to_string(rank_) + ": one-sided transfer abandoned, another rank failed");
  return op.complete();
}

Status ThreadComm::barrier_impl(const std::vector<int>& group, Lane lane) {
  bool member = false;
  for (int r : group) member |= r == rank_;
  if (!member) return invalid_argument("barrier: rank " + std::to_string(rank_) + " is not in the group it passed");
  std::vector<int64_t> quiet;
  for (const auto& [id, op] : pending_)
    if (op.one_sided && op.lane == lane) quiet.push_back(id);
  for (int64_t id : quiet) SF_RETURN_IF_ERROR(complete(id));
  return world_.barrier(rank_, group, "barrier");
}

Status ThreadComm::wait(Handle h) { return h.id < 0 ? Status::ok() : complete(h.id); }

namespace {

class ThreadRankRuntime final : public RankRuntime {
 public:
  ThreadRankRuntime(ThreadWorld& world, int rank, uint64_t seed, std::chrono::microseconds lag)
      : comm_(world, rank, seed, lag) {}
  Comm& comm() override { return comm_; }
  Device& device() override { return device_; }
  const char* backend_name() const override { return "threads"; }
  void join_landings() { comm_.join_landings(); }

 private:
  ThreadComm comm_;
  CpuDevice device_;
};

}  // namespace
}  // namespace sf::threads

namespace sf {

Status run_thread_ranks(const Topology& topo, const ThreadWorldOptions& options,
                        const std::function<Status(RankRuntime&)>& fn) {
  SF_RETURN_IF_ERROR(topo.validate());
  if (options.lagging_rank >= topo.world_size() || options.lagging_rank < -1)
    return invalid_argument("lagging_rank must be -1 (none) or a rank below " + std::to_string(topo.world_size()) +
                            "; got " + std::to_string(options.lagging_rank));
  if (options.lagging_rank >= 0 && (options.chaos_seed == 0 || options.lag.count() <= 0))
    return invalid_argument("lagging_rank " + std::to_string(options.lagging_rank) + " needs chaos_seed != 0 (so that "
                            "one-sided operations complete when waited on) and lag > 0; got chaos_seed " +
                            std::to_string(options.chaos_seed) + ", lag " + std::to_string(options.lag.count()) +
                            " us");
  threads::ThreadWorld world(topo, options.timeout);
  std::mutex mu;
  Status first;  // the first failure in time is the cause; later ones are usually its echoes
  // Runtimes (and the symmetric buffers they own) outlive every rank thread: a failed rank's peers may still
  // complete transfers against its buffers before they notice the abort.
  std::vector<std::unique_ptr<threads::ThreadRankRuntime>> runtimes;
  for (int r = 0; r < topo.world_size(); ++r)
    runtimes.push_back(std::make_unique<threads::ThreadRankRuntime>(
        world, r, options.chaos_seed, r == options.lagging_rank ? options.lag : std::chrono::microseconds{}));
  std::vector<std::thread> ranks;
  for (int r = 0; r < topo.world_size(); ++r) {
    ranks.emplace_back([&, r] {
      threads::ThreadRankRuntime& rt = *runtimes[r];
      Status s = fn(rt);
      if (s.is_ok()) s = rt.comm().barrier_all();  // nobody frees buffers a peer may still read
      if (!s.is_ok()) {
        std::lock_guard lock(mu);
        if (first.is_ok()) first = Status(s.code(), "rank " + std::to_string(r) + ": " + s.message());
        world.abort("rank " + std::to_string(r) + " failed");
      }
    });
  }
  for (auto& t : ranks) t.join();
  // A failed world may leave put_signals landing in peers' buffers: all of them land before any buffer is freed.
  for (auto& rt : runtimes) rt->join_landings();
  runtimes.clear();
  return first;
}

}  // namespace sf
