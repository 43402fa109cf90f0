// LayerNorm over rows, optionally fused with the residual add of a pre-LN block:
// s = x + residual (also stored to sum_out, which may alias x), y = (s - mean) / sqrt(var + eps)
// * gamma + beta. One warp per row; the two passes (mean, then variance) read the row from
// global memory (L1-resident for GPT-2 widths), which keeps the variance exact.
#include <cmath>
#include <vector>

#include "device_util.h"
#include "kernels.h"

namespace gpt2_cuda {

void layernorm_reference(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows,
                         int64_t dim, const float* gamma, const float* beta, float eps, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; r++) {
    std::vector<float> s(dim);
    for (int64_t i = 0; i < dim; i++) s[i] = residual ? x[r * ldx + i] + residual[r * ldx + i] : x[r * ldx + i];
    double mean = 0, var = 0;
    for (float v : s) mean += v;
    mean /= double(dim);
    for (float v : s) var += (v - mean) * (v - mean);
    var /= double(dim);
    const double inv = 1.0 / std::sqrt(var + double(eps));
    for (int64_t i = 0; i < dim; i++) y[r * ldy + i] = float((s[i] - mean) * inv * gamma[i] + beta[i]);
    if (residual)
      for (int64_t i = 0; i < dim; i++) sum_out[r * ldx + i] = s[i];
  }
}

namespace {

constexpr int kRowsPerBlock = 4;


__global__ void __launch_bounds__(32 * kRowsPerBlock)
    layernorm_rows(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows, int64_t dim,
                   const float* __restrict__ gamma, const float* __restrict__ beta, float eps, float* y, int64_t ldy) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= rows) return;  // whole warps only: no block-wide barrier below
  const float* xr = x + r * ldx;
  const float* s = xr;
  float total = 0;
  if (residual) {
    // Each lane writes and later re-reads only its own elements, so sum_out may be x.
    const float* rr = residual + r * ldx;
    float* so = sum_out + r * ldx;
    for (int64_t i = lane; i < dim; i += 32) {
      const float v = xr[i] + rr[i];
      so[i] = v;
      total += v;
    }
    s = so;
  } else {
    for (int64_t i = lane; i < dim; i += 32) total += xr[i];
  }
  const float mean = warp_sum(total) / float(dim);
  float sq = 0;
  for (int64_t i = lane; i < dim; i += 32) {
    const float d = s[i] - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(warp_sum(sq) / float(dim) + eps);
  float* yr = y + r * ldy;
  for (int64_t i = lane; i < dim; i += 32) yr[i] = (s[i] - mean) * inv * gamma[i] + beta[i];
}

}  // namespace

cudaError_t layernorm(cudaStream_t stream, const float* x, int64_t ldx, const float* residual, float* sum_out,
                      int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps, float* y,
                      int64_t ldy) {
  if (rows <= 0) return cudaSuccess;
  const unsigned blocks = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  layernorm_rows<<<blocks, 32 * kRowsPerBlock, 0, stream>>>(x, ldx, residual, sum_out, rows, dim, gamma, beta, eps, y,
                                                            ldy);
  return cudaGetLastError();
}

}  // namespace gpt2_cuda
