// AVX2+FMA LayerNorm row (compiled with -mavx2 -mfma; called only after checking cpu_features()).
#include <immintrin.h>

#include <cmath>

#include "cpu/layernorm.h"
#include "cpu/simd_avx2.h"

namespace gpt2::cpu {

void layernorm_row_avx2(const float* x, const float* residual, float* sum_out, int64_t dim, const float* gamma,
                        const float* beta, float eps, float* y) {
  const float* s = x;
  int64_t i;
  if (residual) {
    for (i = 0; i + 8 <= dim; i += 8)
      _mm256_storeu_ps(sum_out + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(residual + i)));
    for (; i < dim; i++) sum_out[i] = x[i] + residual[i];
    s = sum_out;
  }
  __m256 acc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= dim; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(s + i));
  float total = hsum(acc);
  for (; i < dim; i++) total += s[i];
  const float mean = total / float(dim);
  const __m256 vmean = _mm256_set1_ps(mean);
  __m256 vacc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= dim; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(s + i), vmean);
    vacc = _mm256_fmadd_ps(d, d, vacc);
  }
  float var = hsum(vacc);
  for (; i < dim; i++) var += (s[i] - mean) * (s[i] - mean);
  var /= float(dim);
  const float inv = 1.0f / std::sqrt(var + eps);
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= dim; i += 8) {
    const __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmean), vinv);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(n, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
  }
  for (; i < dim; i++) y[i] = (s[i] - mean) * inv * gamma[i] + beta[i];
}

}  // namespace gpt2::cpu
