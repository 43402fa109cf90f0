#include "model/pooling.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace gpt2::model {

void pool_rows(const float* rows, int64_t n, int64_t dim, Pooling pooling, float* out) {
  if (n <= 0) {
    std::memset(out, 0, size_t(dim) * sizeof(float));
    return;
  }
  if (pooling == Pooling::First || pooling == Pooling::Rows) {
    std::memcpy(out, rows, size_t(dim) * sizeof(float));
    return;
  }
  if (pooling == Pooling::Last) {
    std::memcpy(out, rows + (n - 1) * dim, size_t(dim) * sizeof(float));
    return;
  }
  std::vector<double> sum(size_t(dim), 0.0);
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < dim; d++) sum[d] += rows[r * dim + d];
  for (int64_t d = 0; d < dim; d++) out[d] = static_cast<float>(sum[d] / double(n));
}

void l2_normalize(float* v, int64_t dim) {
  double ss = 0;
  for (int64_t d = 0; d < dim; d++) ss += double(v[d]) * v[d];
  if (ss == 0) return;
  const double inv = 1.0 / std::sqrt(ss);
  for (int64_t d = 0; d < dim; d++) v[d] = static_cast<float>(v[d] * inv);
}

}  // namespace gpt2::model
