// Causal self-attention over the paged KV cache for a ragged batch (see AttentionBatch in
// core/backend.h for the batch layout and core/backend.h's header for the pool layout).
// Computed in float32 throughout (what transformers' reorder_and_upcast_attn asks for;
// for float32 weights it is what the eager path does anyway).
#pragma once
#include <cstdint>

#include "core/backend.h"

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

// Plain version, as transformers' eager attention: the full score row, scaled, max-subtracted
// softmax in double, then probs · V. The AttentionBatch arrays are host memory here.
void attention_reference(const float* q, int64_t ldq, const AttentionBatch& batch, const AttentionShape& shape,
                         const float* k_pool, const float* v_pool, float* out, int64_t ldo);

// One (query row, head): online softmax (flash style) over the key blocks it may see.
// q and out point at this head's head_dim values; blocks = the sequence's block table.
void attention_row_portable(const float* q, const int32_t* blocks, int32_t n_keys, const AttentionShape& shape,
                            int32_t head, const float* k_pool, const float* v_pool, float* out);
void attention_row_avx2(const float* q, const int32_t* blocks, int32_t n_keys, const AttentionShape& shape,
                        int32_t head, const float* k_pool, const float* v_pool, float* out);

// Split over (sequence, head, group of query rows) on the pool; best kernel for this CPU.
void attention(ThreadPool& pool, int max_threads, const float* q, int64_t ldq, const AttentionBatch& batch,
               const AttentionShape& shape, const float* k_pool, const float* v_pool, float* out, int64_t ldo);

// Writes n tokens' K and V rows into the pools at their slots.
void kv_append(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
               const AttentionShape& shape, float* k_pool, float* v_pool);

}  // namespace gpt2::cpu
