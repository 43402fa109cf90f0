// LayerNorm over rows, optionally fused with the residual add that precedes it:
//   s = x + residual (written to sum_out when residual is given), y = (s - mean) / sqrt(var + eps) * gamma + beta
// with the biased variance and eps inside the square root, as torch.nn.LayerNorm.
// Rows of x, residual and sum_out share the stride ldx; y has stride ldy. sum_out may alias x.
#pragma once
#include <cstdint>

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

// Plain version (double accumulation, two passes): what the tests compare with.
void layernorm_reference(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows, int64_t dim,
                         const float* gamma, const float* beta, float eps, float* y, int64_t ldy);

// One row, float two-pass with 8 partial sums (portable; the compiler vectorises it).
void layernorm_row_portable(const float* x, const float* residual, float* sum_out, int64_t dim, const float* gamma,
                            const float* beta, float eps, float* y);
// The same with AVX2+FMA (layernorm_avx2.cc); only call when cpu_features().has_avx2().
void layernorm_row_avx2(const float* x, const float* residual, float* sum_out, int64_t dim, const float* gamma,
                        const float* beta, float eps, float* y);

// Rows split over the pool (max_threads 0 = all), best kernel for this CPU.
void layernorm(ThreadPool& pool, int max_threads, const float* x, int64_t ldx, const float* residual, float* sum_out,
               int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps, float* y, int64_t ldy);

}  // namespace gpt2::cpu
