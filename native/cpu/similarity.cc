#include "cpu/similarity.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace gpt2::cpu {

void dot_rows_reference(const float* matrix, int64_t rows, int64_t dim, const float* q, float* scores) {
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    for (int64_t i = 0; i < dim; i++) s += double(matrix[r * dim + i]) * double(q[i]);
    scores[r] = static_cast<float>(s);
  }
}

void dot_rows_portable(const float* matrix, int64_t rows, int64_t dim, const float* q, float* scores) {
  for (int64_t r = 0; r < rows; r++) {
    const float* m = matrix + r * dim;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8)
      for (int j = 0; j < 8; j++) acc[j] += m[i + j] * q[i + j];
    float s = 0;
    for (; i < dim; i++) s += m[i] * q[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    scores[r] = s;
  }
}

void dot_rows(ThreadPool& pool, int max_threads, const float* matrix, int64_t rows, int64_t dim, const float* q,
              float* scores) {
  const auto kernel = cpu_features().has_avx2() ? dot_rows_avx2 : dot_rows_portable;
  // Blocks of ~256 KB of matrix, so each task is worth waking a thread for.
  const int64_t block = std::max<int64_t>(64, (int64_t(1) << 16) / std::max<int64_t>(dim, 1));
  const int64_t blocks = (rows + block - 1) / block;
  if (blocks <= 1 || max_threads == 1) {
    kernel(matrix, rows, dim, q, scores);
    return;
  }
  pool.run(
      blocks,
      [&](int64_t b, int) {
        const int64_t begin = b * block, n = std::min(rows, begin + block) - begin;
        kernel(matrix + begin * dim, n, dim, q, scores + begin);
      },
      max_threads);
}

std::vector<int64_t> top_k(const float* scores, int64_t n, int64_t k) {
  k = std::clamp<int64_t>(k, 0, n);
  // Better = higher score, then lower index; NaN counts as -infinity.
  auto key = [scores](int64_t i) { return std::isnan(scores[i]) ? -INFINITY : scores[i]; };
  auto better = [&key](int64_t a, int64_t b) {
    const float ka = key(a), kb = key(b);
    return ka != kb ? ka > kb : a < b;
  };
  // A heap of the k best so far, worst on top.
  std::vector<int64_t> heap;
  heap.reserve(size_t(k));
  for (int64_t i = 0; i < n && k > 0; i++) {
    if (int64_t(heap.size()) < k) {
      heap.push_back(i);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(i, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = i;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort(heap.begin(), heap.end(), better);
  return heap;
}

}  // namespace gpt2::cpu
