#include "cpu/embedding.h"

#include <cstring>

#include "core/thread_pool.h"

namespace gpt2::cpu {

void embed_reference(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t d = 0; d < dim; d++) out[i * dim + d] = wte[int64_t(ids[i]) * dim + d] + wpe[int64_t(positions[i]) * dim + d];
}

void embed(ThreadPool& pool, int max_threads, const int32_t* ids, const int32_t* positions, int64_t n, const float* wte,
           const float* wpe, int64_t dim, float* out) {
  auto rows = [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; i++) {
      const float* t = wte + int64_t(ids[i]) * dim;
      const float* p = wpe + int64_t(positions[i]) * dim;
      float* o = out + i * dim;
      for (int64_t d = 0; d < dim; d++) o[d] = t[d] + p[d];  // vectorised by the compiler
    }
  };
  if (n * dim < 65536)
    rows(0, n, 0);
  else
    pool.parallel_for(n, rows, max_threads);
}

void gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) {
  for (int64_t i = 0; i < n; i++) std::memcpy(out + i * dim, x + int64_t(rows[i]) * ldx, sizeof(float) * dim);
}

}  // namespace gpt2::cpu
