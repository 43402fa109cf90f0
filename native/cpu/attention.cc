#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace gpt2::cpu {
namespace {

// Address of (block, head, offset) in a pool laid out [block][head][block_size][head_dim].
inline const float* pool_row(const float* pool, int32_t block, int32_t head, int32_t offset, const AttentionShape& s) {
  return pool + ((int64_t(block) * s.n_head + head) * s.block_size + offset) * s.head_dim;
}

}  // namespace

void attention_reference(const float* q, int64_t ldq, const AttentionBatch& b, const AttentionShape& s,
                         const float* k_pool, const float* v_pool, float* out, int64_t ldo) {
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
        double mx = -INFINITY;
        for (int32_t j = 0; j < n_keys; j++) {
          const float* k = pool_row(k_pool, blocks[j / s.block_size], h, j % s.block_size, s);
          double dot = 0;
          for (int32_t d = 0; d < s.head_dim; d++) dot += double(qh[d]) * double(k[d]);
          scores[j] = dot * double(s.scale);
          mx = std::max(mx, scores[j]);
        }
        double total = 0;
        for (auto& x : scores) total += (x = std::exp(x - mx));
        for (int32_t d = 0; d < s.head_dim; d++) {
          double acc = 0;
          for (int32_t j = 0; j < n_keys; j++)
            acc += scores[j] * double(pool_row(v_pool, blocks[j / s.block_size], h, j % s.block_size, s)[d]);
          out[row * ldo + int64_t(h) * s.head_dim + d] = static_cast<float>(acc / total);
        }
      }
    }
  }
}

void attention_row_portable(const float* q, const int32_t* blocks, int32_t n_keys, const AttentionShape& s,
                            int32_t head, const float* k_pool, const float* v_pool, float* out) {
  const int32_t hd = s.head_dim, bs = s.block_size;
  float m = -INFINITY, l = 0;
  float acc[256];  // head_dim <= 256 (checked by the model)
  float p[256];    // block_size <= 256
  for (int32_t d = 0; d < hd; d++) acc[d] = 0;
  for (int32_t start = 0; start < n_keys; start += bs) {
    const int32_t n = std::min(bs, n_keys - start);
    const float* kb = pool_row(k_pool, blocks[start / bs], head, 0, s);
    const float* vb = pool_row(v_pool, blocks[start / bs], head, 0, s);
    float bmax = -INFINITY;
    for (int32_t j = 0; j < n; j++) {
      float dot = 0;
      for (int32_t d = 0; d < hd; d++) dot += q[d] * kb[j * hd + d];
      p[j] = dot * s.scale;
      bmax = std::max(bmax, p[j]);
    }
    const float m_new = std::max(m, bmax);
    const float correction = std::exp(m - m_new);  // exp(-inf) = 0 on the first block
    l *= correction;
    for (int32_t d = 0; d < hd; d++) acc[d] *= correction;
    for (int32_t j = 0; j < n; j++) {
      const float pj = std::exp(p[j] - m_new);
      l += pj;
      for (int32_t d = 0; d < hd; d++) acc[d] += pj * vb[j * hd + d];
    }
    m = m_new;
  }
  const float inv = 1.0f / l;
  for (int32_t d = 0; d < hd; d++) out[d] = acc[d] * inv;
}

void attention(ThreadPool& pool, int max_threads, const float* q, int64_t ldq, const AttentionBatch& b,
               const AttentionShape& s, const float* k_pool, const float* v_pool, float* out, int64_t ldo) {
  const bool avx2 = cpu_features().has_avx2() && s.head_dim % 8 == 0;
  // Work items: (sequence, head, group of up to 16 query rows). Later rows see more keys,
  // and the pool hands out items dynamically, so the imbalance evens out.
  constexpr int32_t kRowsPerItem = 16;
  struct Item {
    int32_t seq, head, row_begin, row_end;
  };
  std::vector<Item> items;
  for (int32_t seq = 0; seq < b.n_seqs; seq++)
    for (int32_t r = 0; r < b.q_len[seq]; r += kRowsPerItem)
      for (int32_t h = 0; h < s.n_head; h++) items.push_back({seq, h, r, std::min(b.q_len[seq], r + kRowsPerItem)});
  auto run_item = [&](int64_t index, int) {
    const Item& it = items[index];
    const int32_t* blocks = b.block_tables + b.block_table_start[it.seq];
    const int32_t past = b.kv_len[it.seq] - b.q_len[it.seq];
    for (int32_t i = it.row_begin; i < it.row_end; i++) {
      const int64_t row = b.q_start[it.seq] + i;
      const float* qh = q + row * ldq + int64_t(it.head) * s.head_dim;
      float* oh = out + row * ldo + int64_t(it.head) * s.head_dim;
      if (avx2)
        attention_row_avx2(qh, blocks, past + i + 1, s, it.head, k_pool, v_pool, oh);
      else
        attention_row_portable(qh, blocks, past + i + 1, s, it.head, k_pool, v_pool, oh);
    }
  };
  // Multiply-adds in the whole call; a small one (a decode step over a short cache) costs
  // less than waking the pool, so it runs on the calling thread.
  int64_t work = 0;
  for (int32_t seq = 0; seq < b.n_seqs; seq++) {
    const int64_t past = b.kv_len[seq] - b.q_len[seq], n = b.q_len[seq];
    work += (n * past + n * (n + 1) / 2) * s.n_head * s.head_dim * 2;
  }
  if (work < (int64_t(1) << 18)) {
    for (int64_t i = 0; i < static_cast<int64_t>(items.size()); i++) run_item(i, 0);
    return;
  }
  pool.run(static_cast<int64_t>(items.size()), run_item, max_threads);
}

void kv_append(const float* k, int64_t ldk, const float* v, int64_t ldv, const int32_t* slots, int64_t n,
               const AttentionShape& s, float* k_pool, float* v_pool) {
  const size_t bytes = sizeof(float) * s.head_dim;
  for (int64_t t = 0; t < n; t++) {
    const int32_t block = slots[t] / s.block_size, offset = slots[t] % s.block_size;
    for (int32_t h = 0; h < s.n_head; h++) {
      std::memcpy(const_cast<float*>(pool_row(k_pool, block, h, offset, s)), k + t * ldk + int64_t(h) * s.head_dim, bytes);
      std::memcpy(const_cast<float*>(pool_row(v_pool, block, h, offset, s)), v + t * ldv + int64_t(h) * s.head_dim, bytes);
    }
  }
}

}  // namespace gpt2::cpu
