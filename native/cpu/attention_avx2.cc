// AVX2+FMA attention row (head_dim a multiple of 8; called only after checking cpu_features()).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/attention.h"
#include "cpu/simd_avx2.h"

namespace gpt2::cpu {

void attention_row_avx2(const float* q, const int32_t* blocks, int32_t n_keys, const AttentionShape& s, int32_t head,
                        const float* k_pool, const float* v_pool, float* out) {
  const int32_t hd = s.head_dim, bs = s.block_size, nv = hd / 8;
  __m256 acc[32];  // head_dim <= 256
  for (int32_t v = 0; v < nv; v++) acc[v] = _mm256_setzero_ps();
  float m = -INFINITY, l = 0;
  float p[256];
  for (int32_t start = 0; start < n_keys; start += bs) {
    const int32_t n = std::min(bs, n_keys - start);
    const int64_t base = ((int64_t(blocks[start / bs]) * s.n_head + head) * bs) * hd;
    const float* kb = k_pool + base;
    const float* vb = v_pool + base;
    float bmax = -INFINITY;
    for (int32_t j = 0; j < n; j++) {
      __m256 dot = _mm256_setzero_ps();
      for (int32_t v = 0; v < nv; v++) dot = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * v), _mm256_loadu_ps(kb + j * hd + 8 * v), dot);
      p[j] = hsum(dot) * s.scale;
      bmax = std::max(bmax, p[j]);
    }
    const float m_new = std::max(m, bmax);
    const float correction = std::exp(m - m_new);
    l *= correction;
    const __m256 vc = _mm256_set1_ps(correction);
    for (int32_t v = 0; v < nv; v++) acc[v] = _mm256_mul_ps(acc[v], vc);
    for (int32_t j = 0; j < n; j++) {
      const float pj = std::exp(p[j] - m_new);
      l += pj;
      const __m256 vp = _mm256_set1_ps(pj);
      for (int32_t v = 0; v < nv; v++) acc[v] = _mm256_fmadd_ps(vp, _mm256_loadu_ps(vb + j * hd + 8 * v), acc[v]);
    }
    m = m_new;
  }
  const __m256 inv = _mm256_set1_ps(1.0f / l);
  for (int32_t v = 0; v < nv; v++) _mm256_storeu_ps(out + 8 * v, _mm256_mul_ps(acc[v], inv));
}

}  // namespace gpt2::cpu
