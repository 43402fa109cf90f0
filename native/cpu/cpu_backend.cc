#include "cpu/cpu_backend.h"

#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/attention.h"
#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/host_memory.h"
#include "cpu/layernorm.h"

namespace gpt2 {
// The CPU backend's weight handle is a PackedWeight.
struct BackendWeight {
  cpu::PackedWeight packed;
  // pack_embedding with bf16 panels: what restores the exact fp32 rows for the gather.
  std::unique_ptr<cpu::Bf16Residual> residual;
};
}  // namespace gpt2

namespace gpt2::cpu {

CpuBackend::CpuBackend(ThreadPool& pool, int threads) : pool_(pool), threads_(threads) {}

void* CpuBackend::alloc(size_t bytes) { return host_alloc(bytes); }

void CpuBackend::free(void* ptr) { host_free(ptr); }

void CpuBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (dst != host_src) std::memcpy(dst, host_src, bytes);
}

void CpuBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (host_dst != src) std::memcpy(host_dst, src, bytes);
}

void CpuBackend::copy_kv_blocks(float* k_pool, float* v_pool, int64_t pool_stride, int32_t n_layers, int64_t block_floats,
                                const int32_t* src, const int32_t* dst, int32_t n_blocks) {
  for (int32_t l = 0; l < n_layers; l++)
    for (int32_t i = 0; i < n_blocks; i++) {
      const int64_t so = l * pool_stride + src[i] * block_floats, d = l * pool_stride + dst[i] * block_floats;
      std::memcpy(k_pool + d, k_pool + so, sizeof(float) * block_floats);
      std::memcpy(v_pool + d, v_pool + so, sizeof(float) * block_floats);
    }
}

BackendWeight* CpuBackend::pack_weight(const float* w, int64_t K, int64_t N, bool transposed, WeightFormat format) {
  auto out = std::make_unique<BackendWeight>();
  out->packed = PackedWeight::pack(w, K, N, transposed, format == WeightFormat::BF16 ? WeightType::BF16 : WeightType::F32);
  return out.release();
}

void CpuBackend::free_weight(BackendWeight* w) { delete w; }

size_t CpuBackend::weight_bytes(const BackendWeight* w) const {
  return w ? w->packed.bytes() + (w->residual ? w->residual->bytes() : 0) : 0;
}

BackendWeight* CpuBackend::pack_embedding(const float* wte, int64_t V, int64_t E, WeightFormat format) {
  auto out = std::make_unique<BackendWeight>();
  const bool bf16 = format == WeightFormat::BF16;
  out->packed = PackedWeight::pack(wte, E, V, true, bf16 ? WeightType::BF16 : WeightType::F32);
  if (bf16) out->residual = std::make_unique<Bf16Residual>(Bf16Residual::of(wte, V * E));
  return out.release();
}

void CpuBackend::embed_packed(const int32_t* ids, const int32_t* positions, int64_t n, const BackendWeight* wte,
                              const float* wpe, int64_t dim, float* out) {
  cpu::embed_packed(pool_, threads_, ids, positions, n, wte->packed, wte->residual.get(), wpe, dim, out);
}

void CpuBackend::matmul(const float* A, int64_t M, int64_t lda, const BackendWeight* W, float* C, int64_t ldc,
                        const float* bias, ActivationKind act, const float* residual, int64_t ldr) {
  Epilogue ep;
  ep.bias = bias;
  ep.activation = static_cast<Activation>(act);
  ep.residual = residual;
  ep.ldr = ldr;
  cpu::matmul(pool_, A, M, lda, W->packed, C, ldc, ep);
}

void CpuBackend::layernorm(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows, int64_t dim,
                           const float* gamma, const float* beta, float eps, float* y, int64_t ldy) {
  cpu::layernorm(pool_, threads_, x, ldx, residual, sum_out, rows, dim, gamma, beta, eps, y, ldy);
}

void CpuBackend::embed(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                       int64_t dim, float* out) {
  cpu::embed(pool_, threads_, ids, positions, n, wte, wpe, dim, out);
}

void CpuBackend::kv_append(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
                           const AttentionShape& shape, float* k_pool, float* v_pool) {
  cpu::kv_append(k, ldk, v, ldv, slots, n, shape, k_pool, v_pool);
}

void CpuBackend::attention(const float* q, int64_t ldq, const AttentionBatch& batch, const AttentionShape& shape,
                           const float* k_pool, const float* v_pool, float* out, int64_t ldo) {
  cpu::attention(pool_, threads_, q, ldq, batch, shape, k_pool, v_pool, out, ldo);
}

void CpuBackend::gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) {
  cpu::gather_rows(x, ldx, rows, n, dim, out);
}

}  // namespace gpt2::cpu
