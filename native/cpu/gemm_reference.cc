#include "cpu/gemm.h"

namespace gpt2::cpu {

void matmul_reference(const float* A, int64_t M, int64_t lda, const float* w, int64_t K, int64_t N, bool transposed,
                      float* C, int64_t ldc, const Epilogue& ep) {
  for (int64_t m = 0; m < M; m++) {
    for (int64_t n = 0; n < N; n++) {
      double acc = 0;
      for (int64_t k = 0; k < K; k++) acc += double(A[m * lda + k]) * double(transposed ? w[n * K + k] : w[k * N + n]);
      float y = static_cast<float>(acc);
      if (ep.bias) y += ep.bias[n];
      y = activation_reference(ep.activation, y);
      if (ep.residual) y += ep.residual[m * ep.ldr + n];
      C[m * ldc + n] = y;
    }
  }
}

}  // namespace gpt2::cpu
