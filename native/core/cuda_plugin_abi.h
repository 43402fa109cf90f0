/* The C ABI between the addon (native/core/cuda_loader.cc) and the optional CUDA plugin
 * libgpt2_cuda.so (cuda/). Plain C so that neither side depends on the other's C++ runtime
 * details: no C++ types and no exceptions cross it.
 *
 * Rules that keep old addons and new plugins (and the reverse) safe:
 * - gpt2_cuda_abi_version() returns (major << 16) | minor. The loader refuses a plugin whose
 *   major differs from GPT2_CUDA_ABI_MAJOR, or whose minor is below what it needs.
 * - New entry points (issue 6's Backend: alloc/copy, matmul, attention, ...) are added as new
 *   exported functions and bump the minor; the loader resolves them with dlsym and treats a
 *   missing one as "plugin too old". Changing or removing one bumps the major.
 * - Structs that the plugin fills start with `size` (set by the caller to sizeof its struct);
 *   the plugin writes only the fields that fit, so fields can be appended.
 * - Every entry point returns a gpt2_cuda_status. On failure, gpt2_cuda_last_error() returns a
 *   message for the calling thread (e.g. "cudaGetDeviceCount: CUDA driver version is
 *   insufficient for CUDA runtime version (cudaErrorInsufficientDriver)"), valid until the next
 *   call from that thread. Entry points never throw, exit or abort.
 */
#ifndef GPT2_CUDA_PLUGIN_ABI_H_
#define GPT2_CUDA_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2_CUDA_ABI_MAJOR 1
#define GPT2_CUDA_ABI_MINOR 1  /* 1: the Backend entry points and gpt2_cuda_sample */
#define GPT2_CUDA_ABI_VERSION ((GPT2_CUDA_ABI_MAJOR << 16) | GPT2_CUDA_ABI_MINOR)

/* Name of the plugin library file, as searched by the loader. */
#define GPT2_CUDA_PLUGIN_FILE "libgpt2_cuda.so"

#if defined(GPT2_CUDA_BUILDING_PLUGIN)
#define GPT2_CUDA_API __attribute__((visibility("default")))
#else
#define GPT2_CUDA_API
#endif

typedef enum gpt2_cuda_status {
  GPT2_CUDA_OK = 0,
  GPT2_CUDA_ERROR_CUDA = 1,            /* a CUDA runtime call failed (message has its name) */
  GPT2_CUDA_ERROR_INVALID_ARGUMENT = 2, /* bad pointer, index or size from the caller */
  GPT2_CUDA_ERROR_OUT_OF_MEMORY = 3,   /* host or device allocation failed */
  GPT2_CUDA_ERROR_NOT_INITIALIZED = 4, /* gpt2_cuda_init() was not called or failed */
  GPT2_CUDA_ERROR_CHECK_FAILED = 5,    /* a self-test computed a wrong result */
  GPT2_CUDA_ERROR_INTERNAL = 6         /* unexpected failure inside the plugin */
} gpt2_cuda_status;

typedef struct gpt2_cuda_device_info {
  uint32_t size;                 /* in: sizeof(gpt2_cuda_device_info) of the caller */
  int32_t index;                 /* CUDA device ordinal */
  char name[256];                /* NUL-terminated */
  int32_t compute_major;         /* compute capability, e.g. 9 and 0 for sm_90 */
  int32_t compute_minor;
  uint64_t total_memory;         /* bytes of device memory */
  int32_t multiprocessors;       /* SM count */
  int32_t max_shared_memory_per_block_optin; /* bytes, with cudaFuncSetAttribute opt-in */
  int32_t l2_cache_bytes;
  int32_t memory_bus_width_bits;
  int32_t pci_bus_id;
  int32_t pci_device_id;
} gpt2_cuda_device_info;

/* Version and error reporting: callable at any time, before or without init. */
GPT2_CUDA_API uint32_t gpt2_cuda_abi_version(void);
GPT2_CUDA_API const char* gpt2_cuda_last_error(void);
/* CUDA runtime version this plugin was built with and the installed driver's version, in
 * CUDA's encoding (1000 * major + 10 * minor; driver 0 means no driver is installed). */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_runtime_version(int32_t* version);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_driver_version(int32_t* version);

/* Initialises the CUDA runtime (idempotent, thread-safe). Fails with the reason when no driver
 * or device is usable. */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_init(void);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_device_count(int32_t* count);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_device_info_get(int32_t device, gpt2_cuda_device_info* info);

/* Runs a small kernel on `device` (a host -> device -> kernel -> host round trip with a block
 * reduction) and checks the result against the same computation on the host. */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_self_test(int32_t device);

/* ---- Backend (ABI 1.1): native/core/backend.h's calls, one entry point each ----
 * A backend owns one device, one stream and a caching allocator. All pointers to data are
 * device memory from gpt2_cuda_alloc except where a comment says host. Ops are enqueued
 * in call order; gpt2_cuda_download returns when the data is on the host, so its status also
 * reports an earlier kernel's fault. Out-of-memory is GPT2_CUDA_ERROR_OUT_OF_MEMORY. */
typedef struct gpt2_cuda_backend gpt2_cuda_backend;
typedef struct gpt2_cuda_weight gpt2_cuda_weight;

/* gpt2::AttentionBatch: int32 arrays in device memory. */
typedef struct gpt2_cuda_attention_batch {
  int32_t n_seqs;
  int32_t max_q_len;
  int32_t max_kv_len;
  const int32_t* q_start;
  const int32_t* q_len;
  const int32_t* kv_len;
  const int32_t* block_table_start;
  const int32_t* block_tables;
} gpt2_cuda_attention_batch;

/* gpt2::AttentionShape */
typedef struct gpt2_cuda_attention_shape {
  int32_t n_head;
  int32_t head_dim;
  int32_t block_size;
  float scale;
} gpt2_cuda_attention_shape;

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_backend_create(int32_t device, gpt2_cuda_backend** out);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_backend_destroy(gpt2_cuda_backend* b);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_alloc(gpt2_cuda_backend* b, size_t bytes, void** out);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_free(gpt2_cuda_backend* b, void* ptr);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_upload(gpt2_cuda_backend* b, void* dst, const void* host_src, size_t bytes);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_download(gpt2_cuda_backend* b, void* host_dst, const void* src, size_t bytes);
/* src_blocks / dst_blocks: host arrays of n_blocks block ids. */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_copy_kv_blocks(gpt2_cuda_backend* b, float* k_pool, float* v_pool,
                                                        int64_t pool_stride_floats, int32_t n_layers,
                                                        int64_t block_floats, const int32_t* src_blocks,
                                                        const int32_t* dst_blocks, int32_t n_blocks);
/* w: host memory, logical [K, N] (row-major [K, N], or [N, K] with transposed != 0);
 * format: 0 = fp32, 1 = bf16 (tensor cores). */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_pack_weight(gpt2_cuda_backend* b, const float* w, int64_t K, int64_t N,
                                                     int32_t transposed, int32_t format, gpt2_cuda_weight** out);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_free_weight(gpt2_cuda_backend* b, gpt2_cuda_weight* w);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_weight_bytes(const gpt2_cuda_weight* w, uint64_t* out);
/* activation: gpt2::ActivationKind's values. */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_matmul(gpt2_cuda_backend* b, const float* A, int64_t M, int64_t lda,
                                                const gpt2_cuda_weight* W, float* C, int64_t ldc, const float* bias,
                                                int32_t activation, const float* residual, int64_t ldr);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_layernorm(gpt2_cuda_backend* b, const float* x, int64_t ldx,
                                                   const float* residual, float* sum_out, int64_t rows, int64_t dim,
                                                   const float* gamma, const float* beta, float eps, float* y,
                                                   int64_t ldy);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_embed(gpt2_cuda_backend* b, const int32_t* ids, const int32_t* positions,
                                               int64_t n, const float* wte, const float* wpe, int64_t dim, float* out);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_kv_append(gpt2_cuda_backend* b, const float* k, int64_t ldk, const float* v,
                                                   int64_t ldv, const int32_t* slots, int64_t n,
                                                   const gpt2_cuda_attention_shape* shape, float* k_pool,
                                                   float* v_pool);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_attention(gpt2_cuda_backend* b, const float* q, int64_t ldq,
                                                   const gpt2_cuda_attention_batch* batch,
                                                   const gpt2_cuda_attention_shape* shape, const float* k_pool,
                                                   const float* v_pool, float* out, int64_t ldo);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_gather_rows(gpt2_cuda_backend* b, const float* x, int64_t ldx,
                                                     const int32_t* rows, int64_t n, int64_t dim, float* out);

/* ---- Device-side sampling (ABI 1.1) ----
 * temperature <= 0: greedy (argmax, lowest id on ties). Otherwise softmax(logits / temperature)
 * limited to the top_k largest (top_k <= 0: all; ties at the k-th value kept), then to the
 * smallest set of largest probabilities whose mass reaches top_p (>= 1: all; ties kept), and one
 * draw whose uniform number is a pure function of seed. */
typedef struct gpt2_cuda_sampling_params {
  float temperature;
  int32_t top_k;
  float top_p;
  uint32_t reserved; /* 0 */
  uint64_t seed;
} gpt2_cuda_sampling_params;

/* logits: device memory, rows x vocab with row stride ld; params and out_ids: host arrays of
 * `rows` entries. Returns when out_ids is filled. */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_sample(gpt2_cuda_backend* b, const float* logits, int64_t rows, int64_t vocab,
                                                int64_t ld, const gpt2_cuda_sampling_params* params,
                                                int32_t* out_ids);

/* ---- Graphs (optional: resolved when present, so the minor stays 1; without them no graphs) ----
 * gpt2::Backend's graph_* calls. A graph is recorded by stream capture (relaxed mode) of the
 * backend's stream between graph_begin and graph_end, keyed by (owner, key). graph_end with
 * keep != 0 instantiates it and launches it once; with keep == 0 discards it. graph_launch
 * sets *launched to 1 after replaying the graph, 0 when there is none. graph_forget drops
 * every graph of owner. Growing the attention workspace drops all graphs (they point at it). */
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_begin(gpt2_cuda_backend* b, uint64_t owner, int64_t key);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_end(gpt2_cuda_backend* b, uint64_t owner, int64_t key, int32_t keep);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_launch(gpt2_cuda_backend* b, uint64_t owner, int64_t key,
                                                      int32_t* launched);
GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_graph_forget(gpt2_cuda_backend* b, uint64_t owner);

#ifdef __cplusplus
}
#endif

#endif /* GPT2_CUDA_PLUGIN_ABI_H_ */
