// gpt2::Backend on a CUDA device: every call is forwarded to the plugin's C entry points
// (cuda_plugin_abi.h, gpt2_cuda_*), found at run time by cuda_loader. The addon never links
// CUDA. A failed call becomes gpt2::Error: ERR_GPT2_OUT_OF_MEMORY for device memory,
// ERR_GPT2_CUDA for everything else, with the plugin's message.
#pragma once
#include <memory>
#include <string>

#include "core/backend.h"
#include "core/cuda_loader.h"

namespace gpt2 {

class CudaBackend final : public Backend {
 public:
  // The backend for CUDA device `device`, or null with *reason set when CUDA is not usable
  // here (no plugin, no driver, no such device, or the backend could not be created).
  static std::unique_ptr<CudaBackend> create(int device, std::string* reason);
  ~CudaBackend() override;

  const char* name() const override { return name_.c_str(); }
  void* alloc(size_t bytes) override;
  void free(void* ptr) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void copy_kv_blocks(float* k_pool, float* v_pool, int64_t pool_stride_floats, int32_t n_layers, int64_t block_floats,
                      const int32_t* src_blocks, const int32_t* dst_blocks, int32_t n_blocks) override;

  BackendWeight* pack_weight(const float* w, int64_t K, int64_t N, bool transposed, WeightFormat format) override;
  void free_weight(BackendWeight* w) override;
  size_t weight_bytes(const BackendWeight* w) const override;

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

  bool graphs_enabled() const override;
  bool graph_launch(const void* owner, int64_t key) override;
  void graph_begin(const void* owner, int64_t key) override;
  void graph_end(const void* owner, int64_t key, bool keep) override;
  void graph_forget(const void* owner) override;

 private:
  CudaBackend(const CudaPluginApi& api, gpt2_cuda_backend* handle, int device);
  // Throws the plugin's last error unless status is GPT2_CUDA_OK.
  void check(gpt2_cuda_status status, const char* op) const;

  const CudaPluginApi& api_;
  gpt2_cuda_backend* handle_;
  std::string name_;
};

}  // namespace gpt2
