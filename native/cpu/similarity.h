// Similarity search over a contiguous row-major matrix of vectors (SemanticIndex):
// scores[r] = matrix[r, :] · q, then the k best. The index stores unit vectors, so the
// dot product is the cosine similarity.
#pragma once
#include <cstdint>
#include <vector>

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

// Plain version (double accumulation): what the tests compare with.
void dot_rows_reference(const float* matrix, int64_t rows, int64_t dim, const float* q, float* scores);
// Float with 8 partial sums (portable; the compiler vectorises it).
void dot_rows_portable(const float* matrix, int64_t rows, int64_t dim, const float* q, float* scores);
// AVX2+FMA, four rows per pass over q (similarity_avx2.cc); only call when
// cpu_features().has_avx2().
void dot_rows_avx2(const float* matrix, int64_t rows, int64_t dim, const float* q, float* scores);

// Rows split over the pool in blocks (max_threads 0 = all, 1 = the caller only), best
// kernel for this CPU.
void dot_rows(ThreadPool& pool, int max_threads, const float* matrix, int64_t rows, int64_t dim, const float* q,
              float* scores);

// Indices of the k largest scores (k <= n), best first; ties by lower index. NaN never wins.
std::vector<int64_t> top_k(const float* scores, int64_t n, int64_t k);

}  // namespace gpt2::cpu
