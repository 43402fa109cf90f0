// GEMM micro-benchmark (not a *_test.cc: CI does not run it):
//   node scripts/native-test.mjs native/tests/gemm_bench.cc [-- E [M,M,...] [threads] [kernels] [f32]]
// kernels: auto (default) or avx2 (force the AVX2 kernels on an AVX-512 machine); "f32" as
// the fifth argument skips the bf16 and naive columns and lm_head (quick A/B runs of the
// per-layer fp32 matmuls), "bf16" likewise skips the fp32 and naive columns and lm_head.
// For GPT-2's matmuls (c_attn [E,3E], attn c_proj [E,E], c_fc [E,4E], mlp c_proj [4E,E],
// lm_head = wte [V,E] transposed) at M = 1, 8, 32, 128, 1024: GFLOP/s and weight GB/s of
// matmul() (fp32 and bf16 weights) next to a naive single-thread loop, plus the machine's
// measured FMA peak and read bandwidth to compare with. Weights are rotated through
// copies larger than the last-level cache, so small-M numbers are from memory, as in a
// real decode step.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>
#include <time.h>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"

using namespace gpt2;
using namespace gpt2::cpu;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// CPU time of the whole process (all pool threads): on a shared machine, flops per CPU
// second is the kernel's speed while it actually holds a core.
double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// The plain loop a first implementation would write (row of A times W, float accumulate).
void naive_matmul(const float* A, int64_t M, const float* w, int64_t K, int64_t N, bool transposed, float* C) {
  for (int64_t m = 0; m < M; m++) {
    float* c = C + m * N;
    if (!transposed) {
      std::fill(c, c + N, 0.0f);
      for (int64_t k = 0; k < K; k++) {
        const float a = A[m * K + k];
        const float* wr = w + k * N;
        for (int64_t n = 0; n < N; n++) c[n] += a * wr[n];
      }
    } else {
      for (int64_t n = 0; n < N; n++) {
        float acc = 0;
        for (int64_t k = 0; k < K; k++) acc += A[m * K + k] * w[n * K + k];
        c[n] = acc;
      }
    }
  }
}

__attribute__((target("avx2,fma"))) double fma_peak_one_thread(int64_t iters) {
  // 10 independent chains in registers: covers FMA latency x 2 pipes.
  __m256 c0 = _mm256_set1_ps(0), c1 = _mm256_set1_ps(1), c2 = _mm256_set1_ps(2), c3 = _mm256_set1_ps(3),
         c4 = _mm256_set1_ps(4), c5 = _mm256_set1_ps(5), c6 = _mm256_set1_ps(6), c7 = _mm256_set1_ps(7),
         c8 = _mm256_set1_ps(8), c9 = _mm256_set1_ps(9);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; it++) {
    c0 = _mm256_fmadd_ps(c0, a, b); c1 = _mm256_fmadd_ps(c1, a, b); c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b); c4 = _mm256_fmadd_ps(c4, a, b); c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b); c7 = _mm256_fmadd_ps(c7, a, b); c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b);
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                                 _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)),
                                               _mm256_add_ps(c8, c9)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx2"))) float sum_avx2(const float* p, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (int64_t i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0] + out[7];
}

struct Shape {
  const char* name;
  int64_t K, N;
  bool transposed;
};

}  // namespace

int main(int argc, char** argv) {
  const int64_t E = argc > 1 ? std::atoll(argv[1]) : 768;
  std::vector<int64_t> Ms = {1, 8, 32, 128, 1024};
  if (argc > 2) {
    Ms.clear();
    for (std::string s = argv[2]; !s.empty();) {
      const size_t c = s.find(',');
      Ms.push_back(std::atoll(s.substr(0, c).c_str()));
      s = c == std::string::npos ? "" : s.substr(c + 1);
    }
  }
  const int threads = argc > 3 ? std::atoi(argv[3]) : ThreadPool::default_threads();
  ThreadPool& pool = ThreadPool::shared(threads);
  const bool avx2 = cpu_features().has_avx2();
  const std::string kernels = argc > 4 ? argv[4] : "auto";
  const bool f32_only = argc > 5 && std::string(argv[5]) == "f32";
  const bool bf16_only = argc > 5 && std::string(argv[5]) == "bf16";
  if (kernels == "avx2" && avx2) gemm::set_isa_for_testing(gemm::Isa::Avx2);
  const char* kernel_name = kernels == "avx2" && avx2 ? "avx2" : cpu_isa_name();

  std::printf("# GEMM micro-benchmark\n\nCPU: %s, %d threads, kernels: %s, E=%lld\n\n", cpu_features().brand.c_str(),
              pool.size(), kernel_name, (long long)E);

  // Machine limits, measured the same way (all pool threads).
  if (avx2) {
    const int64_t iters = 20000000;
    std::vector<double> per_thread(size_t(pool.size()), 0.0);
    pool.run(pool.size(), [&](int64_t i, int) {
      const double c0 = thread_cpu_seconds();
      volatile double s = fma_peak_one_thread(iters);
      (void)s;
      per_thread[size_t(i)] = double(iters) * 10 * 16 / (thread_cpu_seconds() - c0) / 1e9;
    });
    double gf = 0;
    for (double g : per_thread) gf += g;
    const int64_t n = int64_t(64) << 20;  // 256 MB
    float* buf = static_cast<float*>(std::aligned_alloc(64, size_t(n) * 4));
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) { std::fill(buf + b, buf + e, 1.0f); });
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
      const auto t1 = Clock::now();
      pool.parallel_for(n / 32, [&](int64_t b, int64_t e, int) { volatile float s = sum_avx2(buf + b * 32, (e - b) * 32); (void)s; });
      best = std::min(best, seconds_since(t1));
    }
    std::free(buf);
    std::printf("Measured limits: FMA peak %.0f GFLOP/s (fp32, 8-wide, all threads, per CPU-second), read bandwidth %.1f GB/s (wall)\n\n", gf,
                double(n) * 4 / best / 1e9);
  }

  const int64_t V = 50257;
  const Shape shapes[] = {{"c_attn", E, 3 * E, false},
                          {"attn.c_proj", E, E, false},
                          {"c_fc", E, 4 * E, false},
                          {"mlp.c_proj", 4 * E, E, false},
                          {"lm_head", E, V, true}};

  std::printf("GFLOP/s and GB/s (weight bytes read) are wall-clock; 'core GFLOP/s' is per CPU-second of the\n"
              "process (the kernel's speed while it holds a core: this machine is shared).\n\n");
  std::printf("| matmul [K,N] | M | fp32 GFLOP/s | fp32 GB/s | fp32 core GFLOP/s | bf16 GFLOP/s | bf16 GB/s | bf16 core GFLOP/s | naive GFLOP/s | fp32 / naive |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  for (const Shape& s : shapes) {
    if ((f32_only || bf16_only) && s.transposed) continue;  // quick runs: the prefill (per-layer) matmuls only
    std::vector<float> w(size_t(s.K * s.N));
    for (auto& x : w) x = dist(rng);
    // Copies of the packed weight totalling > 96 MB, used round-robin: no copy is still in
    // cache when its turn comes again.
    const size_t wbytes = size_t(s.K * s.N) * 4;
    const int copies = int(std::max<size_t>(1, (size_t(96) << 20) / wbytes + 1));
    std::vector<PackedWeight> f32, bf16;
    for (int c = 0; c < (bf16_only ? 0 : copies); c++) f32.push_back(PackedWeight::pack(w.data(), s.K, s.N, s.transposed, WeightType::F32));
    for (int c = 0; c < (f32_only ? 0 : 2 * copies); c++)
      bf16.push_back(PackedWeight::pack(w.data(), s.K, s.N, s.transposed, WeightType::BF16));
    std::vector<float> wsrc;
    if (s.transposed) {  // wte as stored: [V, E]
      wsrc.resize(w.size());
      for (int64_t k = 0; k < s.K; k++)
        for (int64_t n = 0; n < s.N; n++) wsrc[n * s.K + k] = w[k * s.N + n];
    }
    for (int64_t M : Ms) {
      std::vector<float> A(size_t(M * s.K)), C(size_t(M * s.N)), bias(size_t(s.N), 0.01f);
      for (auto& x : A) x = dist(rng);
      const double flops = 2.0 * double(M) * double(s.K) * double(s.N);
      Epilogue ep;
      ep.bias = bias.data();
      auto time_it = [&](auto&& fn) {
        // Repeat to >= 0.25 s (at least 3 runs), report the median run.
        std::vector<double> t, c;
        const auto start = Clock::now();
        for (int r = 0; r < 3 || (seconds_since(start) < 0.25 && r < 2000); r++) {
          const auto t0 = Clock::now();
          const double c0 = process_cpu_seconds();
          fn(r);
          c.push_back(process_cpu_seconds() - c0);
          t.push_back(seconds_since(t0));
        }
        std::sort(t.begin(), t.end());
        std::sort(c.begin(), c.end());
        return std::pair<double, double>(t[t.size() / 2], c[c.size() / 2]);
      };
      const auto [t32, c32] = bf16_only ? std::pair<double, double>(0.0, 0.0) : time_it([&](int r) {
        matmul(pool, A.data(), M, s.K, f32[r % copies], C.data(), s.N, ep);
      });
      const auto [t16, c16] = f32_only ? std::pair<double, double>(0.0, 0.0) : time_it([&](int r) {
        matmul(pool, A.data(), M, s.K, bf16[r % (2 * copies)], C.data(), s.N, ep);
      });
      double tn = 0;
      const bool run_naive = flops <= 2.5e9 && !f32_only && !bf16_only;  // the naive loop is too slow beyond that
      if (run_naive) {
        const auto t0 = Clock::now();
        naive_matmul(A.data(), M, s.transposed ? wsrc.data() : w.data(), s.K, s.N, s.transposed, C.data());
        tn = seconds_since(t0);
      }
      char naive_gf[32] = "-", ratio[32] = "-";
      if (run_naive) {
        std::snprintf(naive_gf, sizeof naive_gf, "%.1f", flops / tn / 1e9);
        std::snprintf(ratio, sizeof ratio, "%.1fx", tn / t32);
      }
      char bf16_cols[96] = "- | - | -";
      if (!f32_only)
        std::snprintf(bf16_cols, sizeof bf16_cols, "%.1f | %.1f | %.1f", flops / t16 / 1e9,
                      double(wbytes / 2) / t16 / 1e9, flops / c16 / 1e9);
      char f32_cols[96] = "- | - | -";
      if (!bf16_only)
        std::snprintf(f32_cols, sizeof f32_cols, "%.1f | %.1f | %.1f", flops / t32 / 1e9, double(wbytes) / t32 / 1e9,
                      flops / c32 / 1e9);
      std::printf("| %s [%lld,%lld] | %lld | %s | %s | %s | %s |\n", s.name, (long long)s.K, (long long)s.N,
                  (long long)M, f32_cols, bf16_cols, naive_gf, ratio);
      std::fflush(stdout);
    }
  }
  return 0;
}
