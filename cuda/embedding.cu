// Row gathers: the token + position embedding sum (out = wte[id] + wpe[pos]) and gather_rows
// (the rows whose logits are asked for). One thread per 4 floats when rows are 16-byte
// aligned, else one per float.
#include "device_util.h"
#include "kernels.h"

namespace gpt2_cuda {

void embed_reference(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t d = 0; d < dim; d++) out[i * dim + d] = wte[int64_t(ids[i]) * dim + d] + wpe[int64_t(positions[i]) * dim + d];
}

void gather_rows_reference(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t d = 0; d < dim; d++) out[i * dim + d] = x[int64_t(rows[i]) * ldx + d];
}

namespace {

constexpr int kThreads = 256;

// V = 4: float4 per thread (dim % 4 == 0 and aligned rows), V = 1: scalar.
template <int V>
__global__ void embed_rows(const int32_t* __restrict__ ids, const int32_t* __restrict__ positions, int64_t n,
                           const float* __restrict__ wte, const float* __restrict__ wpe, int64_t dim, float* out) {
  const int64_t per_row = dim / V;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * per_row) return;
  const int64_t row = i / per_row, d = (i % per_row) * V;
  const float* t = wte + int64_t(ids[row]) * dim + d;
  const float* p = wpe + int64_t(positions[row]) * dim + d;
  if constexpr (V == 4) {
    const float4 a = *reinterpret_cast<const float4*>(t), b = *reinterpret_cast<const float4*>(p);
    *reinterpret_cast<float4*>(out + row * dim + d) = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
  } else {
    out[row * dim + d] = t[0] + p[0];
  }
}

template <int V>
__global__ void gather(const float* __restrict__ x, int64_t ldx, const int32_t* __restrict__ rows, int64_t n,
                       int64_t dim, float* out) {
  const int64_t per_row = dim / V;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * per_row) return;
  const int64_t row = i / per_row, d = (i % per_row) * V;
  const float* src = x + int64_t(rows[row]) * ldx + d;
  if constexpr (V == 4)
    *reinterpret_cast<float4*>(out + row * dim + d) = *reinterpret_cast<const float4*>(src);
  else
    out[row * dim + d] = src[0];
}

unsigned blocks_for(int64_t threads) { return unsigned((threads + kThreads - 1) / kThreads); }

}  // namespace

cudaError_t embed(cudaStream_t stream, const int32_t* ids, const int32_t* positions, int64_t n, const float* wte,
                  const float* wpe, int64_t dim, float* out) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  if (dim % 4 == 0 && aligned16(wte) && aligned16(wpe) && aligned16(out))
    embed_rows<4><<<blocks_for(n * dim / 4), kThreads, 0, stream>>>(ids, positions, n, wte, wpe, dim, out);
  else
    embed_rows<1><<<blocks_for(n * dim), kThreads, 0, stream>>>(ids, positions, n, wte, wpe, dim, out);
  return cudaGetLastError();
}

cudaError_t gather_rows(cudaStream_t stream, const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim,
                        float* out) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  if (dim % 4 == 0 && ldx % 4 == 0 && aligned16(x) && aligned16(out))
    gather<4><<<blocks_for(n * dim / 4), kThreads, 0, stream>>>(x, ldx, rows, n, dim, out);
  else
    gather<1><<<blocks_for(n * dim), kThreads, 0, stream>>>(x, ldx, rows, n, dim, out);
  return cudaGetLastError();
}

}  // namespace gpt2_cuda
