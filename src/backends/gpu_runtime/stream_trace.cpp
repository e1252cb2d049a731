#include "stream_trace.h"

#include <algorithm>
#include <cstdio>

#include "gpu_check.h"

namespace sf::gpu {

StreamTrace::~StreamTrace() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

Result<cudaEvent_t> StreamTrace::next_event() {
  if (used_ == events_.size()) {
    cudaEvent_t e = nullptr;
    SF_CUDA_RETURN(cudaEventCreate(&e));  // with timing, unlike the handles' events
    events_.push_back(e);
  }
  return events_[used_++];
}

Status StreamTrace::begin(cudaStream_t origin_stream) {
  used_ = 0;
  pending_.clear();
  open_ = -1;
  on_ = true;
  return point(origin_stream, "origin");
}

Status StreamTrace::mark_begin(cudaStream_t stream) {
  if (!on_) return Status::ok();
  SF_ASSIGN_OR_RETURN(cudaEvent_t e, next_event());
  SF_CUDA_RETURN(cudaEventRecord(e, stream));
  open_ = static_cast<int>(used_ - 1);
  return Status::ok();
}

Status StreamTrace::mark_end(cudaStream_t stream, std::string what) {
  if (!on_) return Status::ok();
  if (open_ < 0) return internal_error("trace: mark_end without mark_begin (" + what + ")");
  SF_ASSIGN_OR_RETURN(cudaEvent_t e, next_event());
  SF_CUDA_RETURN(cudaEventRecord(e, stream));
  pending_.push_back({std::move(what), open_, static_cast<int>(used_ - 1)});
  open_ = -1;
  return Status::ok();
}

Status StreamTrace::point(cudaStream_t stream, std::string what) {
  if (!on_) return Status::ok();
  SF_ASSIGN_OR_RETURN(cudaEvent_t e, next_event());
  SF_CUDA_RETURN(cudaEventRecord(e, stream));
  pending_.push_back({std::move(what), -1, static_cast<int>(used_ - 1)});
  return Status::ok();
}

Result<std::vector<TraceEntry>> StreamTrace::end() {
  on_ = false;
  std::vector<TraceEntry> out;
  if (pending_.empty()) return out;
  for (size_t i = 0; i < used_; ++i) SF_CUDA_RETURN(cudaEventSynchronize(events_[i]));
  cudaEvent_t origin = events_[static_cast<size_t>(pending_.front().end)];
  auto at = [&](int idx) -> Result<double> {
    float ms = 0.f;
    SF_CUDA_RETURN(cudaEventElapsedTime(&ms, origin, events_[static_cast<size_t>(idx)]));
    return static_cast<double>(ms);
  };
  for (size_t i = 1; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    TraceEntry e;
    e.what = p.what;
    SF_ASSIGN_OR_RETURN(e.end_ms, at(p.end));
    if (p.begin >= 0) {
      SF_ASSIGN_OR_RETURN(e.start_ms, at(p.begin));
    } else {
      e.start_ms = e.end_ms;
      e.point = true;
    }
    out.push_back(std::move(e));
  }
  std::stable_sort(out.begin(), out.end(), [](const TraceEntry& a, const TraceEntry& b) { return a.end_ms < b.end_ms; });
  return out;
}

std::string format_trace(const std::vector<TraceEntry>& entries) {
  std::string s;
  char line[512];
  double busy = 0.0, last_end = 0.0, gaps = 0.0, span = 0.0;
  for (const TraceEntry& e : entries) {
    if (!e.point) {
      const double gap = std::max(0.0, e.start_ms - last_end);
      std::snprintf(line, sizeof line, "  %9.3f .. %9.3f ms  %8.3f ms  (gap %7.3f)  %s\n", e.start_ms, e.end_ms,
                    e.end_ms - e.start_ms, gap, e.what.c_str());
      busy += e.end_ms - e.start_ms;
      gaps += gap;
      last_end = std::max(last_end, e.end_ms);
    } else {
      std::snprintf(line, sizeof line, "  %9.3f              %s\n", e.end_ms, e.what.c_str());
    }
    span = std::max(span, e.end_ms);
    s += line;
  }
  std::snprintf(line, sizeof line, "  compute intervals %.3f ms, gaps between them %.3f ms, span %.3f ms\n", busy, gaps,
                span);
  s += line;
  return s;
}

}  // namespace sf::gpu
