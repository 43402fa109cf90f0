#include "cpu/layernorm.h"

#include <cmath>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace gpt2::cpu {

void layernorm_reference(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows, int64_t dim,
                         const float* gamma, const float* beta, float eps, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * ldx;
    double mean = 0;
    for (int64_t i = 0; i < dim; i++) mean += double(xr[i]) + (residual ? double(residual[r * ldx + i]) : 0.0);
    mean /= double(dim);
    double var = 0;
    for (int64_t i = 0; i < dim; i++) {
      const double d = double(xr[i]) + (residual ? double(residual[r * ldx + i]) : 0.0) - mean;
      var += d * d;
    }
    var /= double(dim);
    const double inv = 1.0 / std::sqrt(var + double(eps));
    for (int64_t i = 0; i < dim; i++) {
      // The sum is rounded to float first, as the real kernels (and torch) store it.
      const float s = residual ? xr[i] + residual[r * ldx + i] : xr[i];
      y[r * ldy + i] = static_cast<float>((double(s) - mean) * inv * double(gamma[i]) + double(beta[i]));
    }
    if (residual)
      for (int64_t i = 0; i < dim; i++) sum_out[r * ldx + i] = xr[i] + residual[r * ldx + i];
  }
}

void layernorm_row_portable(const float* x, const float* residual, float* sum_out, int64_t dim, const float* gamma,
                            const float* beta, float eps, float* y) {
  // With a residual, materialise the sum first (into sum_out, which may be x itself).
  const float* s = x;
  if (residual) {
    for (int64_t i = 0; i < dim; i++) sum_out[i] = x[i] + residual[i];
    s = sum_out;
  }
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += s[i + j];
  float total = 0;
  for (; i < dim; i++) total += s[i];
  for (int j = 0; j < 8; j++) total += acc[j];
  const float mean = total / float(dim);
  float vacc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (i = 0; i + 8 <= dim; i += 8)
    for (int j = 0; j < 8; j++) {
      const float d = s[i + j] - mean;
      vacc[j] += d * d;
    }
  float var = 0;
  for (; i < dim; i++) var += (s[i] - mean) * (s[i] - mean);
  for (int j = 0; j < 8; j++) var += vacc[j];
  var /= float(dim);
  const float inv = 1.0f / std::sqrt(var + eps);
  for (i = 0; i < dim; i++) y[i] = (s[i] - mean) * inv * gamma[i] + beta[i];
}

void layernorm(ThreadPool& pool, int max_threads, const float* x, int64_t ldx, const float* residual, float* sum_out,
               int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps, float* y, int64_t ldy) {
  const bool avx2 = cpu_features().has_avx2();
  auto rows_fn = [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; r++) {
      const float* res = residual ? residual + r * ldx : nullptr;
      float* so = residual ? sum_out + r * ldx : nullptr;
      if (avx2)
        layernorm_row_avx2(x + r * ldx, res, so, dim, gamma, beta, eps, y + r * ldy);
      else
        layernorm_row_portable(x + r * ldx, res, so, dim, gamma, beta, eps, y + r * ldy);
    }
  };
  // A row is ~dim*4 flops: only split when there is enough of them to pay for a wakeup.
  if (rows * dim < 16384)
    rows_fn(0, rows, 0);
  else
    pool.parallel_for(rows, rows_fn, max_threads);
}

}  // namespace gpt2::cpu
