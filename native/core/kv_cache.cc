#include "core/kv_cache.h"

#include <string>

#include "core/error.h"

namespace gpt2 {

BlockAllocator::BlockAllocator(int32_t num_blocks) : refcount_(num_blocks, 0) {
  free_.reserve(num_blocks);
  for (int32_t b = num_blocks - 1; b >= 0; b--) free_.push_back(b);
}

int32_t BlockAllocator::allocate() {
  const int32_t b = free_.back();
  free_.pop_back();
  refcount_[b] = 1;
  return b;
}

void BlockAllocator::release(int32_t block) {
  if (--refcount_[block] == 0) free_.push_back(block);
}

KvCache::KvCache(Backend& backend, const KvCacheShape& shape)
    : backend_(backend), shape_(shape), allocator_(shape.num_blocks) {
  const size_t pool_bytes = sizeof(float) * size_t(shape.n_layer) * size_t(shape.layer_floats());
  k_ = static_cast<float*>(backend_.alloc(pool_bytes));
  try {
    v_ = static_cast<float*>(backend_.alloc(pool_bytes));
  } catch (...) {
    backend_.free(k_);
    throw;
  }
}

KvCache::~KvCache() {
  backend_.free(k_);
  backend_.free(v_);
}

int32_t KvCache::free_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return allocator_.free_count();
}

size_t KvCache::bytes() const { return 2 * sizeof(float) * size_t(shape_.n_layer) * size_t(shape_.layer_floats()); }

int32_t KvCache::blocks_needed(const KvSequence& seq, int32_t n) const {
  const int32_t have = static_cast<int32_t>(seq.blocks.size());
  const int32_t need = blocks_for(int64_t(seq.length) + n);
  const int32_t first_written = seq.length / shape_.block_size;
  std::lock_guard<std::mutex> lock(mutex_);
  const bool cow = n > 0 && first_written < have && allocator_.refcount(seq.blocks[first_written]) > 1;
  return (need > have ? need - have : 0) + (cow ? 1 : 0);
}

void KvCache::prepare_append(KvSequence& seq, int32_t n, int32_t* slots) {
  const int32_t bs = shape_.block_size;
  const int64_t new_length = int64_t(seq.length) + n;
  const int32_t have = static_cast<int32_t>(seq.blocks.size());
  const int32_t need = blocks_for(new_length);
  // The block holding position `length` already exists when length is not block-aligned
  // (or after a truncate that kept a whole block): it is written to, so copy it if shared.
  const int32_t first_written = seq.length / bs;
  int32_t cow_src = -1, cow_dst = -1;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool cow = n > 0 && first_written < have && allocator_.refcount(seq.blocks[first_written]) > 1;
    const int32_t wanted = (need > have ? need - have : 0) + (cow ? 1 : 0);
    if (wanted > allocator_.free_count())
      throw Error(ErrorKind::RangeError, code::kKvCacheFull,
                  "KV cache is full: appending " + std::to_string(n) + " tokens needs " + std::to_string(wanted) +
                      " more blocks of " + std::to_string(bs) + " tokens, " + std::to_string(allocator_.free_count()) +
                      " free (capacity " + std::to_string(capacity_tokens()) +
                      " tokens; raise the kvCacheTokens option or dispose sequences)");
    if (cow) {
      cow_src = seq.blocks[first_written];
      cow_dst = allocator_.allocate();
      allocator_.release(cow_src);  // still owned by the other sequence(s)
      seq.blocks[first_written] = cow_dst;
    }
    for (int32_t b = have; b < need; b++) seq.blocks.push_back(allocator_.allocate());
  }
  if (cow_src >= 0)
    backend_.copy_kv_blocks(k_, v_, shape_.layer_floats(), shape_.n_layer, shape_.block_floats(), &cow_src, &cow_dst, 1);
  for (int32_t i = 0; i < n; i++) {
    const int32_t pos = seq.length + i;
    slots[i] = seq.blocks[pos / bs] * bs + pos % bs;
  }
}

void KvCache::fork(const KvSequence& src, KvSequence& dst) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int32_t b : src.blocks) allocator_.retain(b);
  dst.blocks = src.blocks;
  dst.length = src.length;
}

void KvCache::truncate(KvSequence& seq, int32_t n) {
  if (n >= seq.length) return;
  const int32_t keep = blocks_for(n);
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t b = keep; b < seq.blocks.size(); b++) allocator_.release(seq.blocks[b]);
  seq.blocks.resize(keep);
  seq.length = n;
}

void KvCache::release(KvSequence& seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int32_t b : seq.blocks) allocator_.release(b);
  seq.blocks.clear();
  seq.length = 0;
}

}  // namespace gpt2
