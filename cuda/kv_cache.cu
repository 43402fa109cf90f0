// Writes into the paged KV cache (layout in native/core/backend.h): kv_append scatters each
// new token's keys and values to its slot; copy_kv_blocks is the copy-on-write of a forked
// sequence's partial last block.
#include <cstring>

#include "kernels.h"

namespace gpt2_cuda {

namespace {
// Offset of (slot, head) in a pool laid out [block][head][block_size][head_dim].
__host__ __device__ inline int64_t pool_offset(int32_t slot, int32_t head, const gpt2_cuda_attention_shape& s) {
  const int32_t block = slot / s.block_size, offset = slot % s.block_size;
  return ((int64_t(block) * s.n_head + head) * s.block_size + offset) * s.head_dim;
}

// One thread per (token, element of the n_head * head_dim row).
__global__ void kv_scatter(const float* __restrict__ k, int64_t ldk, const float* __restrict__ v, int64_t ldv,
                           const int32_t* __restrict__ slots, int64_t n, gpt2_cuda_attention_shape s, float* k_pool,
                           float* v_pool) {
  const int64_t width = int64_t(s.n_head) * s.head_dim;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * width) return;
  const int64_t t = i / width, e = i % width;
  const int32_t head = int32_t(e / s.head_dim), d = int32_t(e % s.head_dim);
  const int64_t dst = pool_offset(slots[t], head, s) + d;
  k_pool[dst] = k[t * ldk + e];
  v_pool[dst] = v[t * ldv + e];
}
}  // namespace

void kv_append_reference(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
                         const gpt2_cuda_attention_shape& s, float* k_pool, float* v_pool) {
  for (int64_t t = 0; t < n; t++)
    for (int32_t h = 0; h < s.n_head; h++) {
      std::memcpy(k_pool + pool_offset(slots[t], h, s), k + t * ldk + int64_t(h) * s.head_dim, sizeof(float) * s.head_dim);
      std::memcpy(v_pool + pool_offset(slots[t], h, s), v + t * ldv + int64_t(h) * s.head_dim, sizeof(float) * s.head_dim);
    }
}

cudaError_t kv_append(cudaStream_t stream, const float* k, int64_t ldk, const float* v, int64_t ldv,
                      const int32_t* slots, int64_t n, const gpt2_cuda_attention_shape& s, float* k_pool,
                      float* v_pool) {
  const int64_t total = n * s.n_head * s.head_dim;
  if (total <= 0) return cudaSuccess;
  kv_scatter<<<unsigned((total + 255) / 256), 256, 0, stream>>>(k, ldk, v, ldv, slots, n, s, k_pool, v_pool);
  return cudaGetLastError();
}

cudaError_t copy_kv_blocks(cudaStream_t stream, float* k_pool, float* v_pool, int64_t pool_stride_floats,
                           int32_t n_layers, int64_t block_floats, const int32_t* src_blocks,
                           const int32_t* dst_blocks, int32_t n_blocks) {
  const size_t bytes = sizeof(float) * size_t(block_floats);
  for (int32_t l = 0; l < n_layers; l++)
    for (int32_t i = 0; i < n_blocks; i++) {
      const int64_t src = l * pool_stride_floats + src_blocks[i] * block_floats;
      const int64_t dst = l * pool_stride_floats + dst_blocks[i] * block_floats;
      for (float* pool : {k_pool, v_pool}) {
        const cudaError_t e = cudaMemcpyAsync(pool + dst, pool + src, bytes, cudaMemcpyDeviceToDevice, stream);
        if (e != cudaSuccess) return e;
      }
    }
  return cudaSuccess;
}

}  // namespace gpt2_cuda
