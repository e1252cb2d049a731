// Does one of our streams wait behind another stream's copies? (bench/sp/TRACES.md, sessions 22-23: on 2x2 under
// sharing NICs a side stream's first inter-machine post came right after the ring lane's NVLink pulls ended.)
//
// On GPU 0, streams made as GpuStreams::init makes them (compute at the lowest priority; two lanes, four side
// streams and the flag stream at the highest; all non-blocking), with CUDA_DEVICE_MAX_CONNECTIONS=32 set before
// CUDA starts, as gpu_runtime.cpp does. For every ordered pair (busy, probe) of those streams: `busy` pulls
// `copies` blocks of `mib` MiB from GPU 1 (cudaMemcpyPeerAsync, copy engines over NVLink); then, issued after it
// on the host, `probe` does its probe operation and records an event. A probe whose event completes only after
// the busy stream's copies waited for them ("Y" in the matrix; the times of the first such pair are printed).
//
// Options (one process per configuration: what a stream did before may matter):
//   --op write|event|kernel|hold
//                             the probe: a cuStreamWriteValue32 to mapped host memory (as the emulated link books
//                             a transfer), nothing, or an empty kernel; then the event. hold: the probe stream
//                             first waits on a word of mapped host memory (cuStreamWaitValue32, as the emulated
//                             link holds a transfer), the busy stream's copies are issued after it, and the host
//                             writes the word 1 ms later: Y when the copies ended only after that
//   --order up|down           busy streams in creation order or the reverse
//   --warm none|1|2|h2d|memset  before the matrix, every stream copies one block from GPU 1 or GPU 2, or from
//                             pinned host memory, or sets one block (cudaMemsetAsync), or nothing
//   --copies N --mib M        the busy stream's copies (3 x 25 MiB: the ring lane's pulls at Flux S=16384 on 2x2)
//
//   nvcc -O2 -std=c++17 -o /tmp/stream_queue_probe bench/sp/stream_queue_probe.cu -lcuda
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#define CHECK(x)                                                                                \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

__global__ void empty_kernel() {}

int main(int argc, char** argv) {
  std::string op = "write", order = "up", warm = "none";
  int copies = 3;
  size_t mib = 25;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--op") op = value;
    else if (key == "--order") order = value;
    else if (key == "--warm") warm = value;
    else if (key == "--copies") copies = std::atoi(value.c_str());
    else if (key == "--mib") mib = std::strtoull(value.c_str(), nullptr, 10);
    else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 1;
    }
  }
  if ((op != "write" && op != "event" && op != "kernel" && op != "hold") || (order != "up" && order != "down") ||
      (warm != "none" && warm != "1" && warm != "2" && warm != "h2d" && warm != "memset") || copies < 1 || mib < 1) {
    std::fprintf(stderr, "usage: %s [--op write|event|kernel|hold] [--order up|down] [--warm none|1|2|h2d|memset] "
                 "[--copies N] [--mib M]\n", argv[0]);
    return 1;
  }
  const size_t bytes = mib << 20;
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  int count = 0;
  CHECK(cudaGetDeviceCount(&count));
  if (count < 3) {
    std::fprintf(stderr, "needs three GPUs, found %d\n", count);
    return 1;
  }
  void* src[3] = {};
  for (int g = 1; g <= 2; ++g) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaMalloc(&src[g], bytes));
  }
  CHECK(cudaSetDevice(0));
  CHECK(cudaDeviceEnablePeerAccess(1, 0));
  CHECK(cudaDeviceEnablePeerAccess(2, 0));
  void* dst = nullptr;
  CHECK(cudaMalloc(&dst, bytes * copies));
  uint32_t* host_word = nullptr;
  CHECK(cudaHostAlloc(&host_word, 64, cudaHostAllocMapped));
  uint32_t* word_on_device = nullptr;
  CHECK(cudaHostGetDevicePointer(&word_on_device, host_word, 0));

  int least = 0, greatest = 0;
  CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  const char* names[] = {"compute", "main lane", "ring lane", "main side 0", "main side 1", "ring side 0",
                         "ring side 1", "flag"};
  const int n = 8;
  std::vector<cudaStream_t> s(n);
  CHECK(cudaStreamCreateWithPriority(&s[0], cudaStreamNonBlocking, least));
  for (int i = 1; i < n; ++i) CHECK(cudaStreamCreateWithPriority(&s[i], cudaStreamNonBlocking, greatest));
  cudaEvent_t start, probe, busy_end;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&probe));
  CHECK(cudaEventCreate(&busy_end));
  void* pinned = nullptr;
  CHECK(cudaHostAlloc(&pinned, 1 << 20, cudaHostAllocDefault));
  for (int i = 0; i < n && warm != "none"; ++i) {
    if (warm == "h2d") CHECK(cudaMemcpyAsync(dst, pinned, 1 << 20, cudaMemcpyHostToDevice, s[i]));
    else if (warm == "memset") CHECK(cudaMemsetAsync(dst, 0, 1 << 20, s[i]));
    else CHECK(cudaMemcpyPeerAsync(dst, 0, src[warm == "1" ? 1 : 2], warm == "1" ? 1 : 2, bytes, s[i]));
  }
  CHECK(cudaDeviceSynchronize());

  std::printf("# op %s, order %s, warm %s: %d copies of %zu MiB from GPU 1 on the busy stream (row); Y: %s\n",
              op.c_str(), order.c_str(), warm.c_str(), copies, mib,
              op == "hold" ? "the copies waited for the probe stream's hold" : "the probe (column) waited for them");
  std::printf("| busy \\ probe |");
  for (int p = 0; p < n; ++p) std::printf(" %s |", names[p]);
  std::printf("\n|---|");
  for (int p = 0; p < n; ++p) std::printf("---|");
  std::printf("\n");
  uint32_t ticket = 0;
  std::string example;
  std::vector<std::string> rows(n);
  for (int step = 0; step < n; ++step) {
    const int b = order == "up" ? step : n - 1 - step;
    std::string row = std::string("| ") + names[b] + " |";
    for (int p = 0; p < n; ++p) {
      if (p == b) {
        row += " - |";
        continue;
      }
      float probe_ms = 0, end_ms = 0;
      for (int rep = 0; rep < 3; ++rep) {  // the last of three: the first pays for set-up
        CHECK(cudaDeviceSynchronize());
        const uint32_t release = ++ticket;
        if (op == "hold" &&
            cuStreamWaitValue32(reinterpret_cast<CUstream>(s[p]), reinterpret_cast<CUdeviceptr>(word_on_device),
                                release, CU_STREAM_WAIT_VALUE_EQ) != CUDA_SUCCESS) {
          std::fprintf(stderr, "cuStreamWaitValue32 failed\n");
          return 1;
        }
        CHECK(cudaEventRecord(start, s[b]));
        for (int c = 0; c < copies; ++c)
          CHECK(cudaMemcpyPeerAsync(static_cast<char*>(dst) + c * bytes, 0, src[1], 1, bytes, s[b]));
        CHECK(cudaEventRecord(busy_end, s[b]));
        if (op == "hold") {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          *reinterpret_cast<volatile uint32_t*>(host_word) = release;
        } else if (op == "write") {
          if (cuStreamWriteValue32(reinterpret_cast<CUstream>(s[p]), reinterpret_cast<CUdeviceptr>(word_on_device),
                                   release, 0) != CUDA_SUCCESS) {
            std::fprintf(stderr, "cuStreamWriteValue32 failed\n");
            return 1;
          }
        } else if (op == "kernel") {
          empty_kernel<<<1, 32, 0, s[p]>>>();
          CHECK(cudaGetLastError());
        }
        CHECK(cudaEventRecord(probe, s[p]));
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaEventElapsedTime(&probe_ms, start, probe));
        CHECK(cudaEventElapsedTime(&end_ms, start, busy_end));
      }
      // hold: the copies (0.2 ms alone) waited for the release 1 ms after they were issued.
      const bool waited = op == "hold" ? end_ms > 0.8f : probe_ms > 0.5f * end_ms;
      row += waited ? " Y |" : " n |";
      if (waited && example.empty()) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "# e.g. busy %s, probe %s: probe done at %.3f ms, copies ended at %.3f ms",
                      names[b], names[p], probe_ms, end_ms);
        example = buf;
      }
    }
    rows[b] = row;
  }
  for (const std::string& r : rows) std::printf("%s\n", r.c_str());
  if (!example.empty()) std::printf("%s\n", example.c_str());
  return 0;
}
