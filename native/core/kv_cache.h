// Paged KV cache (vLLM's PagedAttention idea): the K and V pools are split into blocks
// of block_size positions; each sequence owns a block table (the ids of its blocks in
// position order). Blocks are reference-counted so fork() shares a prefix without
// copying; a block with more than one owner is copied before it is written to
// (copy-on-write: in practice only a forked sequence's partial last block).
//
// The pools live in backend memory (see core/backend.h for their layout); this class is
// the host-side bookkeeping and is thread-safe (one mutex, held only for bookkeeping).
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/backend.h"

namespace gpt2 {

struct KvCacheShape {
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t head_dim = 0;
  int32_t block_size = 16;
  int32_t num_blocks = 0;

  int64_t block_floats() const { return int64_t(n_head) * block_size * head_dim; }
  int64_t layer_floats() const { return block_floats() * num_blocks; }
};

// One sequence's view of the cache: its blocks and how many positions are filled.
struct KvSequence {
  std::vector<int32_t> blocks;
  int32_t length = 0;
};

// Reference-counted free list of block ids. Lowest ids are handed out first, so the
// touched part of a lazily committed pool stays compact.
class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t num_blocks);
  int32_t free_count() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_blocks() const { return static_cast<int32_t>(refcount_.size()); }
  int32_t allocate();  // caller checked free_count() > 0
  void retain(int32_t block) { refcount_[block]++; }
  void release(int32_t block);
  int32_t refcount(int32_t block) const { return refcount_[block]; }

 private:
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;  // stack, lowest id on top
};

class KvCache {
 public:
  // Allocates the pools (2 * n_layer * num_blocks * block_floats floats) on the backend.
  KvCache(Backend& backend, const KvCacheShape& shape);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheShape& shape() const { return shape_; }
  int64_t capacity_tokens() const { return int64_t(shape_.num_blocks) * shape_.block_size; }
  int32_t free_blocks() const;
  size_t bytes() const;

  float* k_pool(int32_t layer) { return k_ + layer * shape_.layer_floats(); }
  float* v_pool(int32_t layer) { return v_ + layer * shape_.layer_floats(); }

  // Makes room for n more positions of seq: copies a shared block it will write into,
  // allocates new blocks, and writes the n new positions' slots (block * block_size + offset)
  // to slots. All or nothing: when the cache lacks blocks, throws a RangeError with
  // code ERR_GPT2_KV_CACHE_FULL and leaves seq unchanged. Does not change seq.length
  // (the caller commits it once the forward pass has succeeded).
  void prepare_append(KvSequence& seq, int32_t n, int32_t* slots);

  // dst shares all of src's blocks (dst must be empty).
  void fork(const KvSequence& src, KvSequence& dst);
  // Keeps the first n positions (n <= length), returning the blocks no longer needed.
  void truncate(KvSequence& seq, int32_t n);
  // Returns all of seq's blocks.
  void release(KvSequence& seq);

  // Free blocks that prepare_append(seq, n) would take now: new blocks plus the copy of a
  // shared block it writes into. Schedulers use it to admit work that fits.
  int32_t blocks_needed(const KvSequence& seq, int32_t n) const;

  // Block ids a sequence of `tokens` positions needs.
  int32_t blocks_for(int64_t tokens) const { return static_cast<int32_t>((tokens + shape_.block_size - 1) / shape_.block_size); }

 private:
  Backend& backend_;
  KvCacheShape shape_;
  float* k_ = nullptr;
  float* v_ = nullptr;
  mutable std::mutex mutex_;
  BlockAllocator allocator_;
};

}  // namespace gpt2
