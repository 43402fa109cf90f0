// CPU kernels besides GEMM against their plain reference versions: layernorm (with and
// without the fused residual add), paged causal attention (ragged batches, decode steps,
// scaled and not), KV append, embedding gather (from wte, and from the tied lm_head's
// packed fp32 / bf16 panels, which must give the same bits).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "cpu/attention.h"
#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"
#include "cpu/host_memory.h"
#include "cpu/layernorm.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::cpu;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

void check_layernorm(int64_t rows, int64_t dim, bool with_residual, bool avx2) {
  const int64_t ld = dim + 3;  // a row stride wider than the row
  auto x = randn(rows * ld, 1, 2.0f, 0.5f), res = randn(rows * ld, 2), gamma = randn(dim, 3, 0.3f, 1.0f),
       beta = randn(dim, 4, 0.1f);
  std::vector<float> y_ref(rows * dim), y(rows * dim), sum_ref(rows * ld), sum = x;
  layernorm_reference(x.data(), ld, with_residual ? res.data() : nullptr, sum_ref.data(), rows, dim, gamma.data(),
                      beta.data(), 1e-5f, y_ref.data(), dim);
  for (int64_t r = 0; r < rows; r++) {
    const float* rr = with_residual ? res.data() + r * ld : nullptr;
    float* so = with_residual ? sum.data() + r * ld : nullptr;  // in place: sum_out aliases x
    if (avx2)
      layernorm_row_avx2(sum.data() + r * ld, rr, so, dim, gamma.data(), beta.data(), 1e-5f, y.data() + r * dim);
    else
      layernorm_row_portable(sum.data() + r * ld, rr, so, dim, gamma.data(), beta.data(), 1e-5f, y.data() + r * dim);
  }
  CHECK_MSG(max_abs_diff(y, y_ref) < 2e-5, "layernorm differs by " + std::to_string(max_abs_diff(y, y_ref)));
  if (with_residual)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t i = 0; i < dim; i++) CHECK(sum[r * ld + i] == sum_ref[r * ld + i]);
}

// A ragged batch in a paged cache with shuffled block ids.
struct PagedCase {
  AttentionShape shape;
  std::vector<int32_t> q_start, q_len, kv_len, bt_start, tables;
  std::vector<float> k_pool, v_pool, q, out_ref, out;
  int64_t ldq = 0, T = 0;

  PagedCase(std::vector<int32_t> q_lens, std::vector<int32_t> kv_lens, int32_t n_head, int32_t head_dim,
            int32_t block_size, float scale, uint32_t seed) {
    shape.n_head = n_head;
    shape.head_dim = head_dim;
    shape.block_size = block_size;
    shape.scale = scale;
    int32_t blocks = 0;
    for (size_t s = 0; s < q_lens.size(); s++) {
      q_start.push_back(static_cast<int32_t>(T));
      q_len.push_back(q_lens[s]);
      kv_len.push_back(kv_lens[s]);
      T += q_lens[s];
      bt_start.push_back(blocks);
      blocks += (kv_lens[s] + block_size - 1) / block_size;
    }
    std::vector<int32_t> ids(blocks + 3);
    for (size_t i = 0; i < ids.size(); i++) ids[i] = static_cast<int32_t>(i);
    std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
    tables.assign(ids.begin(), ids.begin() + blocks);
    const size_t pool_floats = ids.size() * size_t(n_head) * block_size * head_dim;
    k_pool = randn(pool_floats, seed + 1, 1.5f);
    v_pool = randn(pool_floats, seed + 2);
    const int64_t E = int64_t(n_head) * head_dim;
    ldq = 3 * E;  // q sits in a wider qkv row, as in the model
    q = randn(T * ldq, seed + 3, 1.5f);
    out_ref.assign(T * E, 0);
    out.assign(T * E, 0);
  }
  AttentionBatch batch() const {
    AttentionBatch b;
    b.n_seqs = static_cast<int32_t>(q_len.size());
    b.q_start = q_start.data();
    b.q_len = q_len.data();
    b.kv_len = kv_len.data();
    b.block_table_start = bt_start.data();
    b.block_tables = tables.data();
    return b;
  }
  double run() {
    const int64_t E = int64_t(shape.n_head) * shape.head_dim;
    attention_reference(q.data(), ldq, batch(), shape, k_pool.data(), v_pool.data(), out_ref.data(), E);
    attention(pool(), 0, q.data(), ldq, batch(), shape, k_pool.data(), v_pool.data(), out.data(), E);
    return max_abs_diff(out, out_ref);
  }
};

}  // namespace

TEST(layernorm_portable_matches_reference) {
  for (int64_t dim : {1, 7, 64, 768, 1600}) {
    check_layernorm(5, dim, false, false);
    check_layernorm(5, dim, true, false);
  }
}

TEST(layernorm_avx2_matches_reference) {
  if (!cpu_features().has_avx2()) return;
  for (int64_t dim : {1, 7, 64, 768, 1600}) {
    check_layernorm(5, dim, false, true);
    check_layernorm(5, dim, true, true);
  }
}

TEST(layernorm_threaded_matches_reference) {
  const int64_t rows = 64, dim = 768;
  auto x = randn(rows * dim, 5), gamma = randn(dim, 6, 0.2f, 1.0f), beta = randn(dim, 7);
  std::vector<float> y_ref(rows * dim), y(rows * dim);
  layernorm_reference(x.data(), dim, nullptr, nullptr, rows, dim, gamma.data(), beta.data(), 1e-5f, y_ref.data(), dim);
  layernorm(pool(), 0, x.data(), dim, nullptr, nullptr, rows, dim, gamma.data(), beta.data(), 1e-5f, y.data(), dim);
  CHECK(max_abs_diff(y, y_ref) < 2e-5);
}

TEST(attention_prefill_single_sequence) {
  PagedCase c({37}, {37}, 4, 16, 16, 0.25f, 10);
  const double d = c.run();
  CHECK_MSG(d < 1e-5, "max diff " + std::to_string(d));
}

TEST(attention_ragged_prefill_and_decode_mix) {
  // Sequence 0: prefill chunk after 20 cached tokens; 1: decode step at position 100;
  // 2: a fresh 5-token prompt; 3: decode at position 0.
  PagedCase c({12, 1, 5, 1}, {32, 101, 5, 1}, 12, 64, 16, 0.125f, 20);
  const double d = c.run();
  CHECK_MSG(d < 1e-5, "max diff " + std::to_string(d));
}

TEST(attention_odd_head_dim_and_block_size) {
  // head_dim 3 (tiny_prefixed_lmhead) and 4 (tiny_fp16) take the portable path.
  for (int32_t hd : {3, 4, 24}) {
    PagedCase c({7, 3}, {7, 40}, 2, hd, 5, 1.0f / std::sqrt(float(hd)) / 2.0f, 30 + hd);
    const double d = c.run();
    CHECK_MSG(d < 1e-5, "head_dim " + std::to_string(hd) + ": max diff " + std::to_string(d));
  }
}

TEST(attention_large_scores_stay_finite) {
  // Scores of several hundred: the online softmax must rescale, not overflow.
  PagedCase c({20}, {50}, 2, 16, 16, 8.0f, 40);
  const double d = c.run();
  for (float v : c.out) CHECK(std::isfinite(v));
  CHECK_MSG(d < 1e-4, "max diff " + std::to_string(d));
}

TEST(attention_portable_matches_avx2_row) {
  if (!cpu_features().has_avx2()) return;
  PagedCase c({1}, {70}, 4, 64, 16, 0.125f, 50);
  std::vector<float> a(64), b(64);
  attention_row_portable(c.q.data() + 64, c.tables.data(), 70, c.shape, 1, c.k_pool.data(), c.v_pool.data(), a.data());
  attention_row_avx2(c.q.data() + 64, c.tables.data(), 70, c.shape, 1, c.k_pool.data(), c.v_pool.data(), b.data());
  CHECK(max_abs_diff(a, b) < 1e-5);
}

TEST(kv_append_writes_the_slots) {
  AttentionShape s;
  s.n_head = 2;
  s.head_dim = 3;
  s.block_size = 4;
  const int64_t E = 6;
  std::vector<float> k_pool(3 * 2 * 4 * 3, -1), v_pool(k_pool.size(), -1);
  auto kv = randn(2 * 2 * E, 60);  // 2 tokens, rows [k | v]
  const int32_t slots[2] = {9, 2};  // block 2 offset 1, block 0 offset 2
  kv_append(kv.data(), 2 * E, kv.data() + E, 2 * E, slots, 2, s, k_pool.data(), v_pool.data());
  for (int t = 0; t < 2; t++)
    for (int h = 0; h < 2; h++)
      for (int d = 0; d < 3; d++) {
        const int64_t at = ((int64_t(slots[t] / 4) * 2 + h) * 4 + slots[t] % 4) * 3 + d;
        CHECK(k_pool[at] == kv[t * 2 * E + h * 3 + d]);
        CHECK(v_pool[at] == kv[t * 2 * E + E + h * 3 + d]);
      }
}

TEST(embedding_gather_matches_reference) {
  const int64_t V = 50, P = 20, E = 24, n = 9;
  auto wte = randn(V * E, 70), wpe = randn(P * E, 71);
  std::vector<int32_t> ids = {0, 49, 3, 3, 17, 8, 1, 2, 40}, pos = {0, 1, 2, 3, 4, 19, 5, 6, 7};
  std::vector<float> a(n * E), b(n * E);
  embed_reference(ids.data(), pos.data(), n, wte.data(), wpe.data(), E, a.data());
  embed(pool(), 0, ids.data(), pos.data(), n, wte.data(), wpe.data(), E, b.data());
  CHECK(max_abs_diff(a, b) == 0);
  CHECK(a[E + 5] == wte[49 * E + 5] + wpe[1 * E + 5]);
  std::vector<float> rows(2 * E);
  const int32_t pick[2] = {8, 1};
  gather_rows(a.data(), E, pick, 2, E, rows.data());
  for (int64_t d = 0; d < E; d++) CHECK(rows[d] == a[8 * E + d] && rows[E + d] == a[E + d]);
}

namespace {
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

// Row v of wte read from column v of the packed transposed weight, for every kernel set's
// panel width, fp32 and bf16, odd and even widths, a vocab that ends mid-panel, and the
// values bf16 rounding cannot undo with an int16 (halfway cases rounded down, NaN), inf
// and the largest float (rounds up to inf).
TEST(embedding_gather_from_packed_panels_matches_reference) {
  using gemm::Isa;
  std::vector<Isa> isas = {Isa::Baseline, Isa::AmxEmulated};
  if (cpu_features().has_avx2()) isas.push_back(Isa::Avx2);
  if (cpu_features().has_avx512()) isas.push_back(Isa::Avx512);
  const int64_t V = 77, P = 9;
  for (int64_t E : {int64_t(24), int64_t(23)}) {
    auto wte = randn(V * E, 80), wpe = randn(P * E, 81);
    wte[5 * E + 1] = from_bits(0x3f808000u);   // halfway, even bf16 below: rounds down, +0x8000 off
    wte[5 * E + 2] = from_bits(0xbf818000u);   // halfway, odd below: rounds up
    wte[76 * E + 3] = from_bits(0x7fc12345u);  // quiet NaN: bf16 keeps the top half
    wte[76 * E + 6] = from_bits(0x7f812345u);  // signalling NaN: bf16 sets the quiet bit
    wte[76 * E + 4] = std::numeric_limits<float>::infinity();
    wte[76 * E + 5] = -std::numeric_limits<float>::max();
    const int64_t n = 8 * P;
    std::vector<int32_t> ids(n), pos(n);
    for (int64_t i = 0; i < n; i++) ids[i] = int32_t((i * 37 + 5) % V), pos[i] = int32_t(i % P);
    ids[0] = 0, ids[1] = int32_t(V - 1), ids[2] = 5, ids[3] = 76;
    std::vector<float> want(n * E);
    embed_reference(ids.data(), pos.data(), n, wte.data(), wpe.data(), E, want.data());
    const Bf16Residual residual = Bf16Residual::of(wte.data(), V * E);
    CHECK(residual.exact_at.size() == 2);  // the halfway case rounded down, the signalling NaN
    for (Isa isa : isas) {
      gemm::set_isa_for_testing(isa);
      for (WeightType type : {WeightType::F32, WeightType::BF16}) {
        const PackedWeight w = PackedWeight::pack(wte.data(), E, V, true, type);
        std::vector<float> got(n * E, -1.0f);
        embed_packed(pool(), 0, ids.data(), pos.data(), n, w, type == WeightType::BF16 ? &residual : nullptr,
                     wpe.data(), E, got.data());
        CHECK_MSG(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0,
                  std::string("packed gather differs: ") + w.kernel_name() + (type == WeightType::BF16 ? " bf16" : " f32") +
                      " E=" + std::to_string(E));
      }
    }
    gemm::set_isa_for_testing(Isa::Auto);
    // The bf16 panels without the residual are not the fp32 wte: refused, not guessed.
    const PackedWeight w = PackedWeight::pack(wte.data(), E, V, true, WeightType::BF16);
    std::vector<float> got(n * E);
    bool threw = false;
    try {
      embed_packed(pool(), 0, ids.data(), pos.data(), n, w, nullptr, wpe.data(), E, got.data());
    } catch (const std::exception&) {
      threw = true;
    }
    CHECK(threw);
  }
}

// Small blocks (aligned_alloc) and mapped ones (>= 1 MiB): 64-byte aligned, whole size writable.
TEST(host_alloc_small_and_mapped_blocks) {
  for (size_t bytes : {size_t(1), size_t(1000), size_t(1) << 20, (size_t(3) << 20) + 5}) {
    auto* p = static_cast<unsigned char*>(host_alloc(bytes));
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    std::memset(p, 0xab, bytes);
    CHECK(p[0] == 0xab && p[bytes - 1] == 0xab);
    host_free(p);
  }
  host_free(nullptr);
}

TEST_MAIN()
