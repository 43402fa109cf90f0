// GEMM with a fused epilogue: C[M, N] = act(A[M, K] · W + bias) + residual. Three kernels:
//   gemm_f32_tiled     fp32 SIMT tiles (64x64 for prefill, 16x64 for mid-sized M), the exact path
//   gemm_wmma<T>       tensor cores (wmma m16n16k16, fp32 accumulation) for bf16 or fp16 weights
//   gemm_small_m       M <= 8 (decode): every weight read once, 16-byte loads, fp32 math; weight
//                      bandwidth is the limit here, so tensor cores would not help
// Weights are stored [K, ldw] with ldw = N rounded up to 8 and zero padding, so every weight row
// starts 16-byte aligned and the vector loads never need a scalar tail.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <climits>
#include <cmath>
#include <cstring>

#include "device_util.h"
#include "kernels.h"

namespace gpt2_cuda {

uint16_t bf16_from_float(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

uint16_t f16_from_float(float x) { return static_cast<__half_raw>(__float2half_rn(x)).x; }

float float_from_f16(uint16_t b) {
  __half_raw raw;
  raw.x = b;
  return __half2float(__half(raw));
}

float round_to_format(float x, int32_t format) {
  if (format == kWeightBF16) return float_from_bf16(bf16_from_float(x));
  if (format == kWeightF16) return float_from_f16(f16_from_float(x));
  return x;
}

float float_from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

float activation_reference(int32_t act, float x) {
  const double u = x;
  switch (act) {
    case kActGeluNew: return float(0.5 * u * (1.0 + std::tanh(0.7978845608028654 * (u + 0.044715 * u * u * u))));
    case kActGelu: return float(0.5 * u * (1.0 + std::erf(u * 0.7071067811865476)));
    case kActRelu: return x > 0 ? x : 0.0f;
    case kActSilu: return float(u / (1.0 + std::exp(-u)));
    case kActTanh: return std::tanh(x);
    default: return x;
  }
}

void matmul_reference(const float* A, int64_t M, int64_t lda, const float* W, int64_t K, int64_t N, float* C,
                      int64_t ldc, const Epilogue& ep, int32_t activation_format) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double acc = 0;
      for (int64_t k = 0; k < K; k++) {
        const float a = round_to_format(A[m * lda + k], activation_format);
        acc += double(a) * double(W[k * N + n]);
      }
      float v = float(acc + (ep.bias ? double(ep.bias[n]) : 0.0));
      v = activation_reference(ep.activation, v);
      if (ep.residual) v += ep.residual[m * ep.ldr + n];
      C[m * ldc + n] = v;
    }
}

namespace {

// An if-chain rather than a switch: ptxas for sm_90 spilled around the switch's jump table.
// Four consecutive k of row gm of A (zeros past M or K): one 16-byte load when the
// rows are aligned, else guarded scalar loads. The A-tile loader of both tiled GEMMs.
__device__ __forceinline__ float4 load_a4(const float* A, int64_t lda, int64_t M, int64_t K, int64_t gm, int64_t gk,
                                          bool vec_a) {
  float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
  if (gm >= M) return a;
  const float* src = A + gm * lda + gk;
  if (vec_a) {
    if (gk < K) a = *reinterpret_cast<const float4*>(src);
  } else {
    a.x = gk < K ? src[0] : 0.f;
    a.y = gk + 1 < K ? src[1] : 0.f;
    a.z = gk + 2 < K ? src[2] : 0.f;
    a.w = gk + 3 < K ? src[3] : 0.f;
  }
  return a;
}

__device__ __forceinline__ float activate(int32_t act, float x) {
  if (act == kActGeluNew) return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  if (act == kActGelu) return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
  if (act == kActRelu) return fmaxf(x, 0.0f);
  if (act == kActSilu) return x / (1.0f + expf(-x));
  if (act == kActTanh) return tanhf(x);
  return x;
}

// The shared epilogue: one output element. residual may alias C (read before the write).
__device__ __forceinline__ void store_output(float v, int64_t m, int64_t n, float* C, int64_t ldc, const Epilogue& ep) {
  if (ep.bias) v += ep.bias[n];
  v = activate(ep.activation, v);
  if (ep.residual) v += ep.residual[m * ep.ldr + n];
  C[m * ldc + n] = v;
}


// ---------------------------------------------------------------- fp32 tiles
// Each thread computes a TM x TN patch of the BM x BN block tile; A is staged transposed
// (As[k][m]) so both operands are read along rows of shared memory.
template <int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_f32_tiled(const float* __restrict__ A, int64_t M, int64_t K, int64_t lda, const float* __restrict__ W,
                   int64_t N, int64_t ldw, float* C, int64_t ldc, Epilogue ep) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  __shared__ __align__(16) float As[BK][BM + 4];
  __shared__ __align__(16) float Bs[BK][BN];
  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;
  const bool vec_a = lda % 4 == 0 && K % 4 == 0 && aligned16(A);
  float acc[TM][TN] = {};

  for (int k0 = 0; k0 < K; k0 += BK) {
    // A tile: BM rows x BK columns, 4 consecutive k per step.
    for (int i = tid; i < BM * BK / 4; i += kThreads) {
      const int m = i / (BK / 4), kk = (i % (BK / 4)) * 4;
      const int64_t gm = m0 + m, gk = k0 + kk;
      const float4 a = load_a4(A, lda, M, K, gm, gk, vec_a);
      As[kk][m] = a.x;
      As[kk + 1][m] = a.y;
      As[kk + 2][m] = a.z;
      As[kk + 3][m] = a.w;
    }
    // W tile: BK rows x BN columns; ldw is a multiple of 8, so a float4 is all in or all out.
    for (int i = tid; i < BK * BN / 4; i += kThreads) {
      const int kk = i / (BN / 4), n = (i % (BN / 4)) * 4;
      const int64_t gk = k0 + kk, gn = n0 + n;
      float4 b = make_float4(0.f, 0.f, 0.f, 0.f);
      if (gk < K && gn < ldw) b = *reinterpret_cast<const float4*>(W + gk * ldw + gn);
      *reinterpret_cast<float4*>(&Bs[kk][n]) = b;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i++) a[i] = As[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; j++) b[j] = Bs[kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; i++)
#pragma unroll
    for (int j = 0; j < TN; j++) {
      const int64_t m = m0 + ty * TM + i, n = n0 + tx * TN + j;
      if (m < M && n < N) store_output(acc[i][j], m, n, C, ldc, ep);
    }
}

// ---------------------------------------------------------------- bf16 / fp16 tensor cores
// 64x64 block tile, 4 warps of 32x32 (2x2 wmma fragments), K in steps of 32. A is fp32 in
// memory and rounded to the weights' type T while it is staged; accumulation is fp32. The accumulators go
// through shared memory so the epilogue can run per element with bounds checks.
constexpr int kWmmaBM = 64, kWmmaBN = 64, kWmmaBK = 32, kWmmaThreads = 128;
constexpr int kAsLd = kWmmaBK + 8, kBsLd = kWmmaBN + 8, kCsLd = kWmmaBN + 4;  // padded, multiples of 8 / 4

__device__ __forceinline__ void round_from_float(float x, __nv_bfloat16& out) { out = __float2bfloat16(x); }
__device__ __forceinline__ void round_from_float(float x, __half& out) { out = __float2half(x); }

template <typename T>
__global__ void __launch_bounds__(kWmmaThreads)
    gemm_wmma(const float* __restrict__ A, int M, int K, int64_t lda, const T* __restrict__ W, int N, int64_t ldw,
              float* C, int64_t ldc, Epilogue ep) {
  using namespace nvcuda;
  __shared__ __align__(32) T As[kWmmaBM * kAsLd];
  __shared__ __align__(32) T Bs[kWmmaBK * kBsLd];
  __shared__ __align__(32) float Cs[kWmmaBM * kCsLd];
  const int tid = threadIdx.x, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int64_t m0 = int64_t(blockIdx.y) * kWmmaBM, n0 = int64_t(blockIdx.x) * kWmmaBN;
  const bool vec_a = lda % 4 == 0 && K % 4 == 0 && aligned16(A);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int k0 = 0; k0 < K; k0 += kWmmaBK) {
    for (int i = tid; i < kWmmaBM * kWmmaBK / 4; i += kWmmaThreads) {
      const int m = i / (kWmmaBK / 4), kk = (i % (kWmmaBK / 4)) * 4;
      const int64_t gm = m0 + m, gk = k0 + kk;
      const float4 a = load_a4(A, lda, M, K, gm, gk, vec_a);
      T* dst = As + m * kAsLd + kk;
      round_from_float(a.x, dst[0]);
      round_from_float(a.y, dst[1]);
      round_from_float(a.z, dst[2]);
      round_from_float(a.w, dst[3]);
    }
    for (int i = tid; i < kWmmaBK * kWmmaBN / 8; i += kWmmaThreads) {
      const int kk = i / (kWmmaBN / 8), n = (i % (kWmmaBN / 8)) * 8;
      const int64_t gk = k0 + kk, gn = n0 + n;
      uint4 b = make_uint4(0, 0, 0, 0);  // 8 elements of T
      if (gk < K && gn < ldw) b = *reinterpret_cast<const uint4*>(W + gk * ldw + gn);
      *reinterpret_cast<uint4*>(Bs + kk * kBsLd + n) = b;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kWmmaBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b[2];
#pragma unroll
      for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], As + (wm + 16 * i) * kAsLd + kk, kAsLd);
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], Bs + kk * kBsLd + wn + 16 * j, kBsLd);
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(Cs + (wm + 16 * i) * kCsLd + wn + 16 * j, acc[i][j], kCsLd, wmma::mem_row_major);
  __syncthreads();
  for (int i = tid; i < kWmmaBM * kWmmaBN; i += kWmmaThreads) {
    const int m = i / kWmmaBN, n = i % kWmmaBN;
    if (m0 + m < M && n0 + n < N) store_output(Cs[m * kCsLd + n], m0 + m, n0 + n, C, ldc, ep);
  }
}

// ---------------------------------------------------------------- small M (decode)
// 256 threads cover G x 8 columns: G column groups of 8 columns x 256 / G slices of K. Each
// thread keeps MT x 8 sums; the K slices within a warp are summed with shuffles, the 8 warps
// through shared memory, and MT x G x 8 threads run the epilogue. G = 8 (64 columns) for wide
// weights like the lm_head; G = 2 (16 columns: 32-byte rows of bf16, one memory sector) for
// the narrow layer weights, so that even N = 768 spreads over 48 blocks.
constexpr int kSmallThreads = 256, kSmallWarps = kSmallThreads / 32;

__device__ __forceinline__ void load8(const float* p, float (&w)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
}
__device__ __forceinline__ void load8(const __half* p, float (&w)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 f = __half22float2(h[i]);
    w[2 * i] = f.x;
    w[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&w)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    w[2 * i] = __uint_as_float(words[i] << 16);
    w[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

template <typename WT, int MT, int G>
__global__ void __launch_bounds__(kSmallThreads)
    gemm_small_m(const float* __restrict__ A, int64_t M, int64_t K, int64_t lda, const WT* __restrict__ W, int64_t N,
                 int64_t ldw, float* C, int64_t ldc, Epilogue ep) {
  constexpr int kCols = G * 8, kSlices = kSmallThreads / G;
  __shared__ float partial[kSmallWarps][MT][kCols];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int group = lane % G;                           // which 8 columns
  const int slice = warp * (32 / G) + lane / G;         // which K slice
  const int64_t n = int64_t(blockIdx.x) * kCols + group * 8;
  float acc[MT][8] = {};
  if (n < ldw) {
    // Pointers walk down K (not 64-bit index products): fewer live registers, no spills.
    const WT* w_at = W + int64_t(slice) * ldw + n;
    const float* a_at = A + slice;
    for (int64_t k = slice; k < K; k += kSlices, w_at += kSlices * ldw, a_at += kSlices) {
      float w[8];
      load8(w_at, w);
#pragma unroll
      for (int m = 0; m < MT; m++) {
        const float a = m < M ? __ldg(a_at + m * lda) : 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) acc[m][j] += a * w[j];
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; m++)
#pragma unroll
    for (int j = 0; j < 8; j++) {
      float v = acc[m][j];
#pragma unroll
      for (int o = G; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane < G) partial[warp][m][group * 8 + j] = v;
    }
  __syncthreads();
  for (int i = tid; i < MT * kCols; i += kSmallThreads) {
    const int m = i / kCols, c = i % kCols;
    const int64_t gn = int64_t(blockIdx.x) * kCols + c;
    if (m >= M || gn >= N) continue;
    float v = 0;
#pragma unroll
    for (int w = 0; w < kSmallWarps; w++) v += partial[w][m][c];
    store_output(v, m, gn, C, ldc, ep);
  }
}

template <typename WT, int G>
cudaError_t launch_small_m(cudaStream_t stream, const float* A, int64_t M, int64_t lda, const DeviceWeight& W,
                           float* C, int64_t ldc, const Epilogue& ep) {
  const int64_t ldw = (W.N + 7) / 8 * 8;
  const dim3 grid(unsigned((ldw + G * 8 - 1) / (G * 8)));
  const WT* w = static_cast<const WT*>(W.data);
  if (M <= 1)
    gemm_small_m<WT, 1, G><<<grid, kSmallThreads, 0, stream>>>(A, M, W.K, lda, w, W.N, ldw, C, ldc, ep);
  else if (M <= 2)
    gemm_small_m<WT, 2, G><<<grid, kSmallThreads, 0, stream>>>(A, M, W.K, lda, w, W.N, ldw, C, ldc, ep);
  else if (M <= 4)
    gemm_small_m<WT, 4, G><<<grid, kSmallThreads, 0, stream>>>(A, M, W.K, lda, w, W.N, ldw, C, ldc, ep);
  else
    gemm_small_m<WT, 8, G><<<grid, kSmallThreads, 0, stream>>>(A, M, W.K, lda, w, W.N, ldw, C, ldc, ep);
  return cudaGetLastError();
}

template <typename WT>
cudaError_t launch_small_m(cudaStream_t stream, const float* A, int64_t M, int64_t lda, const DeviceWeight& W,
                           float* C, int64_t ldc, const Epilogue& ep) {
  return W.N > 8192 ? launch_small_m<WT, 8>(stream, A, M, lda, W, C, ldc, ep)
                    : launch_small_m<WT, 2>(stream, A, M, lda, W, C, ldc, ep);
}

}  // namespace

cudaError_t matmul(cudaStream_t stream, const float* A, int64_t M, int64_t lda, const DeviceWeight& W, float* C,
                   int64_t ldc, const Epilogue& ep, GemmPath path) {
  if (M <= 0 || W.N <= 0) return cudaSuccess;
  const int64_t K = W.K, N = W.N, ldw = (N + 7) / 8 * 8;
  // The kernels index sizes with int and put row tiles on grid.y.
  if (M > INT32_MAX || K > INT32_MAX || N > INT32_MAX || (M + 15) / 16 > 65535) return cudaErrorInvalidValue;
  const int32_t format = W.format;
  if (format != kWeightF32 && format != kWeightBF16 && format != kWeightF16) return cudaErrorInvalidValue;
  if (path == kGemmAuto) path = M <= 8 ? kGemmSmallM : format == kWeightF32 ? kGemmF32Tiled : kGemmTensorCore;
  if (path == kGemmSmallM) {
    if (M > 8) return cudaErrorInvalidValue;
    if (format == kWeightBF16) return launch_small_m<__nv_bfloat16>(stream, A, M, lda, W, C, ldc, ep);
    if (format == kWeightF16) return launch_small_m<__half>(stream, A, M, lda, W, C, ldc, ep);
    return launch_small_m<float>(stream, A, M, lda, W, C, ldc, ep);
  }
  if (path == kGemmTensorCore) {
    const dim3 grid(unsigned((N + kWmmaBN - 1) / kWmmaBN), unsigned((M + kWmmaBM - 1) / kWmmaBM));
    if (format == kWeightBF16)
      gemm_wmma<__nv_bfloat16><<<grid, kWmmaThreads, 0, stream>>>(
          A, int(M), int(K), lda, static_cast<const __nv_bfloat16*>(W.data), int(N), ldw, C, ldc, ep);
    else if (format == kWeightF16)
      gemm_wmma<__half><<<grid, kWmmaThreads, 0, stream>>>(A, int(M), int(K), lda, static_cast<const __half*>(W.data),
                                                           int(N), ldw, C, ldc, ep);
    else
      return cudaErrorInvalidValue;  // tensor cores read 16-bit weights only
    return cudaGetLastError();
  }
  if (format != kWeightF32) return cudaErrorInvalidValue;  // the fp32 tiles read fp32 weights only
  const float* w = static_cast<const float*>(W.data);
  if (M >= 64) {
    const dim3 grid(unsigned((N + 63) / 64), unsigned((M + 63) / 64));
    gemm_f32_tiled<64, 64, 16, 4, 4><<<grid, 256, 0, stream>>>(A, M, K, lda, w, N, ldw, C, ldc, ep);
  } else {
    const dim3 grid(unsigned((N + 63) / 64), unsigned((M + 15) / 16));
    gemm_f32_tiled<16, 64, 16, 1, 4><<<grid, 256, 0, stream>>>(A, M, K, lda, w, N, ldw, C, ldc, ep);
  }
  return cudaGetLastError();
}

}  // namespace gpt2_cuda
