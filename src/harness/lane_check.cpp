#include "harness/lane_check.h"

#include <algorithm>

#include "streamfusion/dtype.h"

namespace sf {
namespace {

using Span = LaneCheckingDevice::Span;

// A strided [batch, len, heads, head_dim] view, first to last byte.
Span span_of(const RowChunk& c, int64_t batch, int64_t heads, int64_t head_dim, size_t elem) {
  if (c.data == nullptr || c.len <= 0 || batch <= 0 || heads <= 0) return {};
  const int64_t last = (batch - 1) * c.stride_b + (c.len - 1) * c.stride_s + (heads - 1) * c.stride_h + head_dim;
  const auto begin = reinterpret_cast<uintptr_t>(c.data);
  return {begin, begin + static_cast<uintptr_t>(last) * elem};
}

Span dense_floats(const float* p, int64_t n) {
  if (p == nullptr || n <= 0) return {};
  const auto begin = reinterpret_cast<uintptr_t>(p);
  return {begin, begin + static_cast<uintptr_t>(n) * sizeof(float)};
}

void add(std::vector<Span>* v, Span s) {
  if (s.end > s.begin) v->push_back(s);
}

bool overlap(const std::vector<Span>& a, const std::vector<Span>& b) {
  for (const Span& x : a)
    for (const Span& y : b)
      if (x.begin < y.end && y.begin < x.end) return true;
  return false;
}

}  // namespace

LaneCheckingDevice::Footprint LaneCheckingDevice::footprint(const AttentionProblem& p) {
  Footprint f;
  const size_t elem = dtype_size(p.dtype);
  const int64_t B = p.batch, H = p.heads, D = p.head_dim;
  int64_t rows = 0, keys = 0;
  for (int32_t i = 0; i < p.num_q; ++i) {
    const QChunk& q = p.q[i];
    rows += q.q.len;
    add(&f.reads, span_of(q.q, B, H, D, elem));
    const int64_t n = B * q.q.len * H;
    for (const Span& s : {dense_floats(q.acc_o, n * D), dense_floats(q.acc_m, n), dense_floats(q.acc_l, n)}) {
      if (p.mode == AccumulatorMode::kResume) add(&f.reads, s);
      add(&f.writes, s);  // a finalizing call may skip it: counted all the same
    }
    if (p.finalize) {
      add(&f.writes, span_of(q.out, B, H, D, elem));
      add(&f.writes, dense_floats(q.lse, n));
    }
  }
  for (int32_t j = 0; j < p.num_kv; ++j) {
    keys += p.kv[j].k.len;
    add(&f.reads, span_of(p.kv[j].k, B, H, D, elem));
    add(&f.reads, span_of(p.kv[j].v, B, H, D, elem));
  }
  f.what = "lane " + std::to_string(p.lane) + " call of " + std::to_string(rows) + " rows x " + std::to_string(keys) +
           " keys (" + std::to_string(p.num_q) + " Q chunks, " + std::to_string(p.num_kv) + " K/V chunks" +
           (p.finalize ? ", finalize)" : ")");
  return f;
}

Status LaneCheckingDevice::check_against(const Footprint& f, const std::vector<Footprint>& others,
                                         int other_lane) const {
  for (const Footprint& o : others) {
    if (overlap(f.writes, o.writes) || overlap(f.writes, o.reads) || overlap(f.reads, o.writes))
      return internal_error("compute lanes: the " + f.what + " touches memory that the " + o.what +
                            " writes or reads, and the GPU may run them at the same time (no order_lanes and no "
                            "other device operation between them; lane " + std::to_string(other_lane) +
                            " issued first)");
  }
  return Status::ok();
}

void LaneCheckingDevice::ordering_point() {
  unordered_lane1_.clear();
  latest_lane0_.clear();
}

Status LaneCheckingDevice::order_lanes() {
  ordering_point();
  return Status::ok();
}

Status LaneCheckingDevice::attention(const AttentionProblem& p) {
  if (p.lane != 0 && p.lane != 1)
    return invalid_argument("attention: compute lane " + std::to_string(p.lane) + " of a device with 2 (0 or 1)");
  Footprint f = footprint(p);
  if (p.lane == 1) {
    SF_RETURN_IF_ERROR(check_against(f, latest_lane0_, 0));
    unordered_lane1_.push_back(std::move(f));
  } else {
    SF_RETURN_IF_ERROR(check_against(f, unordered_lane1_, 1));
    latest_lane0_.assign(1, std::move(f));
  }
  ++calls_[p.lane];
  AttentionProblem one = p;
  one.lane = 0;  // the wrapped device may have one lane
  return inner_.attention(one);
}

Status LaneCheckingDevice::copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads,
                                     int64_t head_dim, DType dtype) {
  ordering_point();
  return inner_.copy_rows(dst, src, batch, heads, head_dim, dtype);
}

Status LaneCheckingDevice::copy_rows_batch(const std::vector<RowCopy>& copies, int64_t batch, int64_t heads,
                                           int64_t head_dim, DType dtype) {
  ordering_point();
  return inner_.copy_rows_batch(copies, batch, heads, head_dim, dtype);
}

Status LaneCheckingDevice::merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads,
                                          int64_t head_dim, DType dtype) {
  ordering_point();
  return inner_.merge_partials(merges, batch, heads, head_dim, dtype);
}

Status LaneCheckingDevice::copy_to_device(void* dst, const void* src_host, size_t bytes) {
  ordering_point();
  return inner_.copy_to_device(dst, src_host, bytes);
}

Status LaneCheckingDevice::copy_to_host(void* dst_host, const void* src, size_t bytes) {
  ordering_point();
  return inner_.copy_to_host(dst_host, src, bytes);
}

Status LaneCheckingDevice::fill(void* dst, uint8_t byte, size_t bytes) {
  ordering_point();
  return inner_.fill(dst, byte, bytes);
}

Status LaneCheckingDevice::synchronize() {
  ordering_point();
  return inner_.synchronize();
}

}  // namespace sf
