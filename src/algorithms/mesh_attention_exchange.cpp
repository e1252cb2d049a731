// MeshAttention's transfers: A. the Ulysses scatter, B. the Torus pulls, C. the ring's, D. the output pushes.
#include "algorithms/mesh_attention_impl.h"

namespace sf::detail {

// ---- A. Ulysses: pack head blocks, scatter them inside the Ulysses group.
Status MeshAttention::scatter_ulysses(const void* q, const void* k, const void* v) {
  if (direct_) {
    home_q_ = q;
    if (qu_.id < 0) {
      home_k_ = k;
      home_v_ = v;
      return Status::ok();
    }
    // One-sided ring: peers pull K/V, so they must sit in symmetric memory (already there when the caller wrote
    // them into kv_input_buffers()).
    const RowBlock me = block_of(rank_);
    if (k != ku_.local)
      SF_RETURN_IF_ERROR(dev_.copy_rows(me.piece(ku_.local, 0, elem_), user_rows(k, 0), shape_.batch, Ht_,
                                        shape_.head_dim, shape_.dtype));
    if (v != vu_.local)
      SF_RETURN_IF_ERROR(dev_.copy_rows(me.piece(vu_.local, 0, elem_), user_rows(v, 0), shape_.batch, Ht_,
                                        shape_.head_dim, shape_.dtype));
    home_k_ = ku_.local;
    home_v_ = vu_.local;
    SF_RETURN_IF_ERROR(offer_lent_rows(q));
    return comm_.barrier(gr_);  // ring peers may pull as soon as everyone's copy is in place
  }
  const RowBlock me = block_of(rank_);
  const int64_t n = rows_of(rank_), D = shape_.head_dim;
  const size_t piece_bytes = static_cast<size_t>(shape_.batch * n * Ht_ * D) * elem_;
  const void* inputs[3] = {q, k, v};
  const SymmetricBuffer* homes[3] = {&qu_, &ku_, &vu_};
  // Pack: piece (j, p) holds heads of Ulysses block j, Torus sub-block p. Our own pieces go straight home. All
  // 3·u·t pieces in one batch: no transfer can start before the last of them.
  std::vector<Device::RowCopy> pack;
  for (int tensor = 0; tensor < 3; ++tensor)
    for (int j = 0; j < u_; ++j)
      for (int p = 0; p < t_; ++p) {
        const RowChunk src = user_rows(inputs[tensor], head_offset(j, p));
        RowChunk dst = j == iu_ ? me.piece(slot(homes[tensor]->local, slot_bytes_, p), iu_, elem_)
                                : dense_rows(static_cast<char*>(pack_) + ((tensor * u_ + j) * t_ + p) * os_slot_bytes_, n, Ht_, D);
        pack.push_back({dst, src});
      }
  SF_RETURN_IF_ERROR(dev_.copy_rows_batch(pack, shape_.batch, Ht_, D, shape_.dtype));
  if (u_ > 1 && one_sided_) {  // ScatterPush: our piece iu_ of each peer's block (same pieces: same group)
    for (int tensor = 0; tensor < 3; ++tensor)
      for (int j = 0; j < u_; ++j)
        for (int p = 0; p < t_ && j != iu_ && piece_bytes; ++p) {
          const char* src = static_cast<char*>(pack_) + ((tensor * u_ + j) * t_ + p) * os_slot_bytes_;
          const size_t dst_off = p * slot_bytes_ + me.piece_offset(iu_) * elem_;
          SF_RETURN_IF_ERROR(comm_.put(*homes[tensor], dst_off, gu_[j], src, piece_bytes).status());
        }
  } else if (u_ > 1) {  // all-to-all: to peer j its head blocks, from peer j its rows of ours
    std::vector<std::vector<Comm::ConstPiece>> sends(u_);
    std::vector<std::vector<Comm::MutablePiece>> recvs(u_);
    for (int tensor = 0; tensor < 3; ++tensor)
      for (int j = 0; j < u_; ++j)
        for (int p = 0; p < t_; ++p) {
          sends[j].push_back({static_cast<char*>(pack_) + ((tensor * u_ + j) * t_ + p) * os_slot_bytes_, piece_bytes});
          recvs[j].push_back({slot(homes[tensor]->local, slot_bytes_, p) + me.piece_offset(j) * elem_,
                              static_cast<size_t>(me.piece_elems(j)) * elem_});
        }
    SF_ASSIGN_OR_RETURN(std::vector<Handle> handles, comm_.all_to_all(gu_, sends, recvs));
    SF_RETURN_IF_ERROR(comm_.wait_all(handles));
  }
  // One-sided: every ScatterPush has landed everywhere before anyone pulls (paper Algorithm 1, BarrierAll).
  if (one_sided_) SF_RETURN_IF_ERROR(comm_.barrier_all());
  home_q_ = slot(qu_.local, slot_bytes_, l_);
  home_k_ = slot(ku_.local, slot_bytes_, l_);
  home_v_ = slot(vu_.local, slot_bytes_, l_);
  return Status::ok();
}

// ---- B. Torus: stage i needs Q (then K/V) of sub-block l from Torus peer l+i. Q first: K/V are twice the
// bytes and harder to hide. Issued in stage order and, inside a stage, segment by segment, so the first rows
// arrive first and compute can start on them.
template <typename Move>
Status MeshAttention::for_segment_runs(const RowBlock& b, int seg, Move move) const {
  const int64_t row = Ht_ * shape_.head_dim;
  for (int j = 0; j < b.pieces(); ++j) {
    const int64_t n = b.piece_len[j], a = seg_begin(n, seg), len = seg_begin(n, seg + 1) - a;
    if (len == 0) continue;
    for (int64_t batch = 0; batch < b.batch; ++batch)
      SF_RETURN_IF_ERROR(move(b.piece_offset(j) + (batch * n + a) * row, len * row));
  }
  return Status::ok();
}

Status MeshAttention::issue_torus() {
  torus_q_.assign(t_, std::vector<std::vector<Handle>>(c_));
  torus_kv_.assign(t_, std::vector<std::vector<Handle>>(c_));
  const RowBlock mine = block_of(rank_);
  for (int pass = 0; pass < 2; ++pass) {  // 0: Pull Q, 1: Pull KV
    const int tensors = pass == 0 ? 1 : 2;
    for (int i = 1; i < t_; ++i) {
      const int from = gt_[(l_ + i) % t_], to = gt_[(l_ - i + t_) % t_];
      const RowBlock theirs = block_of(from);
      char* dst[2] = {pass == 0 ? slot(qt_, slot_bytes_, i - 1) : slot(kt_.local, slot_bytes_, i - 1),
                      pass == 0 ? nullptr : slot(vt_.local, slot_bytes_, i - 1)};
      const SymmetricBuffer* src_buf[2] = {pass == 0 ? &qu_ : &ku_, pass == 0 ? nullptr : &vu_};
      for (int seg = 0; seg < c_; ++seg) {
        std::vector<Handle>& done = (pass == 0 ? torus_q_ : torus_kv_)[i][seg];
        for (int j = 0; j < tensors; ++j) {
          if (one_sided_) {  // GatherPull straight from the peer's Ulysses output
            SF_RETURN_IF_ERROR(for_segment_runs(theirs, seg, [&](int64_t off, int64_t n) -> Status {
              SF_ASSIGN_OR_RETURN(Handle h, comm_.get(dst[j] + off * elem_, *src_buf[j], l_ * slot_bytes_ + off * elem_,
                                                      from, n * elem_));
              done.push_back(h);
              return Status::ok();
            }));
            continue;
          }
          SF_RETURN_IF_ERROR(comm_.begin_batch());
          const char* src = slot(src_buf[j]->local, slot_bytes_, (l_ - i + t_) % t_);
          SF_RETURN_IF_ERROR(for_segment_runs(mine, seg, [&](int64_t off, int64_t n) -> Status {
            return comm_.send(to, src + off * elem_, n * elem_).status();
          }));
          SF_RETURN_IF_ERROR(for_segment_runs(theirs, seg, [&](int64_t off, int64_t n) -> Status {
            SF_ASSIGN_OR_RETURN(Handle h, comm_.recv(from, dst[j] + off * elem_, n * elem_));
            done.push_back(h);
            return Status::ok();
          }));
          SF_RETURN_IF_ERROR(comm_.end_batch());
        }
      }
    }
  }
  return Status::ok();
}

// ---- C. The ring of K/V set x (set 0: the stationary sub-block; set x: pulled from Torus peer l+x).
// Block s of the result comes from ring member k−s; block 0 is our own.
Status MeshAttention::issue_ring_set(int x, int seg, RingSet* set, const std::vector<Handle>* landed) {
  std::vector<KVBlock>& blocks = set->blocks;
  auto set_layout = [&](int member) { return block_of(torus_member(member, (l_ + x) % t_)); };
  if (blocks.empty()) {
    blocks.assign(r_, KVBlock{});
    blocks[0] = {set_layout(rank_), const_cast<char*>(static_cast<const char*>(x == 0 ? home_k_ : slot(kt_.local, slot_bytes_, x - 1))),
                 const_cast<char*>(static_cast<const char*>(x == 0 ? home_v_ : slot(vt_.local, slot_bytes_, x - 1)))};
    for (int s = 1; s < r_; ++s) {
      const int from = gr_[(k_ - s + r_) % r_];
      blocks[s] = {set_layout(from), slot(ring_k_, slot_bytes_, x * (r_ - 1) + s - 1),
                   slot(ring_v_, slot_bytes_, x * (r_ - 1) + s - 1)};
    }
    set->arrived.assign(seg < 0 ? 1 : c_, std::vector<std::vector<Handle>>(r_));
  }
  if (r_ == 1) return Status::ok();
  std::vector<std::vector<Handle>>& arrived = set->arrived[std::max(seg, 0)];
  // Runs `issue` on the ring lane after `deps` only (detached from the compute), or after the compute if none.
  auto on_ring_lane = [&](const std::vector<Handle>* deps, auto issue) -> Status {
    if (!deps) return issue();
    SF_RETURN_IF_ERROR(comm_.begin_detached(Lane::kRing, *deps));
    const Status issued = issue();
    SF_RETURN_IF_ERROR(comm_.end_detached(Lane::kRing));
    return issued;
  };
  if (one_sided_) {  // pull from the owners' buffers directly: no per-step handshake
    return on_ring_lane(landed, [&]() -> Status {
      // Every ring member's Torus pull of these rows must have landed before anyone reads them.
      if (x > 0) SF_RETURN_IF_ERROR(comm_.barrier(gr_, Lane::kRing));
      const SymmetricBuffer& kb = x == 0 ? ku_ : kt_;
      const SymmetricBuffer& vb = x == 0 ? vu_ : vt_;
      const size_t base = x == 0 ? l_ * slot_bytes_ : (x - 1) * slot_bytes_;  // the set's slot in every member
      if (by_heads_ && x == 0 && seg < 0) return pull_ring_by_heads(kb, vb, base, set);
      for (int s = 1; s < r_; ++s) {
        const int from = gr_[(k_ - s + r_) % r_];
        const KVBlock& b = blocks[s];
        const Status pulled = for_rows(b.layout, seg, [&](int64_t off, int64_t n) -> Status {
          const size_t at = off * elem_, bytes = n * elem_;
          SF_ASSIGN_OR_RETURN(Handle hk, comm_.get(b.k + at, kb, base + at, from, bytes, Lane::kRing));
          SF_ASSIGN_OR_RETURN(Handle hv, comm_.get(b.v + at, vb, base + at, from, bytes, Lane::kRing));
          arrived[s].push_back(hk);
          arrived[s].push_back(hv);
          return Status::ok();
        });
        SF_RETURN_IF_ERROR(pulled);
      }
      return Status::ok();
    });
  }
  // Two-sided: step s forwards the block received at step s−1 to the next member and receives the next one. A
  // step waits on the ring lane for the block it forwards, never on the compute stream: the compute of the
  // blocks already here goes on meanwhile.
  const int next = gr_[(k_ + 1) % r_], prev = gr_[(k_ - 1 + r_) % r_];
  for (int s = 1; s < r_; ++s) {
    const KVBlock& fwd = blocks[s - 1];
    const KVBlock& b = blocks[s];
    const Status stepped = on_ring_lane(s == 1 ? landed : &arrived[s - 1], [&]() -> Status {
      SF_RETURN_IF_ERROR(comm_.begin_batch());
      const Status sent = for_rows(fwd.layout, seg, [&](int64_t off, int64_t n) -> Status {
        SF_RETURN_IF_ERROR(comm_.send(next, fwd.k + off * elem_, n * elem_, Lane::kRing).status());
        return comm_.send(next, fwd.v + off * elem_, n * elem_, Lane::kRing).status();
      });
      SF_RETURN_IF_ERROR(sent);
      const Status received = for_rows(b.layout, seg, [&](int64_t off, int64_t n) -> Status {
        SF_ASSIGN_OR_RETURN(Handle hk, comm_.recv(prev, b.k + off * elem_, n * elem_, Lane::kRing));
        SF_ASSIGN_OR_RETURN(Handle hv, comm_.recv(prev, b.v + off * elem_, n * elem_, Lane::kRing));
        arrived[s].push_back(hk);
        arrived[s].push_back(hv);
        return Status::ok();
      });
      SF_RETURN_IF_ERROR(received);
      return comm_.end_batch();
    });
    SF_RETURN_IF_ERROR(stepped);
  }
  return Status::ok();
}

// A ring's home blocks (a lone ring's, or set 0 beside Torus stages) in steps of heads (ring_heads_per_step): the
// first first_wave_ heads (about the call's first wave) peer by peer, all of ring block 1's steps of them before
// block 2's, since the wave's items take the blocks in that order; then step g brings heads [g·n, (g+1)·n) of every
// ring peer's K and V, before step g+1 starts. Each pull is one strided copy (the heads' columns of every row) of
// one step and completes that step of its block's flag. Copies of the first heads in one wider step instead ran
// 2.5 % slower at Flux S=16384 on 1x2 (2x H200, 4 heads against 2: bench/sp/results/h200x2-2026-11-28-first-wave/
// wide/), though they landed long before the call needed them.
Status MeshAttention::pull_ring_by_heads(const SymmetricBuffer& kb, const SymmetricBuffer& vb, size_t base,
                                         RingSet* set) {
  const int64_t H = Ht_, n = heads_per_step_;
  const size_t head_bytes = static_cast<size_t>(shape_.head_dim) * elem_, pitch = H * head_bytes;
  set->head_steps.clear();
  const auto pull = [&](int s, int64_t h0, int64_t h1) -> Status {
    const int from = gr_[(k_ - s + r_) % r_];
    const KVBlock& b = set->blocks[s];
    // Dense [B, len, H, D] with one piece (no Ulysses level): every batch entry's rows in one run of rows.
    const size_t rows = static_cast<size_t>(b.layout.batch * b.layout.piece_len[0]);
    const size_t width = static_cast<size_t>(h1 - h0) * head_bytes, at = h0 * head_bytes;
    SF_ASSIGN_OR_RETURN(Handle hk, comm_.get_strided(b.k + at, pitch, kb, base + at, pitch, width, rows, from,
                                                     Lane::kRing));
    SF_ASSIGN_OR_RETURN(Handle hv, comm_.get_strided(b.v + at, pitch, vb, base + at, pitch, width, rows, from,
                                                     Lane::kRing));
    set->arrived[0][s].push_back(hk);
    set->arrived[0][s].push_back(hv);
    set->head_steps.push_back({s - 1, static_cast<int32_t>(h0 / n), {hk, hv}});
    return Status::ok();
  };
  for (int s = 1; s < r_; ++s)
    for (int64_t h0 = 0; h0 < first_wave_; h0 += n) SF_RETURN_IF_ERROR(pull(s, h0, std::min(h0 + n, H)));
  for (int64_t h0 = first_wave_; h0 < H; h0 += n)
    for (int s = 1; s < r_; ++s) SF_RETURN_IF_ERROR(pull(s, h0, std::min(h0 + n, H)));
  return Status::ok();
}

// ---- D. Push finalized output pieces to the ranks that own their rows. foreign: Torus stages 1..t-1 (rows
// of other machines' Torus peers); otherwise stage 0 (rows of our Ulysses peers). Two-sided: the matching
// receives (from ranks whose Torus index differs from ours, or equals it) go in the same batch.
Status MeshAttention::push_outputs(bool foreign, std::vector<Handle>* waits, int only_stage) {
  if (only_stage >= 1 && !one_sided_) return internal_error("push_outputs: one stage alone needs one-sided pushes");
  if (!one_sided_) SF_RETURN_IF_ERROR(comm_.begin_batch());
  const int64_t D = shape_.head_dim;
  for (int i = foreign ? 1 : 0; i < (foreign ? t_ : 1); ++i) {
    if (only_stage >= 1 && i != only_stage) continue;
    const int x = gt_[(l_ + i) % t_];
    const RowBlock qb = block_of(x);
    const std::vector<int> owners = mesh_.group(LevelKind::kUlysses, x);
    for (int j = 0; j < qb.pieces(); ++j) {
      const int owner = owners[j];
      if (owner == rank_) continue;
      const char* src = slot(ostage_, ostage_slot_bytes_, i) + qb.piece_offset(j) * elem_;
      size_t bytes = static_cast<size_t>(qb.piece_elems(j)) * elem_;
      if (!bytes) continue;
      // A partial (the local diagonal, u = 1: one piece) and the lse after it in one transfer.
      if (diagonal_)
        bytes = lse_after(qb.piece_len[j]) + static_cast<size_t>(shape_.batch * qb.piece_len[j] * Ht_) * sizeof(float);
      const size_t dst_off = (iu_ * t_ + l_) * os_slot_bytes_;  // the owner's slot for our heads
      if (diagonal_) {  // the owner merges it as it lands (merge_pushed_partials): word l_ of its signals
        SF_ASSIGN_OR_RETURN(Handle h, comm_.put_signal(os_, dst_off, owner, src, bytes, partial_signals_, l_, epoch_));
        waits->push_back(h);  // waited for at the forward's end: no transfer stays outstanding across forwards
      } else if (one_sided_) SF_RETURN_IF_ERROR(comm_.put(os_, dst_off, owner, src, bytes).status());
      else SF_RETURN_IF_ERROR(comm_.send(owner, src, bytes).status());
    }
  }
  if (!one_sided_) {
    const size_t bytes = static_cast<size_t>(shape_.batch * rows_of(rank_) * Ht_ * D) * elem_;
    for (int lp = 0; lp < t_; ++lp) {
      if ((lp != l_) != foreign) continue;
      const std::vector<int> senders = mesh_.group(LevelKind::kUlysses, gt_[lp]);
      for (int j = 0; j < u_; ++j) {
        if (senders[j] == rank_ || !bytes) continue;
        SF_ASSIGN_OR_RETURN(Handle h, comm_.recv(senders[j], static_cast<char*>(os_.local) + (j * t_ + lp) * os_slot_bytes_, bytes));
        waits->push_back(h);
      }
    }
    SF_RETURN_IF_ERROR(comm_.end_batch());
  }
  return Status::ok();
}

Status MeshAttention::gather_outputs(void* o) {
  const int64_t n = rows_of(rank_), D = shape_.head_dim;
  std::vector<Device::RowCopy> pieces;
  for (int j = 0; j < u_; ++j)
    for (int lp = 0; lp < t_; ++lp) {
      if (j == iu_ && lp == l_) continue;  // finalized in place
      const RowChunk src = dense_rows(static_cast<char*>(os_.local) + (j * t_ + lp) * os_slot_bytes_, n, Ht_, D);
      pieces.push_back({user_rows(o, head_offset(j, lp)), src});
    }
  return dev_.copy_rows_batch(pieces, shape_.batch, Ht_, D, shape_.dtype);
}

}  // namespace sf::detail
