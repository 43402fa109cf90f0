// The Backend entry points of the C ABI (native/core/cuda_plugin_abi.h, gpt2_cuda_backend_*):
// a backend is one device, one stream and a caching allocator; every op is a kernel launcher
// from kernels.h enqueued on that stream. The addon's CudaBackend (native/core/cuda_backend.cc)
// forwards gpt2::Backend's calls here.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"
#include "plugin_internal.h"

namespace gpt2_cuda {
namespace {

// Device memory is recycled instead of returned: cudaMalloc/cudaFree synchronise the device
// and cost far more than a kernel, and the model reallocates scratch buffers as batches grow.
// Blocks are rounded (512 B small, 2 MiB large) and reused when a cached one is at most 25%
// larger. Everything goes back to the driver when the backend is destroyed, and the cache is
// emptied once before an allocation is reported as out of memory.
class CachingAllocator {
 public:
  ~CachingAllocator() {
    for (auto& [p, size] : live_) cudaFree(p);
    release_cached();
  }

  cudaError_t allocate(size_t bytes, void** out) {
    const size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cached_.lower_bound(size);
    if (it != cached_.end() && it->first <= size + size / 4) {
      *out = it->second;
      live_[it->second] = it->first;
      cached_.erase(it);
      return cudaSuccess;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation && !cached_.empty()) {
      cudaGetLastError();
      release_cached();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) return e;
    live_[p] = size;
    *out = p;
    return cudaSuccess;
  }

  bool release(void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    cached_.emplace(it->second, p);
    live_.erase(it);
    return true;
  }

 private:
  static size_t rounded(size_t bytes) {
    constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
    if (bytes == 0) bytes = 1;
    return bytes <= kLarge ? (bytes + kSmall - 1) / kSmall * kSmall : (bytes + kLarge - 1) / kLarge * kLarge;
  }
  void release_cached() {
    for (auto& [size, p] : cached_) cudaFree(p);
    cached_.clear();
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;
  std::multimap<size_t, void*> cached_;
};

}  // namespace
}  // namespace gpt2_cuda

struct gpt2_cuda_backend {
  int32_t device = 0;
  cudaStream_t stream = nullptr;
  gpt2_cuda::CachingAllocator allocator;
  void* workspace = nullptr;  // split-KV attention partials, grown on demand
  size_t workspace_bytes = 0;
  // Instantiated graphs by (owner, key); `capturing` while one is being recorded.
  std::map<std::pair<uint64_t, int64_t>, cudaGraphExec_t> graphs;
  bool capturing = false;

  ~gpt2_cuda_backend() { drop_graphs(); }
  void drop_graphs() {
    for (auto& [k, exec] : graphs) cudaGraphExecDestroy(exec);
    graphs.clear();
  }
};

struct gpt2_cuda_weight {
  gpt2_cuda::DeviceWeight w;
};

namespace gpt2_cuda {
namespace {

// Runs an entry point's body on b's device, with exceptions turned into statuses.
template <typename Body>
gpt2_cuda_status on_backend(const char* entry, gpt2_cuda_backend* b, Body&& body) {
  return guarded(entry, [&]() -> gpt2_cuda_status {
    if (!b) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, std::string(entry) + ": null backend");
    GPT2_CUDA_CHECK(cudaSetDevice(b->device));
    return body();
  });
}

gpt2_cuda_status device_alloc(gpt2_cuda_backend* b, size_t bytes, void** out, const char* what) {
  const cudaError_t e = b->allocator.allocate(bytes, out);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fail(e == cudaErrorMemoryAllocation ? GPT2_CUDA_ERROR_OUT_OF_MEMORY : GPT2_CUDA_ERROR_CUDA,
                std::string(what) + ": cudaMalloc of " + std::to_string(bytes) + " bytes failed: " +
                    cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
  }
  return GPT2_CUDA_OK;
}

}  // namespace
}  // namespace gpt2_cuda

using namespace gpt2_cuda;

extern "C" {

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_backend_create(int32_t device, gpt2_cuda_backend** out) {
  return guarded("gpt2_cuda_backend_create", [&]() -> gpt2_cuda_status {
    if (!out) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_backend_create: null pointer");
    *out = nullptr;
    gpt2_cuda_status s = check_device("gpt2_cuda_backend_create", device);
    if (s != GPT2_CUDA_OK) return s;
    GPT2_CUDA_CHECK(cudaSetDevice(device));
    cudaStream_t stream = nullptr;
    GPT2_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    auto* b = new gpt2_cuda_backend();
    b->device = device;
    b->stream = stream;
    *out = b;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_backend_destroy(gpt2_cuda_backend* b) {
  if (!b) return GPT2_CUDA_OK;
  return on_backend("gpt2_cuda_backend_destroy", b, [&]() -> gpt2_cuda_status {
    const cudaError_t e = cudaStreamSynchronize(b->stream);
    cudaStreamDestroy(b->stream);
    delete b;  // the allocator frees all device memory
    if (e != cudaSuccess) {
      cudaGetLastError();
      return fail_cuda("cudaStreamSynchronize", e);
    }
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_alloc(gpt2_cuda_backend* b, size_t bytes, void** out) {
  return on_backend("gpt2_cuda_alloc", b, [&]() -> gpt2_cuda_status {
    if (!out) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_alloc: null pointer");
    return device_alloc(b, bytes, out, "gpt2_cuda_alloc");
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_free(gpt2_cuda_backend* b, void* ptr) {
  if (!ptr) return GPT2_CUDA_OK;
  return on_backend("gpt2_cuda_free", b, [&]() -> gpt2_cuda_status {
    if (!b->allocator.release(ptr))
      return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_free: pointer not allocated by this backend");
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_upload(gpt2_cuda_backend* b, void* dst, const void* host_src, size_t bytes) {
  return on_backend("gpt2_cuda_upload", b, [&]() -> gpt2_cuda_status {
    if (bytes == 0) return GPT2_CUDA_OK;
    // From pageable memory the call returns once host_src has been staged: the caller may free it.
    GPT2_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, b->stream));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_download(gpt2_cuda_backend* b, void* host_dst, const void* src, size_t bytes) {
  return on_backend("gpt2_cuda_download", b, [&]() -> gpt2_cuda_status {
    if (bytes > 0) GPT2_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, b->stream));
    GPT2_CUDA_CHECK(cudaStreamSynchronize(b->stream));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_copy_kv_blocks(gpt2_cuda_backend* b, float* k_pool, float* v_pool,
                                                        int64_t pool_stride_floats, int32_t n_layers,
                                                        int64_t block_floats, const int32_t* src_blocks,
                                                        const int32_t* dst_blocks, int32_t n_blocks) {
  return on_backend("gpt2_cuda_copy_kv_blocks", b, [&]() -> gpt2_cuda_status {
    GPT2_CUDA_CHECK(copy_kv_blocks(b->stream, k_pool, v_pool, pool_stride_floats, n_layers, block_floats, src_blocks,
                                   dst_blocks, n_blocks));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_pack_weight(gpt2_cuda_backend* b, const float* w, int64_t K, int64_t N,
                                                     int32_t transposed, int32_t format, gpt2_cuda_weight** out) {
  return on_backend("gpt2_cuda_pack_weight", b, [&]() -> gpt2_cuda_status {
    if (!w || !out || K <= 0 || N <= 0 || (format != kWeightF32 && format != kWeightBF16 && format != kWeightF16))
      return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_pack_weight: bad arguments");
    *out = nullptr;
    // [K, ldw] row-major with zero padding (see gemm.cu), converted on the host, uploaded once.
    const int64_t ldw = (N + 7) / 8 * 8;
    const size_t elem = format == kWeightF32 ? 4 : 2;
    std::vector<char> host(size_t(K) * size_t(ldw) * elem, 0);
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = 0; n < N; n++) {
        const float v = transposed ? w[n * K + k] : w[k * N + n];
        if (format == kWeightBF16)
          reinterpret_cast<uint16_t*>(host.data())[k * ldw + n] = bf16_from_float(v);
        else if (format == kWeightF16)
          reinterpret_cast<uint16_t*>(host.data())[k * ldw + n] = f16_from_float(v);
        else
          reinterpret_cast<float*>(host.data())[k * ldw + n] = v;
      }
    void* data = nullptr;
    gpt2_cuda_status s = device_alloc(b, host.size(), &data, "gpt2_cuda_pack_weight");
    if (s != GPT2_CUDA_OK) return s;
    cudaError_t e = cudaMemcpyAsync(data, host.data(), host.size(), cudaMemcpyHostToDevice, b->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(b->stream);
    if (e != cudaSuccess) {
      b->allocator.release(data);
      cudaGetLastError();
      return fail_cuda("cudaMemcpyAsync", e);
    }
    auto* pw = new gpt2_cuda_weight();
    pw->w.K = K;
    pw->w.N = N;
    pw->w.format = format;
    pw->w.data = data;
    pw->w.bytes = host.size();
    *out = pw;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_free_weight(gpt2_cuda_backend* b, gpt2_cuda_weight* w) {
  if (!w) return GPT2_CUDA_OK;
  return on_backend("gpt2_cuda_free_weight", b, [&]() -> gpt2_cuda_status {
    b->allocator.release(w->w.data);
    delete w;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_weight_bytes(const gpt2_cuda_weight* w, uint64_t* out) {
  if (!out) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_weight_bytes: null pointer");
  *out = w ? w->w.bytes : 0;
  return GPT2_CUDA_OK;
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_matmul(gpt2_cuda_backend* b, const float* A, int64_t M, int64_t lda,
                                                const gpt2_cuda_weight* W, float* C, int64_t ldc, const float* bias,
                                                int32_t activation, const float* residual, int64_t ldr) {
  return on_backend("gpt2_cuda_matmul", b, [&]() -> gpt2_cuda_status {
    if (!W || activation < kActNone || activation > kActTanh)
      return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_matmul: bad weight or activation");
    Epilogue ep;
    ep.bias = bias;
    ep.activation = activation;
    ep.residual = residual;
    ep.ldr = ldr;
    GPT2_CUDA_CHECK(matmul(b->stream, A, M, lda, W->w, C, ldc, ep));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_layernorm(gpt2_cuda_backend* b, const float* x, int64_t ldx,
                                                   const float* residual, float* sum_out, int64_t rows, int64_t dim,
                                                   const float* gamma, const float* beta, float eps, float* y,
                                                   int64_t ldy) {
  return on_backend("gpt2_cuda_layernorm", b, [&]() -> gpt2_cuda_status {
    GPT2_CUDA_CHECK(layernorm(b->stream, x, ldx, residual, sum_out, rows, dim, gamma, beta, eps, y, ldy));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_embed(gpt2_cuda_backend* b, const int32_t* ids, const int32_t* positions,
                                               int64_t n, const float* wte, const float* wpe, int64_t dim, float* out) {
  return on_backend("gpt2_cuda_embed", b, [&]() -> gpt2_cuda_status {
    GPT2_CUDA_CHECK(embed(b->stream, ids, positions, n, wte, wpe, dim, out));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_kv_append(gpt2_cuda_backend* b, const float* k, int64_t ldk, const float* v,
                                                   int64_t ldv, const int32_t* slots, int64_t n,
                                                   const gpt2_cuda_attention_shape* shape, float* k_pool,
                                                   float* v_pool) {
  return on_backend("gpt2_cuda_kv_append", b, [&]() -> gpt2_cuda_status {
    if (!shape) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_kv_append: null shape");
    GPT2_CUDA_CHECK(kv_append(b->stream, k, ldk, v, ldv, slots, n, *shape, k_pool, v_pool));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_attention(gpt2_cuda_backend* b, const float* q, int64_t ldq,
                                                   const gpt2_cuda_attention_batch* batch,
                                                   const gpt2_cuda_attention_shape* shape, const float* k_pool,
                                                   const float* v_pool, float* out, int64_t ldo) {
  return on_backend("gpt2_cuda_attention", b, [&]() -> gpt2_cuda_status {
    if (!batch || !shape) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_attention: null batch or shape");
    const size_t need = attention_workspace_bytes(*batch, *shape, kDefaultSplitKeys);
    if (need > b->workspace_bytes) {
      // Ops run in stream order, so the old workspace may be recycled at once; graphs
      // recorded with it would then write to freed memory, so they go too.
      b->drop_graphs();
      if (b->workspace) b->allocator.release(b->workspace);
      b->workspace = nullptr;
      b->workspace_bytes = 0;
      gpt2_cuda_status s = device_alloc(b, need, &b->workspace, "gpt2_cuda_attention");
      if (s != GPT2_CUDA_OK) return s;
      b->workspace_bytes = need;
    }
    GPT2_CUDA_CHECK(attention(b->stream, q, ldq, *batch, *shape, k_pool, v_pool, out, ldo, b->workspace,
                              kDefaultSplitKeys));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_gather_rows(gpt2_cuda_backend* b, const float* x, int64_t ldx,
                                                     const int32_t* rows, int64_t n, int64_t dim, float* out) {
  return on_backend("gpt2_cuda_gather_rows", b, [&]() -> gpt2_cuda_status {
    GPT2_CUDA_CHECK(gather_rows(b->stream, x, ldx, rows, n, dim, out));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_sample(gpt2_cuda_backend* b, const float* logits, int64_t rows, int64_t vocab,
                                                int64_t ld, const gpt2_cuda_sampling_params* params,
                                                int32_t* out_ids) {
  return on_backend("gpt2_cuda_sample", b, [&]() -> gpt2_cuda_status {
    if (rows <= 0) return GPT2_CUDA_OK;
    if (!logits || !params || !out_ids || vocab <= 0 || ld < vocab)
      return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_sample: bad arguments");
    // Parameters in, ids out, through one scratch allocation.
    const size_t params_bytes = sizeof(gpt2_cuda_sampling_params) * size_t(rows);
    void* scratch = nullptr;
    gpt2_cuda_status s = device_alloc(b, params_bytes + sizeof(int32_t) * size_t(rows), &scratch, "gpt2_cuda_sample");
    if (s != GPT2_CUDA_OK) return s;
    auto* d_params = static_cast<gpt2_cuda_sampling_params*>(scratch);
    auto* d_ids = reinterpret_cast<int32_t*>(static_cast<char*>(scratch) + params_bytes);
    cudaError_t e = cudaMemcpyAsync(d_params, params, params_bytes, cudaMemcpyHostToDevice, b->stream);
    if (e == cudaSuccess) e = sample(b->stream, logits, rows, vocab, ld, d_params, d_ids);
    if (e == cudaSuccess) e = cudaMemcpyAsync(out_ids, d_ids, sizeof(int32_t) * size_t(rows), cudaMemcpyDeviceToHost, b->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(b->stream);
    b->allocator.release(scratch);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return fail_cuda("gpt2_cuda_sample", e);
    }
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_begin(gpt2_cuda_backend* b, uint64_t owner, int64_t key) {
  return on_backend("gpt2_cuda_graph_begin", b, [&]() -> gpt2_cuda_status {
    if (b->capturing) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_graph_begin: already recording");
    // Relaxed: the attention workspace may be allocated (cudaMalloc) while recording.
    GPT2_CUDA_CHECK(cudaStreamBeginCapture(b->stream, cudaStreamCaptureModeRelaxed));
    b->capturing = true;
    (void)owner, (void)key;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_end(gpt2_cuda_backend* b, uint64_t owner, int64_t key, int32_t keep) {
  return on_backend("gpt2_cuda_graph_end", b, [&]() -> gpt2_cuda_status {
    if (!b->capturing) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_graph_end: not recording");
    b->capturing = false;
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(b->stream, &graph);
    if (ended != cudaSuccess || !keep) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      if (!keep) return GPT2_CUDA_OK;
      return fail_cuda("cudaStreamEndCapture", ended);
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    GPT2_CUDA_CHECK(made);
    auto& slot = b->graphs[{owner, key}];
    if (slot) cudaGraphExecDestroy(slot);
    slot = exec;
    // Recording ran nothing: this step's ops run now.
    GPT2_CUDA_CHECK(cudaGraphLaunch(exec, b->stream));
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_launch(gpt2_cuda_backend* b, uint64_t owner, int64_t key,
                                                      int32_t* launched) {
  return on_backend("gpt2_cuda_graph_launch", b, [&]() -> gpt2_cuda_status {
    if (!launched) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_graph_launch: null pointer");
    *launched = 0;
    auto it = b->graphs.find({owner, key});
    if (it == b->graphs.end()) return GPT2_CUDA_OK;
    GPT2_CUDA_CHECK(cudaGraphLaunch(it->second, b->stream));
    *launched = 1;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_forget(gpt2_cuda_backend* b, uint64_t owner) {
  return on_backend("gpt2_cuda_graph_forget", b, [&]() -> gpt2_cuda_status {
    for (auto it = b->graphs.begin(); it != b->graphs.end();) {
      if (it->first.first == owner) {
        cudaGraphExecDestroy(it->second);
        it = b->graphs.erase(it);
      } else {
        ++it;
      }
    }
    return GPT2_CUDA_OK;
  });
}

}  // extern "C"
