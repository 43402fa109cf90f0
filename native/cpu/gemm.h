// Matrix multiply with fused epilogues: the one GEMM every layer of GPT-2 uses.
//
//   C[M, N] = epilogue(A[M, K] · W)     epilogue: + bias, activation, + residual
//
// W is a weight matrix repacked once at load time (PackedWeight) into the layout the
// fastest kernel for this CPU wants. Kernels (AVX2, AVX-512, AVX512-BF16, AMX) are
// picked at run time from cpu_features(); matmul_reference() is the plain version the
// tests compare them with.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cpu/activation.h"

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

enum class WeightType { F32, BF16 };

struct Epilogue {
  const float* bias = nullptr;          // [N], added to every row
  Activation activation = Activation::None;  // applied after the bias
  const float* residual = nullptr;      // [M, ldr], added last; may alias C (x += ...)
  int64_t ldr = 0;
};

class PackedWeight {
 public:
  // w holds the logical [K, N] matrix: row-major [K, N] (Conv1D layout, y = x·w), or,
  // with transposed = true, row-major [N, K] (a Linear/embedding layout, y = x·wᵀ; the
  // tied lm_head). The data is copied/converted; w may be freed afterwards.
  static PackedWeight pack(const float* w, int64_t K, int64_t N, bool transposed, WeightType type);

  PackedWeight();
  ~PackedWeight();
  PackedWeight(PackedWeight&&) noexcept;
  PackedWeight& operator=(PackedWeight&&) noexcept;

  int64_t K() const;
  int64_t N() const;
  WeightType type() const;
  size_t bytes() const;  // memory held
  bool empty() const { return impl_ == nullptr; }
  // Which kernel family the weight was packed for ("avx2", "avx512", "baseline", ...).
  const char* kernel_name() const;

  // The packed panels as they are, for code that reads the weight back in place (the
  // embedding gather of a tied lm_head: row v of wte is column v here). Layout: gemm_internal.h.
  struct Panels {
    const void* data;  // float (F32) or uint16 bf16 bits (BF16)
    int64_t nr;            // columns per panel
    int64_t panel_stride;  // elements per panel
  };
  Panels panels() const;

  struct Impl;
  const Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// C (row stride ldc) = epilogue(A (row stride lda) · W), split over the pool's threads.
// A must not overlap C; the residual may (x += f(x·W) with residual == C runs in place).
// BF16 weights: W is rounded to bf16 (nearest even) when packed, accumulation is fp32.
// On AVX2/baseline/plain AVX-512 the activations stay fp32 (the error against fp32 is the
// weight rounding only); with AVX512-BF16 (vdpbf16ps) and AMX (M >= 4, K % 32 == 0) the
// activations are rounded to bf16 too. The tests compare each path with the reference
// run on the same rounded inputs, to 2e-6 * sum|a*w| per output.
// Thread-safe: concurrent calls on one PackedWeight are fine (read-only).
void matmul(ThreadPool& pool, const float* A, int64_t M, int64_t lda, const PackedWeight& W, float* C, int64_t ldc,
            const Epilogue& epilogue = {});

// The plain triple loop (double accumulation), on the unpacked weight: the reference.
void matmul_reference(const float* A, int64_t M, int64_t lda, const float* w, int64_t K, int64_t N, bool transposed,
                      float* C, int64_t ldc, const Epilogue& epilogue = {});

}  // namespace gpt2::cpu
