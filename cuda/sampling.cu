// Device-side sampling of the next token from logits rows (one block per row), so a decode
// loop can keep logits on the GPU and download one id per sequence:
//   temperature <= 0   greedy: argmax, lowest id on ties
//   otherwise          softmax(logits / temperature), restricted to the top_k largest (ties at
//                      the k-th value kept) and then to the smallest set of largest
//                      probabilities whose mass reaches top_p (ties kept), then one draw by
//                      inverse CDF in token-id order with u = uniform(seed).
// Thresholds are found by bisection over the float bit patterns (32 counting passes), which
// selects exact values without sorting the vocabulary.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace gpt2_cuda {

namespace {

// Floats mapped to uint32 so that unsigned order is float order (NaNs excluded by the caller).
__host__ __device__ inline uint32_t order_key(float x) {
  uint32_t u;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(x);
#else
  std::memcpy(&u, &x, 4);
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// splitmix64 of the seed -> [0, 1) with 24 random bits (exact in float).
__host__ __device__ inline float uniform_from_seed(uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace

int32_t sample_reference(const float* x, int64_t vocab, const SamplingParams& p) {
  if (p.temperature <= 0) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; i++)
      if (x[i] > x[best]) best = i;
    return int32_t(best);
  }
  std::vector<float> s(vocab);
  for (int64_t i = 0; i < vocab; i++) s[i] = x[i] / p.temperature;
  std::vector<float> sorted = s;
  std::sort(sorted.begin(), sorted.end(), [](float a, float b) { return a > b; });
  const float m = sorted[0];
  float threshold = -INFINITY;
  if (p.top_k > 0 && p.top_k < vocab) threshold = sorted[p.top_k - 1];
  double z = 0;
  for (float v : sorted)
    if (v >= threshold) z += std::exp(double(v) - m);
  if (p.top_p < 1.0f) {
    // Walk the distinct values from the largest until the mass reaches top_p.
    double mass = 0;
    for (size_t i = 0; i < sorted.size() && sorted[i] >= threshold; i++) {
      mass += std::exp(double(sorted[i]) - m);
      if (i + 1 < sorted.size() && sorted[i + 1] == sorted[i]) continue;  // ties go together
      if (mass >= double(p.top_p) * z) {
        threshold = sorted[i];
        break;
      }
    }
  }
  double kept = 0;
  int64_t last = 0;
  for (int64_t i = 0; i < vocab; i++)
    if (s[i] >= threshold) kept += std::exp(double(s[i]) - m), last = i;
  const double u = double(uniform_from_seed(p.seed)) * kept;
  double cum = 0;
  for (int64_t i = 0; i < vocab; i++)
    if (s[i] >= threshold) {
      cum += std::exp(double(s[i]) - m);
      if (cum > u) return int32_t(i);
    }
  return int32_t(last);
}

namespace {

constexpr int kThreads = 256;

// Block-wide sum / max / min of one value per thread (all threads must call).
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by the previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < kThreads / 32; w++) v = op(v, scratch[w]);
  return v;
}

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

__global__ void __launch_bounds__(kThreads)
    sample_rows(const float* __restrict__ logits, int64_t vocab, int64_t ld, const SamplingParams* __restrict__ params,
                int32_t* out) {
  __shared__ float f_scratch[kThreads / 32];
  __shared__ unsigned long long i_scratch[kThreads / 32];
  __shared__ float chunk_prefix[kThreads + 1];
  const int row = blockIdx.x, tid = threadIdx.x;
  const float* x = logits + int64_t(row) * ld;
  const SamplingParams p = params[row];

  if (p.temperature <= 0) {
    // argmax as one 64-bit key: value order in the high word, lowest id wins in the low word.
    unsigned long long best = 0;
    for (int64_t i = tid; i < vocab; i += kThreads) {
      const unsigned long long key = (uint64_t(order_key(x[i])) << 32) | uint32_t(0xffffffffu - uint32_t(i));
      best = key > best ? key : best;
    }
    best = block_reduce(best, [](unsigned long long a, unsigned long long b) { return a > b ? a : b; }, i_scratch);
    if (tid == 0) out[row] = int32_t(0xffffffffu - uint32_t(best & 0xffffffffu));
    return;
  }
  const float inv_t = 1.0f / p.temperature;
  float m = -INFINITY;
  for (int64_t i = tid; i < vocab; i += kThreads) m = fmaxf(m, x[i] * inv_t);
  m = block_reduce(m, Max(), f_scratch);

  // Largest key t with count(key >= t) >= k: the k-th largest value, bit by bit from the top.
  uint32_t keep_key = 0;
  if (p.top_k > 0 && p.top_k < vocab) {
    for (int bit = 31; bit >= 0; bit--) {
      const uint32_t cand = keep_key | (1u << bit);
      unsigned long long n = 0;
      for (int64_t i = tid; i < vocab; i += kThreads) n += order_key(x[i] * inv_t) >= cand;
      if (block_reduce(n, Sum(), i_scratch) >= static_cast<unsigned long long>(p.top_k)) keep_key = cand;
    }
  }
  auto mass_from = [&](uint32_t t) {
    float s = 0;
    for (int64_t i = tid; i < vocab; i += kThreads) {
      const float v = x[i] * inv_t;
      if (order_key(v) >= t) s += __expf(v - m);
    }
    return block_reduce(s, Sum(), f_scratch);
  };
  if (p.top_p < 1.0f) {
    // Largest t with mass(keys >= max(t, keep_key)) >= target, again bit by bit from 0 (bits
    // OR-ed onto keep_key would not reach every larger key).
    const float target = p.top_p * mass_from(keep_key);
    uint32_t t = 0;
    for (int bit = 31; bit >= 0; bit--) {
      const uint32_t cand = t | (1u << bit);
      if (mass_from(max(cand, keep_key)) >= target) t = cand;
    }
    keep_key = max(t, keep_key);
  }

  // Inverse CDF in id order: each thread owns a contiguous chunk of ids.
  const int64_t chunk = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = min(vocab, tid * chunk), end = min(vocab, begin + chunk);
  float mine = 0;
  for (int64_t i = begin; i < end; i++) {
    const float v = x[i] * inv_t;
    if (order_key(v) >= keep_key) mine += __expf(v - m);
  }
  __syncthreads();
  chunk_prefix[tid + 1] = mine;
  __syncthreads();
  if (tid == 0) {
    chunk_prefix[0] = 0;
    for (int t = 1; t <= kThreads; t++) chunk_prefix[t] += chunk_prefix[t - 1];
  }
  __syncthreads();
  // u < total, so exactly one chunk holds it; its owner walks the chunk (and takes the chunk's
  // last kept id if rounding in the walk leaves u just past it).
  const float total = chunk_prefix[kThreads];
  const float u = fminf(uniform_from_seed(p.seed) * total, nextafterf(total, 0.0f));
  if (chunk_prefix[tid] <= u && u < chunk_prefix[tid + 1]) {
    float cum = chunk_prefix[tid];
    int64_t pick = -1;
    for (int64_t i = begin; i < end; i++) {
      const float v = x[i] * inv_t;
      if (order_key(v) < keep_key) continue;
      cum += __expf(v - m);
      pick = i;
      if (cum > u) break;
    }
    out[row] = int32_t(pick);
  }
}

}  // namespace

cudaError_t sample(cudaStream_t stream, const float* logits, int64_t rows, int64_t vocab, int64_t ld,
                   const SamplingParams* params, int32_t* out_ids) {
  if (rows <= 0) return cudaSuccess;
  if (vocab <= 0 || rows > INT32_MAX) return cudaErrorInvalidValue;
  sample_rows<<<unsigned(rows), kThreads, 0, stream>>>(logits, vocab, ld, params, out_ids);
  return cudaGetLastError();
}

}  // namespace gpt2_cuda
