// Causal attention over the paged KV cache (layout in native/core/backend.h), never
// materialising the score matrix: keys are visited in tiles of 32 and each query row keeps a
// running max, denominator and weighted sum of values (the online softmax of FlashAttention).
//
//   flash_prefill        ragged batches (any q_len): one block per (8 query rows, head,
//                        sequence), one warp per row; each 32-key tile of K and V is staged in
//                        shared memory once for the block's 8 rows.
//   flash_decode_split   decode-only batches (q_len == 1): flash-decoding. Each sequence's keys
//                        are split into chunks of split_keys, one block per (chunk, head,
//                        sequence) with 4 warps taking alternate tiles, so a single long
//                        sequence still fills the GPU; flash_decode_combine merges the chunks'
//                        partial softmaxes. Keys and values are read straight from the cache.
// Within a tile, lane j scores key j (a full dot product), the warp agrees on the tile's max
// with shuffles, and lane l accumulates output dimensions l, l + 32, ... HD = 64 is compiled
// with the head size fixed; HD = 0 is the generic path (head_dim <= 256).
#include <cmath>
#include <vector>

#include "device_util.h"
#include "kernels.h"

namespace gpt2_cuda {

namespace {

// Address of (block, head, offset) in a pool laid out [block][head][block_size][head_dim].
__host__ __device__ inline int64_t pool_row(int32_t block, int32_t head, int32_t offset,
                                            const gpt2_cuda_attention_shape& s) {
  return ((int64_t(block) * s.n_head + head) * s.block_size + offset) * s.head_dim;
}

}  // namespace

void attention_reference(const float* q, int64_t ldq, const gpt2_cuda_attention_batch& b,
                         const gpt2_cuda_attention_shape& s, const float* k_pool, const float* v_pool, float* out,
                         int64_t ldo) {
  std::vector<double> scores;
  for (int32_t seq = 0; seq < b.n_seqs; seq++) {
    const int32_t* blocks = b.block_tables + b.block_table_start[seq];
    const int32_t past = b.kv_len[seq] - b.q_len[seq];
    for (int32_t i = 0; i < b.q_len[seq]; i++) {
      const int64_t row = b.q_start[seq] + i;
      const int32_t n_keys = past + i + 1;
      for (int32_t h = 0; h < s.n_head; h++) {
        const float* qh = q + row * ldq + int64_t(h) * s.head_dim;
        scores.assign(n_keys, 0.0);
        double mx = -INFINITY, total = 0;
        for (int32_t j = 0; j < n_keys; j++) {
          const float* k = k_pool + pool_row(blocks[j / s.block_size], h, j % s.block_size, s);
          double dot = 0;
          for (int32_t d = 0; d < s.head_dim; d++) dot += double(qh[d]) * double(k[d]);
          scores[j] = dot * double(s.scale);
          mx = std::max(mx, scores[j]);
        }
        for (double& x : scores) total += (x = std::exp(x - mx));
        for (int32_t d = 0; d < s.head_dim; d++) {
          double acc = 0;
          for (int32_t j = 0; j < n_keys; j++)
            acc += scores[j] * double(v_pool[pool_row(blocks[j / s.block_size], h, j % s.block_size, s) + d]);
          out[row * ldo + int64_t(h) * s.head_dim + d] = float(acc / total);
        }
      }
    }
  }
}

namespace {

constexpr int kTile = 32;          // keys per tile (one per lane)
constexpr int kPrefillWarps = 8;   // query rows per prefill block
constexpr int kDecodeWarps = 4;
constexpr int kMaxHeadDim = 256;

template <int HD>
struct Dims {
  static constexpr int kChunks = HD > 0 ? (HD + 31) / 32 : kMaxHeadDim / 32;  // output dims per lane
};


// One warp's running softmax state for one query row.
template <int HD>
struct RowState {
  float m = -INFINITY, l = 0;
  float acc[Dims<HD>::kChunks] = {};
};

// Folds one tile into `st`: `score` is this lane's key score (-inf past `valid`), v_at(j, d)
// reads value row j of the tile. Warp-uniform: every lane calls it with the same valid.
template <int HD, typename ValueAt>
__device__ __forceinline__ void fold_tile(RowState<HD>& st, float score, int valid, int hd, ValueAt v_at) {
  const int lane = threadIdx.x % 32;
  const float m_new = fmaxf(st.m, warp_max(score));
  const float p = lane < valid ? __expf(score - m_new) : 0.0f;
  const float correction = __expf(st.m - m_new);  // 0 on the first tile (m = -inf)
  st.l = st.l * correction + warp_sum(p);
#pragma unroll
  for (int c = 0; c < Dims<HD>::kChunks; c++) st.acc[c] *= correction;
  for (int j = 0; j < valid; j++) {
    const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
    for (int c = 0; c < Dims<HD>::kChunks; c++) {
      const int d = lane + 32 * c;
      if (d < hd) st.acc[c] += pj * v_at(j, d);
    }
  }
  st.m = m_new;
}

template <int HD>
__global__ void __launch_bounds__(32 * kPrefillWarps)
    flash_prefill(const float* __restrict__ q, int64_t ldq, gpt2_cuda_attention_batch b, gpt2_cuda_attention_shape s,
                  const float* __restrict__ k_pool, const float* __restrict__ v_pool, float* out, int64_t ldo) {
  extern __shared__ float smem[];
  const int hd = HD > 0 ? HD : s.head_dim;
  const int ld = hd + 1;  // padded rows: lane j reading key j's row hits distinct banks
  float* Qs = smem;                          // [kPrefillWarps][hd]
  float* Ks = Qs + kPrefillWarps * hd;       // [kTile][ld]
  float* Vs = Ks + kTile * ld;               // [kTile][ld]

  const int seq = blockIdx.z, head = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t q_len = b.q_len[seq];
  const int32_t r0 = int32_t(blockIdx.x) * kPrefillWarps;
  if (r0 >= q_len) return;  // whole block
  const int32_t past = b.kv_len[seq] - q_len;
  const int32_t row = r0 + warp;
  const bool active = row < q_len;
  const int32_t n_keys = past + row + 1;  // this warp's causal limit
  const int32_t block_keys = past + min(r0 + kPrefillWarps, q_len);
  const int32_t* blocks = b.block_tables + b.block_table_start[seq];
  const int64_t q_row = int64_t(b.q_start[seq]) + row;

  if (active)
    for (int d = lane; d < hd; d += 32) Qs[warp * hd + d] = q[q_row * ldq + int64_t(head) * hd + d];

  RowState<HD> st;
  for (int32_t t0 = 0; t0 < block_keys; t0 += kTile) {
    __syncthreads();  // the previous tile has been consumed (and Qs written, the first time)
    for (int i = threadIdx.x; i < kTile * hd; i += blockDim.x) {
      const int j = i / hd, d = i % hd;
      const int32_t pos = t0 + j;
      if (pos < block_keys) {
        const int64_t at = pool_row(blocks[pos / s.block_size], head, pos % s.block_size, s) + d;
        Ks[j * ld + d] = k_pool[at];
        Vs[j * ld + d] = v_pool[at];
      }
    }
    __syncthreads();
    const int valid = active ? max(0, min(kTile, n_keys - t0)) : 0;
    if (valid == 0) continue;  // warp-uniform
    float score = -INFINITY;
    if (lane < valid) {
      float dot = 0;
      for (int d = 0; d < hd; d++) dot += Qs[warp * hd + d] * Ks[lane * ld + d];
      score = dot * s.scale;
    }
    fold_tile<HD>(st, score, valid, hd, [&](int j, int d) { return Vs[j * ld + d]; });
  }
  if (!active) return;
  const float inv = 1.0f / st.l;
#pragma unroll
  for (int c = 0; c < Dims<HD>::kChunks; c++) {
    const int d = lane + 32 * c;
    if (d < hd) out[q_row * ldo + int64_t(head) * hd + d] = st.acc[c] * inv;
  }
}

// Partial results of one (sequence, head, split): m, l, then hd sums (stride hd + 2 floats).
template <int HD>
__global__ void __launch_bounds__(32 * kDecodeWarps)
    flash_decode_split(const float* __restrict__ q, int64_t ldq, gpt2_cuda_attention_batch b,
                       gpt2_cuda_attention_shape s, const float* __restrict__ k_pool,
                       const float* __restrict__ v_pool, int32_t split_keys, float* partials, float* out,
                       int64_t ldo) {
  extern __shared__ float smem[];
  const int hd = HD > 0 ? HD : s.head_dim;
  float* Qs = smem;                // [hd]
  float* Ws = Qs + hd;             // [kDecodeWarps][hd + 2]: each warp's m, l, sums
  const int split = blockIdx.x, head = blockIdx.y, seq = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t n_keys = b.kv_len[seq];
  const int32_t begin = split * split_keys, end = min(n_keys, begin + split_keys);
  const int32_t* blocks = b.block_tables + b.block_table_start[seq];
  const int64_t q_row = b.q_start[seq];
  for (int d = threadIdx.x; d < hd; d += blockDim.x) Qs[d] = q[q_row * ldq + int64_t(head) * hd + d];
  __syncthreads();

  RowState<HD> st;
  for (int32_t t0 = begin + warp * kTile; t0 < end; t0 += kDecodeWarps * kTile) {
    const int valid = min(kTile, end - t0);
    float score = -INFINITY;
    if (lane < valid) {
      const int32_t pos = t0 + lane;
      const float* k = k_pool + pool_row(blocks[pos / s.block_size], head, pos % s.block_size, s);
      float dot = 0;
      for (int d = 0; d < hd; d++) dot += Qs[d] * k[d];
      score = dot * s.scale;
    }
    fold_tile<HD>(st, score, valid, hd, [&](int j, int d) {
      const int32_t pos = t0 + j;
      return v_pool[pool_row(blocks[pos / s.block_size], head, pos % s.block_size, s) + d];
    });
  }
  // Merge the warps' states.
  float* mine = Ws + warp * (hd + 2);
  if (lane == 0) mine[0] = st.m, mine[1] = st.l;
#pragma unroll
  for (int c = 0; c < Dims<HD>::kChunks; c++)
    if (lane + 32 * c < hd) mine[2 + lane + 32 * c] = st.acc[c];
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < kDecodeWarps; w++) m = fmaxf(m, Ws[w * (hd + 2)]);
  const bool direct = gridDim.x == 1;  // one split: this block has the final answer
  float* dst = partials + ((int64_t(seq) * s.n_head + head) * gridDim.x + split) * (hd + 2);
  float l = 0;
  for (int w = 0; w < kDecodeWarps; w++) {
    const float mw = Ws[w * (hd + 2)];
    if (mw != -INFINITY) l += Ws[w * (hd + 2) + 1] * __expf(mw - m);
  }
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float sum = 0;
    for (int w = 0; w < kDecodeWarps; w++) {
      const float mw = Ws[w * (hd + 2)];
      if (mw != -INFINITY) sum += Ws[w * (hd + 2) + 2 + d] * __expf(mw - m);
    }
    if (direct)
      out[q_row * ldo + int64_t(head) * hd + d] = sum / l;
    else
      dst[2 + d] = sum;
  }
  if (!direct && threadIdx.x == 0) dst[0] = m, dst[1] = l;
}

// out = sum_split e^(m_split - M) sums_split / sum_split e^(m_split - M) l_split.
__global__ void flash_decode_combine(gpt2_cuda_attention_batch b, gpt2_cuda_attention_shape s, int32_t n_splits,
                                     const float* __restrict__ partials, float* out, int64_t ldo) {
  const int head = blockIdx.x, seq = blockIdx.y;
  const int hd = s.head_dim;
  const float* p = partials + (int64_t(seq) * s.n_head + head) * n_splits * (hd + 2);
  float m = -INFINITY, l = 0;
  for (int i = 0; i < n_splits; i++) m = fmaxf(m, p[i * (hd + 2)]);
  for (int i = 0; i < n_splits; i++)
    if (p[i * (hd + 2)] != -INFINITY) l += p[i * (hd + 2) + 1] * __expf(p[i * (hd + 2)] - m);
  const int64_t q_row = b.q_start[seq];
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float sum = 0;
    for (int i = 0; i < n_splits; i++)
      if (p[i * (hd + 2)] != -INFINITY) sum += p[i * (hd + 2) + 2 + d] * __expf(p[i * (hd + 2)] - m);
    out[q_row * ldo + int64_t(head) * hd + d] = sum / l;
  }
}

int32_t n_splits_for(const gpt2_cuda_attention_batch& b, int32_t split_keys) {
  return (b.max_kv_len + split_keys - 1) / split_keys;
}

// Dynamic shared memory beyond 48 KB needs the kernel's opt-in.
template <typename Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

template <int HD>
cudaError_t launch(cudaStream_t stream, const float* q, int64_t ldq, const gpt2_cuda_attention_batch& b,
                   const gpt2_cuda_attention_shape& s, const float* k_pool, const float* v_pool, float* out,
                   int64_t ldo, void* workspace, int32_t split_keys) {
  const int hd = s.head_dim;
  if (b.max_q_len == 1) {
    const int32_t n_splits = n_splits_for(b, split_keys);
    const size_t smem = sizeof(float) * (hd + kDecodeWarps * (hd + 2));
    cudaError_t e = allow_smem(flash_decode_split<HD>, smem);
    if (e != cudaSuccess) return e;
    const dim3 grid(unsigned(n_splits), unsigned(s.n_head), unsigned(b.n_seqs));
    flash_decode_split<HD><<<grid, 32 * kDecodeWarps, smem, stream>>>(
        q, ldq, b, s, k_pool, v_pool, split_keys, static_cast<float*>(workspace), out, ldo);
    if (n_splits > 1) {
      e = cudaGetLastError();
      if (e != cudaSuccess) return e;
      flash_decode_combine<<<dim3(unsigned(s.n_head), unsigned(b.n_seqs)), 64, 0, stream>>>(
          b, s, n_splits, static_cast<const float*>(workspace), out, ldo);
    }
    return cudaGetLastError();
  }
  const size_t smem = sizeof(float) * (kPrefillWarps * hd + 2 * kTile * (hd + 1));
  const cudaError_t e = allow_smem(flash_prefill<HD>, smem);
  if (e != cudaSuccess) return e;
  const dim3 grid(unsigned((b.max_q_len + kPrefillWarps - 1) / kPrefillWarps), unsigned(s.n_head), unsigned(b.n_seqs));
  flash_prefill<HD><<<grid, 32 * kPrefillWarps, smem, stream>>>(q, ldq, b, s, k_pool, v_pool, out, ldo);
  return cudaGetLastError();
}

}  // namespace

size_t attention_workspace_bytes(const gpt2_cuda_attention_batch& b, const gpt2_cuda_attention_shape& s,
                                 int32_t split_keys) {
  if (split_keys <= 0) split_keys = kDefaultSplitKeys;
  if (b.max_q_len != 1 || n_splits_for(b, split_keys) <= 1) return 0;
  return sizeof(float) * size_t(b.n_seqs) * s.n_head * n_splits_for(b, split_keys) * (s.head_dim + 2);
}

cudaError_t attention(cudaStream_t stream, const float* q, int64_t ldq, const gpt2_cuda_attention_batch& b,
                      const gpt2_cuda_attention_shape& s, const float* k_pool, const float* v_pool, float* out,
                      int64_t ldo, void* workspace, int32_t split_keys) {
  if (b.n_seqs <= 0 || b.max_q_len <= 0) return cudaSuccess;
  if (s.head_dim < 1 || s.head_dim > kMaxHeadDim || s.block_size < 1 || b.n_seqs > 65535 || s.n_head > 65535)
    return cudaErrorInvalidValue;
  if (split_keys <= 0) split_keys = kDefaultSplitKeys;
  if (split_keys % kTile != 0) return cudaErrorInvalidValue;
  if (s.head_dim == 64) return launch<64>(stream, q, ldq, b, s, k_pool, v_pool, out, ldo, workspace, split_keys);
  return launch<0>(stream, q, ldq, b, s, k_pool, v_pool, out, ldo, workspace, split_keys);
}

}  // namespace gpt2_cuda
