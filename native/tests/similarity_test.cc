// Similarity search kernels (cpu/similarity.h): AVX2 and portable dot products against the
// double-precision reference for awkward shapes, the pooled version over many rows, and
// top_k against a full sort (ties, NaN).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "cpu/similarity.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::cpu;

namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b, int64_t dim) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(double(a[i]) - b[i]) / std::sqrt(double(dim)));
  return m;
}

void check_kernels(int64_t rows, int64_t dim) {
  const auto mat = randn(size_t(rows * dim), uint32_t(rows * 131 + dim));
  const auto q = randn(size_t(dim), uint32_t(dim));
  std::vector<float> ref(rows), got(rows);
  dot_rows_reference(mat.data(), rows, dim, q.data(), ref.data());
  dot_rows_portable(mat.data(), rows, dim, q.data(), got.data());
  const std::string shape = std::to_string(rows) + "x" + std::to_string(dim);
  CHECK_MSG(max_rel_diff(got, ref, dim) < 1e-5, "portable " + shape);
  if (cpu_features().has_avx2()) {
    dot_rows_avx2(mat.data(), rows, dim, q.data(), got.data());
    CHECK_MSG(max_rel_diff(got, ref, dim) < 1e-5, "avx2 " + shape);
  }
}

}  // namespace

TEST(dot_rows_kernels_match_reference) {
  for (int64_t rows : {1, 3, 4, 5, 9, 64})
    for (int64_t dim : {1, 7, 8, 9, 63, 64, 65, 768}) check_kernels(rows, dim);
}

TEST(dot_rows_pooled_equals_single_block_bit_for_bit) {
  const int64_t rows = 5003, dim = 96;
  const auto mat = randn(size_t(rows * dim), 5);
  const auto q = randn(size_t(dim), 6);
  std::vector<float> one(rows), pooled(rows), ref(rows);
  dot_rows(ThreadPool::shared(2), 1, mat.data(), rows, dim, q.data(), one.data());
  dot_rows(ThreadPool::shared(2), 0, mat.data(), rows, dim, q.data(), pooled.data());
  dot_rows_reference(mat.data(), rows, dim, q.data(), ref.data());
  CHECK(one == pooled);  // a row's score does not depend on how rows are split
  CHECK(max_rel_diff(pooled, ref, dim) < 1e-5);
}

TEST(top_k_matches_full_sort) {
  std::vector<float> s = randn(1000, 9);
  for (int i = 0; i < 1000; i += 10) s[i] = 0.5f;  // ties
  s[3] = NAN;
  s[500] = NAN;
  std::vector<int64_t> all(1000);
  std::iota(all.begin(), all.end(), 0);
  auto key = [&](int64_t i) { return std::isnan(s[i]) ? -INFINITY : s[i]; };
  std::stable_sort(all.begin(), all.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
  for (int64_t k : {1, 5, 37, 999, 1000}) {
    const auto got = top_k(s.data(), 1000, k);
    CHECK(int64_t(got.size()) == k);
    CHECK(std::equal(got.begin(), got.end(), all.begin()));
  }
  CHECK(top_k(s.data(), 1000, 2000).size() == 1000);
  CHECK(top_k(s.data(), 0, 3).empty());
}

TEST_MAIN()
