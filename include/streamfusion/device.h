// Device: the compute side of a backend — the attention kernel interface plus the few memory operations
// the algorithms need. CPU ranks implement it with host memory; the CUDA backend with device memory and
// a compute stream (every call is asynchronous on that stream; Comm operations are ordered after it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "streamfusion/attention_problem.h"
#include "streamfusion/dtype.h"
#include "streamfusion/status.h"

namespace sf {

class Device {
 public:
  virtual ~Device() = default;

  virtual const char* name() const = 0;
  // Runs (or enqueues) one multi-chunk attention call; see attention_problem.h.
  virtual Status attention(const AttentionProblem& p) = 0;
  // Copies a [batch, src.len, heads, head_dim] block between two strided views (dst.len == src.len).
  // Used for packing head blocks so that every transferred chunk is contiguous.
  virtual Status copy_rows(const RowChunk& dst, const RowChunk& src, int64_t batch, int64_t heads,
                           int64_t head_dim, DType dtype) = 0;
  // Several copy_rows of one shape (same rows, heads, head_dim) at once: on GPUs one kernel instead of one per
  // copy (a layer packs 3·u·t head blocks before its first transfer, and each launch and its tail cost more than
  // the bytes). The default does one copy_rows per entry.
  struct RowCopy {
    RowChunk dst, src;
  };
  virtual Status copy_rows_batch(const std::vector<RowCopy>& copies, int64_t batch, int64_t heads, int64_t head_dim,
                                 DType dtype) {
    for (const RowCopy& c : copies) SF_RETURN_IF_ERROR(copy_rows(c.dst, c.src, batch, heads, head_dim, dtype));
    return Status::ok();
  }
  // Rows whose keys were split between two computations: `acc` (Õ, m, l) over some keys, left by attention calls
  // that did not finalize (dense [B, len, H, D] and [B, len, H] fp32, as in QChunk), and `part` the finalized
  // output and lse (QChunk::lse, dense [B, len, H]) of the same rows over the other keys, computed elsewhere.
  // Writes the output over all keys into `out` (the problem's dtype): the merge of the two partials in fp32, so
  // that only `part` was rounded before. Rows without keys on either side get 0.
  struct PartialMerge {
    const float* acc_o = nullptr;
    const float* acc_m = nullptr;
    const float* acc_l = nullptr;
    RowChunk part_o;
    const float* part_lse = nullptr;
    RowChunk out;  // out.len == part_o.len: the rows
  };
  virtual Status merge_partials(const std::vector<PartialMerge>& merges, int64_t batch, int64_t heads,
                                int64_t head_dim, DType dtype) = 0;
  // Plain local memory (device memory on GPUs). Never symmetric: use Comm::alloc_symmetric for that.
  virtual Result<void*> alloc(size_t bytes) = 0;
  virtual void free(void* p) = 0;
  // Host <-> device copies and fills used by setup, tests and the CLI (synchronous).
  virtual Status copy_to_device(void* dst, const void* src_host, size_t bytes) = 0;
  virtual Status copy_to_host(void* dst_host, const void* src, size_t bytes) = 0;
  virtual Status fill(void* dst, uint8_t byte, size_t bytes) = 0;
  // How many 128-row query tiles (counted over heads and batch) one attention call should have to keep this
  // device busy; algorithms cut work finer only while calls stay this large. 0: no preference (CPU ranks).
  virtual int64_t busy_query_tiles() const { return 0; }
  // Attention calls may run on several compute lanes (AttentionProblem::lane): 1 (the default) runs every call in
  // issue order. With 2, calls on lane 1 do not wait for lane 0's calls issued before them, nor lane 0's for lane
  // 1's; everything else (the other device operations, Comm operations and waits) is ordered after both lanes'
  // calls issued before it, and a transfer waited for (Comm::wait) holds both lanes' later calls.
  virtual int compute_lanes() const { return 1; }
  // Every call issued from now on, on either lane, follows every call issued so far.
  virtual Status order_lanes() { return Status::ok(); }
  // Waits until all enqueued compute and communication of this rank is finished.
  virtual Status synchronize() = 0;
  // Shared work (AttentionProblem::shared): the blocks of work that helpers took in the latest shared call whose
  // owner's workspace this is, once everything enqueued has finished (synchronizes). 0 on devices that do not share.
  virtual Result<int64_t> shared_blocks_helped(const SharedWork& work) {
    (void)work;
    return int64_t{0};
  }
};

}  // namespace sf
