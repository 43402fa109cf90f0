// The Backend interface: everything the GPT-2 forward pass (native/model/gpt2_model.cc)
// asks of a device. The model is written once against it; the CPU backend
// (native/cpu/cpu_backend.h) implements it in the addon, and the CUDA plugin implements
// the same calls behind its C ABI. So the interface stays plain: raw pointers to backend
// memory, sizes, enums, and small POD structs; no STL types cross it.
//
// Memory: every `float*`/`int32_t*` argument of an op points into memory from alloc()
// (device memory for CUDA, host memory for the CPU). Host data gets there with upload()
// and comes back with download(). Ops run in call order; download() returns when the
// data is on the host (so it is the synchronisation point).
//
// Layouts (row-major, row strides given explicitly where rows are sub-blocks):
//   activations  [rows, width] with a row stride ld >= width
//   KV cache     one K pool and one V pool per layer, each [num_blocks][n_head][block_size][head_dim]:
//                a block holds block_size consecutive positions of one sequence, so the
//                keys one head reads within a block are contiguous (block_size*head_dim floats).
//   slots        a token's cache slot = block_id * block_size + offset within the block (vLLM's
//                slot mapping), computed by the host from the sequence's block table.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/error.h"

namespace gpt2 {

// Same values as gpt2::cpu::Activation (native/cpu/activation.h).
enum class ActivationKind : int32_t { None = 0, GeluNew, Gelu, Relu, Silu, Tanh };

// F16 only where the backend supports it (CUDA; the CPU backend is given F32 or BF16).
enum class WeightFormat : int32_t { F32 = 0, BF16 = 1, F16 = 2 };

// A weight matrix prepared once for this backend's GEMM (repacked, converted, uploaded).
struct BackendWeight;

// One forward step's batch, as the attention kernel sees it: n_seqs sequences packed
// back to back ("ragged": no padding). Sequence s owns query rows
// [q_start[s], q_start[s] + q_len[s]) of the packed activations; these are its newest
// tokens, at positions kv_len[s] - q_len[s] ... kv_len[s] - 1, and their keys/values are
// already in the cache (kv_append runs first). Query i of sequence s attends to the
// cache positions 0 ... kv_len[s] - q_len[s] + i (causal). The sequence's blocks are
// block_tables[block_table_start[s] + j] for position j / block_size.
// All arrays are int32 in backend memory, n_seqs entries each (block_tables: total).
struct AttentionBatch {
  int32_t n_seqs = 0;
  int32_t max_q_len = 0;   // max over q_len (kernels size their tiles with it)
  int32_t max_kv_len = 0;  // max over kv_len
  const int32_t* q_start = nullptr;
  const int32_t* q_len = nullptr;
  const int32_t* kv_len = nullptr;
  const int32_t* block_table_start = nullptr;
  const int32_t* block_tables = nullptr;
};

struct AttentionShape {
  int32_t n_head = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  float scale = 1.0f;  // multiplies q·k: 1/sqrt(head_dim) [/ (layer_idx + 1)], as the config says
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu", "cuda:0", ...
  virtual const char* name() const = 0;

  // ---- memory ----
  // Zero-initialised is not promised. Throws gpt2::Error (out of memory) on failure.
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* ptr) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // Copies n_blocks KV blocks (every layer's K and V) from src_blocks[i] to dst_blocks[i]
  // (host arrays): the copy-on-write step of a forked sequence's partial last block.
  virtual void copy_kv_blocks(float* k_pool, float* v_pool, int64_t pool_stride_floats, int32_t n_layers,
                              int64_t block_floats, const int32_t* src_blocks, const int32_t* dst_blocks,
                              int32_t n_blocks) = 0;

  // ---- weights ----
  // w is the logical [K, N] matrix in host memory: row-major [K, N] (Conv1D, y = x·w) or,
  // with transposed, row-major [N, K] (Linear/embedding layout, y = x·wᵀ: the tied lm_head).
  // The data is copied; w may be freed on return.
  virtual BackendWeight* pack_weight(const float* w, int64_t K, int64_t N, bool transposed, WeightFormat format) = 0;
  virtual void free_weight(BackendWeight* w) = 0;
  virtual size_t weight_bytes(const BackendWeight* w) const = 0;

  // ---- tied embeddings (optional) ----
  // wte [V, E] packed once so that it serves both as the tied lm_head (matmul treats it as
  // pack_weight(wte, E, V, transposed, format)) and as the table embed_packed gathers rows
  // from: one copy of wte instead of two. nullptr: not supported; the model then keeps wte
  // for embed() and packs the lm_head separately.
  virtual BackendWeight* pack_embedding(const float* /*wte*/, int64_t /*V*/, int64_t /*E*/, WeightFormat /*format*/) {
    return nullptr;
  }
  // embed() with wte from a pack_embedding weight; the same values embed() gives from the fp32 wte.
  virtual void embed_packed(const int32_t* /*ids*/, const int32_t* /*positions*/, int64_t /*n*/,
                            const BackendWeight* /*wte*/, const float* /*wpe*/, int64_t /*dim*/, float* /*out*/) {
    throw Error(ErrorKind::Error, code::kInternal, "embed_packed: this backend has no pack_embedding");
  }

  // ---- ops ----
  // C[M, N] (stride ldc) = act(A[M, K] (stride lda) · W + bias) + residual (stride ldr).
  // bias and residual may be null; residual may alias C (x += ...).
  virtual void matmul(const float* A, int64_t M, int64_t lda, const BackendWeight* W, float* C, int64_t ldc,
                      const float* bias, ActivationKind act, const float* residual, int64_t ldr) = 0;

  // y = LayerNorm(x + residual) * gamma + beta over rows of `dim` (biased variance, eps
  // inside the square root). With residual non-null, the sum x + residual is also written
  // to sum_out (may alias x): the fused "add then normalise" of a pre-LN block.
  virtual void layernorm(const float* x, int64_t ldx, const float* residual, float* sum_out, int64_t rows,
                         int64_t dim, const float* gamma, const float* beta, float eps, float* y, int64_t ldy) = 0;

  // out[i, :] = wte[ids[i], :] + wpe[positions[i], :] for i < n (ids/positions in backend memory,
  // already validated by the host).
  virtual void embed(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out) = 0;

  // Writes n tokens' keys and values (rows of k / v, strides ldk / ldv, width n_head*head_dim)
  // into this layer's pools at slots[i].
  virtual void kv_append(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
                         const AttentionShape& shape, float* k_pool, float* v_pool) = 0;

  // Fused causal attention over the paged cache for a ragged batch (prefill chunks and
  // decode steps alike): out[r, h*hd:(h+1)*hd] = softmax(scale · q_r,h · K_hᵀ) · V_h over the
  // keys query r may see. q rows have stride ldq, out rows ldo.
  virtual void attention(const float* q, int64_t ldq, const AttentionBatch& batch, const AttentionShape& shape,
                         const float* k_pool, const float* v_pool, float* out, int64_t ldo) = 0;

  // out[i, :] = x[rows[i], :] (row width dim, strides ldx / dim): picks the rows whose
  // logits are asked before the lm_head GEMM.
  virtual void gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out) = 0;

  // ---- graphs (optional: CUDA graphs for decode steps) ----
  // A graph is the sequence of ops between graph_begin and graph_end, recorded once and
  // replayed by graph_launch with the same pointers and sizes; only the contents of the
  // buffers change between replays (the caller uploads them before the launch). Graphs
  // are keyed by (owner, key) and dropped by graph_forget(owner). A backend without graphs
  // returns false from graphs_enabled and the caller never uses the others.
  virtual bool graphs_enabled() const { return false; }
  // Replays the graph (owner, key) and returns true, or returns false when there is none.
  virtual bool graph_launch(const void* /*owner*/, int64_t /*key*/) { return false; }
  // Ops from here to graph_end are recorded, not run.
  virtual void graph_begin(const void* /*owner*/, int64_t /*key*/) {}
  // Stops recording; with keep, stores the graph and runs it once (the recorded ops had not
  // run yet), otherwise discards it (an op failed while recording).
  virtual void graph_end(const void* /*owner*/, int64_t /*key*/, bool /*keep*/) {}
  virtual void graph_forget(const void* /*owner*/) {}
};

}  // namespace gpt2
