// Timing helpers of `streamfusion gpu-attention`: the one-GPU call, the shape's buffers, the warm-ups that give
// every timing the same stretch of its own load, the all-GPUs-busy compute share and the ranks' speeds in a layer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attention_options.h"
#include "gpu_runtime.h"
#include "streamfusion/sp_attention.h"

namespace sf::cli {

// The median (the upper one of an even count); 0 for none.
double median(std::vector<double> v);

// One attention call of `rows` query rows against all keys of the layer: the one-GPU computation (the reference
// for this rank's rows, and the timed whole layer). Not copyable: the problem points into the chunks.
struct FullKeysCall {
  QChunk qc;
  KVChunk kv;
  AttentionProblem problem;
  FullKeysCall(const AttentionShape& shape, void* q, void* out, int64_t rows, void* kfull, void* vfull, float scale) {
    qc.q = dense_rows(q, rows, shape.heads, shape.head_dim);
    qc.out = dense_rows(out, rows, shape.heads, shape.head_dim);
    kv.k = dense_rows(kfull, shape.seq_len, shape.heads, shape.head_dim);
    kv.v = dense_rows(vfull, shape.seq_len, shape.heads, shape.head_dim);
    problem.dtype = shape.dtype;
    problem.batch = shape.batch;
    problem.heads = shape.heads;
    problem.head_dim = shape.head_dim;
    problem.scale = scale;
    problem.q = &qc;
    problem.num_q = 1;
    problem.kv = &kv;
    problem.num_kv = 1;
    problem.mode = AccumulatorMode::kInit;
    problem.finalize = true;
  }
  FullKeysCall(const FullKeysCall&) = delete;
  FullKeysCall& operator=(const FullKeysCall&) = delete;
};

// Rank-local state of one shape: inputs, output, reference.
struct ShapeBuffers {
  Device* dev = nullptr;
  std::vector<void*> owned;
  void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr, *ref = nullptr, *kfull = nullptr, *vfull = nullptr;
  ~ShapeBuffers() {
    for (void* p : owned) dev->free(p);
  }
  Result<void*> alloc(size_t bytes) {
    SF_ASSIGN_OR_RETURN(void* p, dev->alloc(bytes));
    owned.push_back(p);
    return p;
  }
};

// Fills rows [first_row, first_row + rows) of a global [B, S, H, D] tensor drawn from `seed`.
Status fill_rows(gpu::GpuContext& ctx, void* dst, const AttentionShape& sh, int64_t first_row, int64_t rows,
                 uint64_t seed);

// Warm-ups before timing `body`: o.warmup, plus as many as o.sustain_s seconds of `body` take (from three probe
// runs), so that every timing starts after the same stretch of its own load. The GPUs run at their power cap,
// where what ran before moves a timing by several percent (bench/sp/TRACES.md, session 15: 2.1 % after five
// other schemes). tag: every rank runs `body` together and takes the most any rank needs, so that the counts
// agree; empty: this rank alone.
Result<int> sustained_warmup(gpu::GpuContext& ctx, const std::function<Status()>& body,
                             const std::function<Status()>& before_each, const AttentionOptions& o,
                             const std::string& tag);

// Every rank times its own query rows against all keys and heads (1/P of the layer's FLOPs) while all the others
// do the same: a GPU-side barrier before each iteration starts them together, so clocks and power are those of P
// busy GPUs, not of one busy GPU among idle ones as in the one-GPU time. Returns every rank's median.
Result<std::vector<double>> time_concurrent_compute(gpu::GpuContext& ctx, const FullKeysCall& share,
                                                    const AttentionOptions& o, const std::string& tag);

// Every rank's speed in the layer itself, for SpAttention::rebalance. After `warmup` forwards, three windows of
// five forwards traced one by one, 20 untraced forwards apart; in each window a rank's speed is the query rows its
// calls take over the median time of its attention calls in a forward (the waits between them left out). Only
// what all windows agree on is kept: a rank's deviation from the mean speed counts only where every window has it
// on the same side, and then its smallest size. Why: on one host the same rank was the slowest in every
// measurement and loans made the layer 1.8 % faster; on another the ranks' order changed within seconds and loans
// by one snapshot made it 1.4 % slower (4x H200, 22:35 and 22:43, bench/sp/results/h200x4-2026-11-27-loans*/).
Result<std::vector<double>> measure_layer_speeds(gpu::GpuContext& ctx, SpAttention& sp,
                                                 const std::function<Status()>& forward, int warmup,
                                                 const std::string& tag);

// "a, b, c" with each value to `digits` characters, for the comment lines about row loans.
std::string join_values(const std::vector<double>& values, size_t digits);

}  // namespace sf::cli
