// The plugin's kernel families (one .cu file each), as host-callable launchers plus the plain
// CPU reference each is tested against (cuda/tests/kernels_test.cu). Launchers enqueue on
// `stream` and return the launch's cudaError_t; pointers are device memory unless the
// parameter says host. Layouts and semantics are those of native/core/backend.h.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda_plugin_abi.h"

namespace gpt2_cuda {

// Same values as gpt2::ActivationKind.
enum Activation : int32_t { kActNone = 0, kActGeluNew, kActGelu, kActRelu, kActSilu, kActTanh };
enum WeightFormat : int32_t { kWeightF32 = 0, kWeightBF16 = 1, kWeightF16 = 2 };

// ---- gemm.cu ----
// A weight as the GEMMs read it: logical [K, N], row-major, fp32, bf16 or fp16 (raw uint16 bits).
struct DeviceWeight {
  int64_t K = 0, N = 0;
  int32_t format = kWeightF32;
  void* data = nullptr;  // device memory, K * N elements
  size_t bytes = 0;
};

// fp32 -> bf16 bits, round to nearest even (NaN kept quiet); the host side of pack_weight.
uint16_t bf16_from_float(float x);
float float_from_bf16(uint16_t b);
uint16_t f16_from_float(float x);  // round to nearest even
float float_from_f16(uint16_t b);
float round_to_format(float x, int32_t format);  // x as a WeightFormat stores it

struct Epilogue {
  const float* bias = nullptr;      // [N] or null
  int32_t activation = kActNone;
  const float* residual = nullptr;  // [M, N] stride ldr, may alias C
  int64_t ldr = 0;
};

// Which kernel matmul picks; kAuto chooses from M and the weight format.
enum GemmPath : int32_t { kGemmAuto = 0, kGemmF32Tiled, kGemmTensorCore, kGemmSmallM };
cudaError_t matmul(cudaStream_t stream, const float* A, int64_t M, int64_t lda, const DeviceWeight& W, float* C,
                   int64_t ldc, const Epilogue& ep, GemmPath path = kGemmAuto);
// Host reference: double accumulation over W's stored values (16-bit weights widened exactly;
// A is first rounded to activation_format, a WeightFormat, as the tensor-core path does).
void matmul_reference(const float* A, int64_t M, int64_t lda, const float* W, int64_t K, int64_t N, float* C,
                      int64_t ldc, const Epilogue& ep, int32_t activation_format);
float activation_reference(int32_t act, float x);

// ---- layernorm.cu ----
cudaError_t layernorm(cudaStream_t stream, const float* x, int64_t ldx, const float* residual, float* sum_out,
                      int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps, float* y,
                      int64_t ldy);
void layernorm_reference(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows,
                         int64_t dim, const float* gamma, const float* beta, float eps, float* y, int64_t ldy);

// ---- embedding.cu ----
cudaError_t embed(cudaStream_t stream, const int32_t* ids, const int32_t* positions, int64_t n, const float* wte,
                  const float* wpe, int64_t dim, float* out);
void embed_reference(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out);
cudaError_t gather_rows(cudaStream_t stream, const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim,
                        float* out);
void gather_rows_reference(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out);

// ---- kv_cache.cu ----
cudaError_t kv_append(cudaStream_t stream, const float* k, int64_t ldk, const float* v, int64_t ldv,
                      const int32_t* slots, int64_t n, const gpt2_cuda_attention_shape& s, float* k_pool,
                      float* v_pool);
void kv_append_reference(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
                         const gpt2_cuda_attention_shape& s, float* k_pool, float* v_pool);
// src_blocks/dst_blocks are host arrays (the copy-on-write step is rare and tiny).
cudaError_t copy_kv_blocks(cudaStream_t stream, float* k_pool, float* v_pool, int64_t pool_stride_floats,
                           int32_t n_layers, int64_t block_floats, const int32_t* src_blocks,
                           const int32_t* dst_blocks, int32_t n_blocks);

// ---- attention.cu ----
// Workspace the split-KV decode kernel needs for `batch` (bytes; 0 when it is not used).
size_t attention_workspace_bytes(const gpt2_cuda_attention_batch& b, const gpt2_cuda_attention_shape& s,
                                 int32_t split_keys);
// Ragged causal attention over the paged cache. Decode-only batches (max_q_len == 1) take the
// split-KV kernel, splitting each sequence's keys into chunks of split_keys (a multiple of 32;
// 0 = default) and merging the partial softmaxes; workspace holds attention_workspace_bytes.
cudaError_t attention(cudaStream_t stream, const float* q, int64_t ldq, const gpt2_cuda_attention_batch& b,
                      const gpt2_cuda_attention_shape& s, const float* k_pool, const float* v_pool, float* out,
                      int64_t ldo, void* workspace, int32_t split_keys);
// Host reference over host copies of everything (batch arrays included).
void attention_reference(const float* q, int64_t ldq, const gpt2_cuda_attention_batch& b,
                         const gpt2_cuda_attention_shape& s, const float* k_pool, const float* v_pool, float* out,
                         int64_t ldo);
constexpr int32_t kDefaultSplitKeys = 256;

// ---- sampling.cu ----
using SamplingParams = gpt2_cuda_sampling_params;
// out_ids[r] = a token drawn from logits row r (stride ld) with params[r] (both device memory).
cudaError_t sample(cudaStream_t stream, const float* logits, int64_t rows, int64_t vocab, int64_t ld,
                   const SamplingParams* params, int32_t* out_ids);
int32_t sample_reference(const float* logits_row, int64_t vocab, const SamplingParams& params);

}  // namespace gpt2_cuda
