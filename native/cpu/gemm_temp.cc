// TEMPORARY plain PackedWeight/matmul so the engine can be tested before the gemm branch
// lands. Deleted when `gemm` is merged. Not optimised on purpose.
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/gemm.h"

namespace gpt2::cpu {

struct PackedWeight::Impl {
  int64_t K = 0, N = 0;
  std::vector<float> w;  // [N, K]: each output column's weights contiguous
};

PackedWeight::PackedWeight() = default;
PackedWeight::~PackedWeight() = default;
PackedWeight::PackedWeight(PackedWeight&&) noexcept = default;
PackedWeight& PackedWeight::operator=(PackedWeight&&) noexcept = default;
int64_t PackedWeight::K() const { return impl_->K; }
int64_t PackedWeight::N() const { return impl_->N; }
WeightType PackedWeight::type() const { return WeightType::F32; }
size_t PackedWeight::bytes() const { return impl_ ? impl_->w.size() * sizeof(float) : 0; }

PackedWeight PackedWeight::pack(const float* w, int64_t K, int64_t N, bool transposed, WeightType) {
  PackedWeight p;
  p.impl_ = std::make_unique<Impl>();
  p.impl_->K = K;
  p.impl_->N = N;
  p.impl_->w.resize(size_t(K) * N);
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) p.impl_->w[n * K + k] = transposed ? w[n * K + k] : w[k * N + n];
  return p;
}

void matmul(ThreadPool& pool, const float* A, int64_t M, int64_t lda, const PackedWeight& W, float* C, int64_t ldc,
            const Epilogue& ep) {
  const int64_t K = W.K(), N = W.N();
  const float* w = W.impl()->w.data();
  pool.parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = n0; n < n1; n++) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        const float* a = A + m * lda;
        const float* b = w + n * K;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8)
          for (int j = 0; j < 8; j++) acc[j] += a[k + j] * b[k + j];
        float y = 0;
        for (; k < K; k++) y += a[k] * b[k];
        for (int j = 0; j < 8; j++) y += acc[j];
        if (ep.bias) y += ep.bias[n];
        y = activation_reference(ep.activation, y);
        if (ep.residual) y += ep.residual[m * ep.ldr + n];
        C[m * ldc + n] = y;
      }
  });
}

}  // namespace gpt2::cpu
