// Token + position embedding gather: out[i] = wte[ids[i]] + wpe[positions[i]].
// Ids and positions are validated by the model before they get here.
#pragma once
#include <cstdint>

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

void embed_reference(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out);

// Rows split over the pool when there are many.
void embed(ThreadPool& pool, int max_threads, const int32_t* ids, const int32_t* positions, int64_t n, const float* wte,
           const float* wpe, int64_t dim, float* out);

// out[i] = x[rows[i]] (for picking the rows whose logits are asked).
void gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out);

}  // namespace gpt2::cpu
