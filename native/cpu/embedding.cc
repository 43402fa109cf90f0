#include "cpu/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"

namespace gpt2::cpu {

void embed_reference(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t d = 0; d < dim; d++) out[i * dim + d] = wte[int64_t(ids[i]) * dim + d] + wpe[int64_t(positions[i]) * dim + d];
}

namespace {
// rows(begin, end) over [0, n), split over the pool when there is enough work.
template <class Rows>
void for_rows(ThreadPool& pool, int max_threads, int64_t n, int64_t dim, const Rows& rows) {
  if (n * dim < 65536)
    rows(0, n);
  else
    pool.parallel_for(n, [&](int64_t begin, int64_t end, int) { rows(begin, end); }, max_threads);
}
}  // namespace

void embed(ThreadPool& pool, int max_threads, const int32_t* ids, const int32_t* positions, int64_t n, const float* wte,
           const float* wpe, int64_t dim, float* out) {
  for_rows(pool, max_threads, n, dim, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float* t = wte + int64_t(ids[i]) * dim;
      const float* p = wpe + int64_t(positions[i]) * dim;
      float* o = out + i * dim;
      for (int64_t d = 0; d < dim; d++) o[d] = t[d] + p[d];  // vectorised by the compiler
    }
  });
}

Bf16Residual Bf16Residual::of(const float* w, int64_t count) {
  Bf16Residual r;
  r.low.resize(size_t(count));
  for (int64_t i = 0; i < count; i++) {
    uint32_t u;
    std::memcpy(&u, &w[i], 4);
    const int64_t diff = int64_t(u) - (int64_t(gemm::float_to_bf16(w[i])) << 16);
    if (diff >= INT16_MIN && diff <= INT16_MAX) {
      r.low[i] = static_cast<int16_t>(diff);
    } else {
      r.low[i] = 0;
      r.exact_at.push_back(i);
      r.exact.push_back(w[i]);
    }
  }
  return r;
}

void embed_packed(ThreadPool& pool, int max_threads, const int32_t* ids, const int32_t* positions, int64_t n,
                  const PackedWeight& wte, const Bf16Residual* residual, const float* wpe, int64_t dim, float* out) {
  const PackedWeight::Panels pw = wte.panels();
  if (wte.K() != dim) throw_range_error("embed_packed: the packed weight's K is not the embedding width");
  const bool bf16 = wte.type() == WeightType::BF16;
  if (bf16 && (!residual || int64_t(residual->low.size()) != wte.N() * dim))
    throw_type_error("embed_packed: bf16 panels need the residual of the same matrix");
  const int64_t NR = pw.nr;
  for_rows(pool, max_threads, n, dim, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const int64_t v = ids[i], c = v % NR;
      const float* p = wpe + int64_t(positions[i]) * dim;
      float* o = out + i * dim;
      if (!bf16) {
        // Column c of panel v / NR: one value every NR floats.
        const float* t = static_cast<const float*>(pw.data) + (v / NR) * pw.panel_stride + c;
        for (int64_t d = 0; d < dim; d++) o[d] = t[d * NR] + p[d];
        continue;
      }
      // Rows k = 2j, 2j+1 of column c are the pair at [j][c][0..1] of the panel.
      const uint16_t* t = static_cast<const uint16_t*>(pw.data) + (v / NR) * pw.panel_stride + 2 * c;
      const int16_t* low = residual->low.data() + v * dim;
      for (int64_t d = 0; d < dim; d++) {
        const uint32_t bits = (uint32_t(t[(d / 2) * 2 * NR + (d & 1)]) << 16) + uint32_t(int32_t(low[d]));
        float f;
        std::memcpy(&f, &bits, 4);
        o[d] = f + p[d];
      }
      const auto& at = residual->exact_at;
      for (auto e = std::lower_bound(at.begin(), at.end(), v * dim); e != at.end() && *e < (v + 1) * dim; ++e)
        o[*e - v * dim] = residual->exact[e - at.begin()] + p[*e - v * dim];
    }
  });
}

void gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) {
  for (int64_t i = 0; i < n; i++) std::memcpy(out + i * dim, x + int64_t(rows[i]) * ldx, sizeof(float) * dim);
}

}  // namespace gpt2::cpu
