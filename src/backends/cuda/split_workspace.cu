#include "split_workspace.cuh"

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

namespace sf::cuda::detail {

namespace {

__global__ void zero_words(unsigned* words, size_t n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) words[i] = 0;
}

struct Held {
  void* base = nullptr;
  size_t o_floats = 0, ml_floats = 0, counters = 0;
};

size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

cudaError_t split_workspace(cudaStream_t stream, size_t o_floats, size_t ml_floats, size_t counters,
                            SplitWorkspace& out) {
  static std::mutex mu;
  static std::map<std::tuple<int, cudaStream_t, std::thread::id>, Held> held;
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  // cudaStreamPerThread is one handle for a different stream in every host thread: those streams run side by side,
  // so each thread gets its own workspace. Every other handle names one stream, whoever launches on it.
  const std::thread::id thread = stream == cudaStreamPerThread ? std::this_thread::get_id() : std::thread::id{};
  std::lock_guard<std::mutex> lock(mu);
  Held& h = held[{device, stream, thread}];
  if (h.base == nullptr || o_floats > h.o_floats || ml_floats > h.ml_floats || counters > h.counters) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    err = cudaStreamIsCapturing(stream, &capture);
    if (err != cudaSuccess) return err;
    if (capture != cudaStreamCaptureStatusNone) return cudaErrorStreamCaptureUnsupported;
    Held grown;
    grown.o_floats = std::max(o_floats, h.o_floats + h.o_floats / 2);
    grown.ml_floats = std::max(ml_floats, h.ml_floats + h.ml_floats / 2);
    grown.counters = std::max(counters, h.counters + h.counters / 2);
    // The counters: the work queue's, then the split items' arrival counts.
    const size_t bytes = round_up(grown.o_floats * 4) + round_up(grown.ml_floats * 4) +
                         round_up((1 + grown.counters) * sizeof(unsigned));
    err = cudaMallocAsync(&grown.base, bytes, stream);
    if (err != cudaSuccess) return err;
    const size_t count_at = round_up(grown.o_floats * 4) + round_up(grown.ml_floats * 4);
    // A kernel, not cudaMemsetAsync: a stream that has run a copy-engine operation (a memset too) queues its later
    // events behind every such stream's copies issued before them (bench/sp/stream_queue_probe.cu), and the launch
    // should not decide that for the stream it is given.
    const size_t words = 1 + grown.counters;
    zero_words<<<static_cast<unsigned>((words + 255) / 256), 256, 0, stream>>>(
        reinterpret_cast<unsigned*>(static_cast<char*>(grown.base) + count_at), words);
    err = cudaGetLastError();
    if (err != cudaSuccess) {
      cudaFreeAsync(grown.base, stream);
      return err;
    }
    h = grown;  // the old block stays allocated (see the header)
  }
  char* p = static_cast<char*>(h.base);
  out.o = reinterpret_cast<float*>(p);
  out.ml = reinterpret_cast<float*>(p + round_up(h.o_floats * 4));
  out.queue = reinterpret_cast<unsigned*>(p + round_up(h.o_floats * 4) + round_up(h.ml_floats * 4));
  out.count = out.queue + 1;
  return cudaSuccess;
}

}  // namespace sf::cuda::detail
