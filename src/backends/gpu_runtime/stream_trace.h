// Timeline of one GPU rank, for benchmarks' --trace: where a layer's time goes (attention calls, copies, the
// gaps where compute waited on a transfer, when each transfer finished). Off unless a benchmark turns it on;
// then every traced point costs one timing event on its stream.
//
//   trace.begin(compute);                       // origin: t = 0 on the compute stream
//   trace.mark_begin(compute); <kernel>; trace.mark_end(compute, "attention ...");
//   trace.point(lane, "main lane: transfer done");
//   auto entries = trace.end();                 // synchronizes the traced streams' events
#pragma once

#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "streamfusion/status.h"

namespace sf::gpu {

struct TraceEntry {
  std::string what;
  double start_ms = 0.0;  // relative to begin(); equal to end_ms for points
  double end_ms = 0.0;
  bool point = false;     // a moment (a stream reached it), not an interval
};

class StreamTrace {
 public:
  StreamTrace() = default;
  ~StreamTrace();
  StreamTrace(const StreamTrace&) = delete;
  StreamTrace& operator=(const StreamTrace&) = delete;

  bool on() const { return on_; }
  Status begin(cudaStream_t origin_stream);
  // An interval on one stream: mark_begin before the work, mark_end (with its description) after it.
  Status mark_begin(cudaStream_t stream);
  Status mark_end(cudaStream_t stream, std::string what);
  // A point: when `stream` reaches everything enqueued on it so far.
  Status point(cudaStream_t stream, std::string what);
  // Waits for every traced event, turns them into times and switches tracing off.
  Result<std::vector<TraceEntry>> end();

 private:
  Result<cudaEvent_t> next_event();
  struct Pending {
    std::string what;
    int begin = -1;  // event index; -1 for points
    int end = -1;
  };
  bool on_ = false;
  std::vector<cudaEvent_t> events_;  // pool, reused across traces
  size_t used_ = 0;
  int open_ = -1;  // event index of the interval begun last
  std::vector<Pending> pending_;
};

// One line per entry plus a summary (busy time of the intervals, the gaps between them, the span).
std::string format_trace(const std::vector<TraceEntry>& entries);

}  // namespace sf::gpu
