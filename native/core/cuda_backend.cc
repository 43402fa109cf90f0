#include "core/cuda_backend.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace gpt2 {
namespace {

gpt2_cuda_attention_shape to_abi(const AttentionShape& s) { return {s.n_head, s.head_dim, s.block_size, s.scale}; }

// The plugin's weight handle stands in for BackendWeight (never dereferenced here).
gpt2_cuda_weight* to_abi(const BackendWeight* w) {
  return reinterpret_cast<gpt2_cuda_weight*>(const_cast<BackendWeight*>(w));
}

}  // namespace

std::unique_ptr<CudaBackend> CudaBackend::create(int device, std::string* reason) {
  const CudaPluginApi* api = cuda_plugin();
  if (!api) {
    *reason = "CUDA not available: " + cuda_status().reason;
    return nullptr;
  }
  gpt2_cuda_backend* handle = nullptr;
  if (api->backend_create(device, &handle) != GPT2_CUDA_OK) {
    const char* msg = api->last_error();
    *reason = std::string("CUDA device ") + std::to_string(device) + " not usable: " +
              (msg && *msg ? msg : "gpt2_cuda_backend_create failed");
    return nullptr;
  }
  return std::unique_ptr<CudaBackend>(new CudaBackend(*api, handle, device));
}

CudaBackend::CudaBackend(const CudaPluginApi& api, gpt2_cuda_backend* handle, int device)
    : api_(api), handle_(handle), name_("cuda:" + std::to_string(device)) {}

CudaBackend::~CudaBackend() { api_.backend_destroy(handle_); }

void CudaBackend::check(gpt2_cuda_status status, const char* op) const {
  if (status == GPT2_CUDA_OK) return;
  const char* msg = api_.last_error();
  const std::string what = std::string("CUDA ") + op + " on " + name_ + ": " + (msg && *msg ? msg : "failed");
  if (status == GPT2_CUDA_ERROR_OUT_OF_MEMORY) throw Error(ErrorKind::Error, code::kOutOfMemory, what);
  throw Error(ErrorKind::Error, code::kCuda, what);
}

void* CudaBackend::alloc(size_t bytes) {
  void* p = nullptr;
  check(api_.alloc(handle_, bytes, &p), "alloc");
  return p;
}

// free / free_weight run from destructors: a failure (only a pointer this backend does not
// own, or an earlier fatal device error) cannot be reported there and is dropped.
void CudaBackend::free(void* ptr) { api_.free(handle_, ptr); }

void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  check(api_.upload(handle_, dst, host_src, bytes), "upload");
}

void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  check(api_.download(handle_, host_dst, src, bytes), "download");
}

void CudaBackend::copy_kv_blocks(float* k_pool, float* v_pool, int64_t pool_stride_floats, int32_t n_layers,
                                 int64_t block_floats, const int32_t* src_blocks, const int32_t* dst_blocks,
                                 int32_t n_blocks) {
  check(api_.copy_kv_blocks(handle_, k_pool, v_pool, pool_stride_floats, n_layers, block_floats, src_blocks, dst_blocks,
                            n_blocks),
        "copy_kv_blocks");
}

BackendWeight* CudaBackend::pack_weight(const float* w, int64_t K, int64_t N, bool transposed, WeightFormat format) {
  gpt2_cuda_weight* out = nullptr;
  check(api_.pack_weight(handle_, w, K, N, transposed ? 1 : 0, static_cast<int32_t>(format), &out), "pack_weight");
  return reinterpret_cast<BackendWeight*>(out);
}

void CudaBackend::free_weight(BackendWeight* w) { api_.free_weight(handle_, to_abi(w)); }

size_t CudaBackend::weight_bytes(const BackendWeight* w) const {
  uint64_t bytes = 0;
  check(api_.weight_bytes(to_abi(w), &bytes), "weight_bytes");
  return static_cast<size_t>(bytes);
}

void CudaBackend::matmul(const float* A, int64_t M, int64_t lda, const BackendWeight* W, float* C, int64_t ldc,
                         const float* bias, ActivationKind act, const float* residual, int64_t ldr) {
  check(api_.matmul(handle_, A, M, lda, to_abi(W), C, ldc, bias, static_cast<int32_t>(act), residual, ldr), "matmul");
}

void CudaBackend::layernorm(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows,
                            int64_t dim, const float* gamma, const float* beta, float eps, float* y, int64_t ldy) {
  check(api_.layernorm(handle_, x, ldx, residual, sum_out, rows, dim, gamma, beta, eps, y, ldy), "layernorm");
}

void CudaBackend::embed(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                        int64_t dim, float* out) {
  check(api_.embed(handle_, ids, positions, n, wte, wpe, dim, out), "embed");
}

void CudaBackend::kv_append(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
                            const AttentionShape& shape, float* k_pool, float* v_pool) {
  const gpt2_cuda_attention_shape s = to_abi(shape);
  check(api_.kv_append(handle_, k, ldk, v, ldv, slots, n, &s, k_pool, v_pool), "kv_append");
}

void CudaBackend::attention(const float* q, int64_t ldq, const AttentionBatch& batch, const AttentionShape& shape,
                            const float* k_pool, const float* v_pool, float* out, int64_t ldo) {
  const gpt2_cuda_attention_batch b{batch.n_seqs, batch.max_q_len,  batch.max_kv_len,        batch.q_start,
                                    batch.q_len,  batch.kv_len,     batch.block_table_start, batch.block_tables};
  const gpt2_cuda_attention_shape s = to_abi(shape);
  check(api_.attention(handle_, q, ldq, &b, &s, k_pool, v_pool, out, ldo), "attention");
}

void CudaBackend::gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) {
  check(api_.gather_rows(handle_, x, ldx, rows, n, dim, out), "gather_rows");
}

namespace {

// GPT2_CUDA_GRAPHS: "0" turns graphs off, "trace" also logs each recording and replay to
// stderr (for tests). Read on every step, so a test can compare both paths in one process.
const char* graphs_env() {
  const char* env = std::getenv("GPT2_CUDA_GRAPHS");
  return env ? env : "";
}

}  // namespace

bool CudaBackend::graphs_enabled() const {
  if (!api_.graph_begin || !api_.graph_end || !api_.graph_launch || !api_.graph_forget) return false;
  return std::strcmp(graphs_env(), "0") != 0;
}

bool CudaBackend::graph_launch(const void* owner, int64_t key) {
  int32_t launched = 0;
  check(api_.graph_launch(handle_, reinterpret_cast<uintptr_t>(owner), key, &launched), "graph_launch");
  if (launched && std::strcmp(graphs_env(), "trace") == 0) std::fprintf(stderr, "gpt2 cuda graph replay %lld\n", (long long)key);
  return launched != 0;
}

void CudaBackend::graph_begin(const void* owner, int64_t key) {
  check(api_.graph_begin(handle_, reinterpret_cast<uintptr_t>(owner), key), "graph_begin");
  if (std::strcmp(graphs_env(), "trace") == 0) std::fprintf(stderr, "gpt2 cuda graph record %lld\n", (long long)key);
}

void CudaBackend::graph_end(const void* owner, int64_t key, bool keep) {
  check(api_.graph_end(handle_, reinterpret_cast<uintptr_t>(owner), key, keep ? 1 : 0), "graph_end");
}

void CudaBackend::graph_forget(const void* owner) {
  if (api_.graph_forget) api_.graph_forget(handle_, reinterpret_cast<uintptr_t>(owner));  // from destructors
}

}  // namespace gpt2
