// The CPU implementation of the Backend interface (core/backend.h): memory is host
// memory, ops run on the process-wide ThreadPool, GEMMs on gemm.h's packed weights.
#pragma once
#include <memory>

#include "core/backend.h"

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

class CpuBackend final : public Backend {
 public:
  // threads: how many of the shared pool's threads this backend's kernels use (0 = all).
  CpuBackend(ThreadPool& pool, int threads);

  const char* name() const override { return "cpu"; }
  void* alloc(size_t bytes) override;
  void free(void* ptr) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void copy_kv_blocks(float* k_pool, float* v_pool, int64_t pool_stride_floats, int32_t n_layers, int64_t block_floats,
                      const int32_t* src_blocks, const int32_t* dst_blocks, int32_t n_blocks) override;

  BackendWeight* pack_weight(const float* w, int64_t K, int64_t N, bool transposed, WeightFormat format) override;
  void free_weight(BackendWeight* w) override;
  size_t weight_bytes(const BackendWeight* w) const override;
  BackendWeight* pack_embedding(const float* wte, int64_t V, int64_t E, WeightFormat format) override;
  void embed_packed(const int32_t* ids, const int32_t* positions, int64_t n, const BackendWeight* wte, const float* wpe,
                    int64_t dim, float* out) override;

  void matmul(const float* A, int64_t M, int64_t lda, const BackendWeight* W, float* C, int64_t ldc, const float* bias,
              ActivationKind act, const float* residual, int64_t ldr) override;
  void layernorm(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows, int64_t dim,
                 const float* gamma, const float* beta, float eps, float* y, int64_t ldy) override;
  void embed(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe, int64_t dim,
             float* out) override;
  void kv_append(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
                 const AttentionShape& shape, float* k_pool, float* v_pool) override;
  void attention(const float* q, int64_t ldq, const AttentionBatch& batch, const AttentionShape& shape,
                 const float* k_pool, const float* v_pool, float* out, int64_t ldo) override;
  void gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) override;

  ThreadPool& pool() { return pool_; }

 private:
  ThreadPool& pool_;
  int threads_;
};

}  // namespace gpt2::cpu
