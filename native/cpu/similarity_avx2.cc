// AVX2+FMA dot products of matrix rows with one query (compiled with -mavx2 -mfma; called
// only after checking cpu_features()). Four rows share each load of q.
#include <immintrin.h>

#include "cpu/similarity.h"
#include "cpu/simd_avx2.h"

namespace gpt2::cpu {

void dot_rows_avx2(const float* matrix, int64_t rows, int64_t dim, const float* q, float* scores) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* m0 = matrix + r * dim;
    const float* m1 = m0 + dim;
    const float* m2 = m1 + dim;
    const float* m3 = m2 + dim;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) {
      const __m256 qv = _mm256_loadu_ps(q + i);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + i), qv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(m1 + i), qv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(m2 + i), qv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(m3 + i), qv, a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; i < dim; i++) {
      s0 += m0[i] * q[i];
      s1 += m1[i] * q[i];
      s2 += m2[i] * q[i];
      s3 += m3[i] * q[i];
    }
    scores[r] = s0;
    scores[r + 1] = s1;
    scores[r + 2] = s2;
    scores[r + 3] = s3;
  }
  for (; r < rows; r++) {
    const float* m = matrix + r * dim;
    __m256 a = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(m + i), _mm256_loadu_ps(q + i), a);
    float s = hsum(a);
    for (; i < dim; i++) s += m[i] * q[i];
    scores[r] = s;
  }
}

}  // namespace gpt2::cpu
