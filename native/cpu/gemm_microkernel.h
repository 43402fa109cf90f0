// The GEMM micro-kernels and block driver, written once over a vector abstraction and
// instantiated per ISA file (gemm.cc: 4-wide SSE2; gemm_kernels_avx2.cc: 8-wide, and the
// 16-wide template emulated on AVX2 for tests; gemm_kernels_avx512.cc: 16-wide). The
// 16-wide logic is the 8-wide logic with W = 16.
//
// Everything here is in an unnamed namespace on purpose: each ISA file gets its own
// copy compiled with its own flags, and the linker can never pick an AVX-512 copy of a
// template for the baseline path (one-definition-rule merging of inline functions).
//
// An Ops type provides:  W (lanes), V (float vector, GCC vector extension), VU (uint32
// vector), fma(a, b, c) = a*b + c, bcast(const float*) (all lanes = *p, from memory), and
// dpbf16(acc, a_pairs, b_pairs) = vdpbf16ps.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/gemm_internal.h"

// 64-byte vector types are used on non-AVX-512 targets (the emulated wide template); they
// never cross a real call boundary, so the psABI note about passing them is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace gpt2::cpu::gemm {
namespace {

// Vector helpers are always inlined: 64-byte vectors passed by value between real calls
// would hit the psABI question (and a warning) on targets without AVX-512.
#define GPT2_VINLINE __attribute__((always_inline)) static inline

template <int W_>
struct VecTypes {
  static constexpr int W = W_;
  typedef float V __attribute__((vector_size(4 * W_)));
  typedef uint32_t VU __attribute__((vector_size(4 * W_)));
  typedef int32_t VI __attribute__((vector_size(4 * W_)));
};

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// bf16 round-to-nearest-even (local copies: see the note on the unnamed namespace).
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_value(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------------------------------
// Vectorised math for the epilogue. Accuracy goal: ~1e-7 relative (a few ulps) against
// activation_reference, except where the result underflows towards zero.
template <class Ops>
struct VMath {
  using V = typename Ops::V;
  using VI = typename Ops::VI;
  GPT2_VINLINE V splat(float x) { return V{} + x; }
  GPT2_VINLINE V vmin(V a, V b) { return a < b ? a : b; }
  GPT2_VINLINE V vmax(V a, V b) { return a > b ? a : b; }

  // e^x: Cody-Waite reduction x = n*ln2 + r, |r| <= ln2/2, then a degree-6 polynomial
  // (the classic expf minimax coefficients), then scale by 2^n built in the exponent.
  GPT2_VINLINE V exp(V x_in) {
    const V x = vmax(vmin(x_in, splat(88.0f)), splat(-87.0f));
    const V magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    const V t = x * splat(1.44269504088896341f) + magic;
    const V n = t - magic;
    const VI ni = (VI)t - 0x4B400000;
    V r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    V p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    const V y = p * (r * r) + r + splat(1.0f);
    const V e = y * (V)((ni + 127) << 23);
    // Past the clamps: overflow to +inf and underflow to 0, as expf does (so x / (1 + e)
    // goes to zero instead of a denormal-sized leftover).
    const V inf = splat(__builtin_inff());
    return x_in > splat(88.7f) ? inf : (x_in < splat(-87.5f) ? splat(0.0f) : e);
  }

  // gelu_new(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + e^(-2u)),
  // u = sqrt(2/pi) (x + 0.044715 x^3): no cancellation for negative x.
  GPT2_VINLINE V gelu_new(V x) {
    // -2u = x (-2c - 2c 0.044715 x^2): fewest roundings of the exponent.
    const V arg = x * (splat(-1.5957691216057308f) + splat(-0.0713548162726009f) * (x * x));
    return x / (splat(1.0f) + exp(arg));
  }

  // erfc(z) for z >= 0 (Numerical Recipes' erfcc, fractional error < 1.2e-7):
  //   t = 1/(1 + z/2), erfc = t * exp(-z^2 + P(t)). z^2 is split exactly (Dekker) into
  //   hi + lo so the large exponent is not rounded: exp(-hi) * exp(P(t) - lo).
  GPT2_VINLINE V erfc_pos(V z) {
    const V t = splat(1.0f) / (splat(1.0f) + splat(0.5f) * z);
    V p = splat(0.17087277f);
    p = p * t + splat(-0.82215223f);
    p = p * t + splat(1.48851587f);
    p = p * t + splat(-1.13520398f);
    p = p * t + splat(0.27886807f);
    p = p * t + splat(-0.18628806f);
    p = p * t + splat(0.09678418f);
    p = p * t + splat(0.37409196f);
    p = p * t + splat(1.00002368f);
    p = p * t + splat(-1.26551223f);
    const V zs = z * splat(4097.0f);
    const V zh = zs - (zs - z), zl = z - zh;
    const V hi = z * z;
    const V lo = ((zh * zh - hi) + splat(2.0f) * zh * zl) + zl * zl;
    return t * exp(-hi) * exp(p - lo);
  }
  // gelu(x) = 0.5 x (1 + erf(x/sqrt2)) = 0.5 x (2 - erfc(z)) for x >= 0, 0.5 x erfc(-z) below.
  GPT2_VINLINE V gelu(V x) {
    const V z = x * splat(0.7071067811865476f);
    const V az = vmax(z, -z);
    const V e = erfc_pos(az);
    const V s = x >= splat(0.0f) ? splat(2.0f) - e : e;
    return splat(0.5f) * x * s;
  }
  GPT2_VINLINE V silu(V x) { return x / (splat(1.0f) + exp(-x)); }
  // tanh: odd polynomial below 0.625 (relative accuracy near 0), 1 - 2/(e^2|x| + 1) above.
  GPT2_VINLINE V tanh(V x) {
    const V ax = vmax(x, -x);
    const V x2 = x * x;
    V p = splat(-5.70498872745e-3f);
    p = p * x2 + splat(2.06390887954e-2f);
    p = p * x2 + splat(-5.37397155531e-2f);
    p = p * x2 + splat(1.33314422036e-1f);
    p = p * x2 + splat(-3.33332819422e-1f);
    const V small = x + x * x2 * p;
    V big = splat(1.0f) - splat(2.0f) / (exp(splat(2.0f) * ax) + splat(1.0f));
    big = x < splat(0.0f) ? -big : big;
    return ax < splat(0.625f) ? small : big;
  }
  GPT2_VINLINE V relu(V x) { return x > splat(0.0f) ? x : splat(0.0f); }

  GPT2_VINLINE V activate(Activation a, V x) {
    switch (a) {
      case Activation::None: return x;
      case Activation::GeluNew: return gelu_new(x);
      case Activation::Gelu: return gelu(x);
      case Activation::Relu: return relu(x);
      case Activation::Silu: return silu(x);
      case Activation::Tanh: return tanh(x);
    }
    return x;
  }
};

// ---------------------------------------------------------------------------------------
template <class Ops, int MR>
struct Gemm {
  static constexpr int W = Ops::W;
  static constexpr int NR = 2 * W;
  static constexpr int kPrefetchFloats = 1024;  // 4 KB ahead
  static constexpr int kPrefetchAFloats = 512;  // 2 KB ahead
  using V = typename Ops::V;
  using VU = typename Ops::VU;
  using M = VMath<Ops>;

  GPT2_VINLINE V load(const float* p) { return *reinterpret_cast<const V*>(p); }  // aligned (packed B)
  GPT2_VINLINE VU loadu32(const void* p) { return *reinterpret_cast<const VU*>(p); }
  GPT2_VINLINE V loadu(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  GPT2_VINLINE void storeu(float* p, V v) { std::memcpy(p, &v, sizeof v); }
  // Broadcast from memory: a pure load (vbroadcastss m32), no shuffle-pipe uop.
  GPT2_VINLINE V bcast(const float* p) { return Ops::bcast(p); }

  template <int R>
  static void store_tile(V (&c0)[R], V (&c1)[R], float* c, int64_t ldc, bool accumulate) {
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      float* ci = c + i * ldc;
      if (accumulate) {
        c0[i] += loadu(ci);
        c1[i] += loadu(ci + W);
      }
      storeu(ci, c0[i]);
      storeu(ci + W, c1[i]);
    }
  }

  // C[R, NR] (+)= A[R, kc] * B[kc, NR]; A packed as [kc][MR] or rows at stride lda.
  template <int R, bool kPackedA>
  static void kernel_f32(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc,
                         bool accumulate) {
    V c0[R], c1[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) c0[i] = c1[i] = V{};
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
      // Few rows: B streams from memory (decode), prefetch it further ahead than the
      // hardware prefetcher does.
      if constexpr (R <= 4) __builtin_prefetch(b + k * NR + kPrefetchFloats);
      // Full tiles of packed A: the tile streams from L2 and the next tile follows it,
      // so prefetch it ahead (+5-10% at M >= 128; the hardware prefetcher restarts per tile).
      if constexpr (kPackedA && R == MR) __builtin_prefetch(a + k * MR + kPrefetchAFloats);
      const V b0 = load(b + k * NR), b1 = load(b + k * NR + W);
#pragma GCC unroll 16
      for (int i = 0; i < R; i++) {
        const V ai = bcast(kPackedA ? &a[k * MR + i] : &a[i * lda + k]);
        c0[i] = Ops::fma(ai, b0, c0[i]);
        c1[i] = Ops::fma(ai, b1, c1[i]);
      }
    }
    store_tile<R>(c0, c1, c, ldc, accumulate);
  }

  // Same with bf16 weights in the pair layout, expanded to fp32 in registers: the low
  // half of each 32-bit pair is row k (even), the high half row k+1. kc may be odd only
  // at the end of K (the padding row is zero but A has no column there).
  template <int R, bool kPackedA>
  static void kernel_bf16_expand(const float* a, int64_t lda, const uint16_t* b, int64_t kc, float* c,
                                 int64_t ldc, bool accumulate) {
    V c0[R], c1[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) c0[i] = c1[i] = V{};
    const VU hi_mask = VU{} + 0xffff0000u;
    int64_t k = 0;
    for (; k + 1 < kc; k += 2) {
      const VU p0 = loadu32(b + k * NR), p1 = loadu32(b + k * NR + 2 * W);
      const V e0 = (V)(p0 << 16), e1 = (V)(p1 << 16);
      const V o0 = (V)(p0 & hi_mask), o1 = (V)(p1 & hi_mask);
#pragma GCC unroll 16
      for (int i = 0; i < R; i++) {
        const V ae = bcast(kPackedA ? &a[k * MR + i] : &a[i * lda + k]);
        const V ao = bcast(kPackedA ? &a[(k + 1) * MR + i] : &a[i * lda + k + 1]);
        c0[i] = Ops::fma(ae, e0, c0[i]);
        c1[i] = Ops::fma(ae, e1, c1[i]);
        c0[i] = Ops::fma(ao, o0, c0[i]);
        c1[i] = Ops::fma(ao, o1, c1[i]);
      }
    }
    if (k < kc) {
      const VU p0 = loadu32(b + k * NR), p1 = loadu32(b + k * NR + 2 * W);
      const V e0 = (V)(p0 << 16), e1 = (V)(p1 << 16);
#pragma GCC unroll 16
      for (int i = 0; i < R; i++) {
        const V ae = bcast(kPackedA ? &a[k * MR + i] : &a[i * lda + k]);
        c0[i] = Ops::fma(ae, e0, c0[i]);
        c1[i] = Ops::fma(ae, e1, c1[i]);
      }
    }
    store_tile<R>(c0, c1, c, ldc, accumulate);
  }

  // bf16 x bf16 dot products (vdpbf16ps): A packed as bf16 pairs [kpairs][MR] (uint32),
  // B in the pair layout; fp32 accumulation.
  template <int R>
  static void kernel_bf16_dot(const uint32_t* a, const uint16_t* b, int64_t kpairs, float* c, int64_t ldc,
                              bool accumulate) {
    V c0[R], c1[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) c0[i] = c1[i] = V{};
    for (int64_t kp = 0; kp < kpairs; kp++) {
      // Few rows: B streams from memory (decode), prefetch it 4 KB ahead as kernel_f32 does.
      if constexpr (R <= 4) __builtin_prefetch(b + kp * 2 * NR + 2 * kPrefetchFloats);
      const VU b0 = loadu32(b + kp * 2 * NR), b1 = loadu32(b + kp * 2 * NR + 2 * W);
#pragma GCC unroll 16
      for (int i = 0; i < R; i++) {
        const VU ai = (VU)Ops::bcast(reinterpret_cast<const float*>(&a[kp * MR + i]));
        c0[i] = Ops::dpbf16(c0[i], ai, b0);
        c1[i] = Ops::dpbf16(c1[i], ai, b1);
      }
    }
    store_tile<R>(c0, c1, c, ldc, accumulate);
  }

  // Runtime row count -> the kernel instantiated for it.
  enum Mode { kF32, kBf16Expand, kBf16Dot };
  template <Mode kMode, bool kPackedA, int R = MR>
  static void call(int r, const void* a, int64_t lda, const void* b, int64_t kc, float* c, int64_t ldc,
                   bool accumulate) {
    if constexpr (R >= 1) {
      if (r == R) {
        if constexpr (kMode == kF32)
          kernel_f32<R, kPackedA>(static_cast<const float*>(a), lda, static_cast<const float*>(b), kc, c, ldc,
                                  accumulate);
        else if constexpr (kMode == kBf16Expand)
          kernel_bf16_expand<R, kPackedA>(static_cast<const float*>(a), lda, static_cast<const uint16_t*>(b), kc,
                                          c, ldc, accumulate);
        else
          kernel_bf16_dot<R>(static_cast<const uint32_t*>(a), static_cast<const uint16_t*>(b), (kc + 1) / 2, c,
                             ldc, accumulate);
        return;
      }
      call<kMode, kPackedA, R - 1>(r, a, lda, b, kc, c, ldc, accumulate);
    }
  }

  // Row tiles of a block: as even as possible (8 rows -> 4 + 4, not 6 + 2), since a tile
  // of few rows has too few independent accumulators to cover the FMA latency.
  static int64_t tile_count(int64_t rows) { return (rows + MR - 1) / MR; }
  static int64_t tile_begin(int64_t rows, int64_t t) { return t * rows / tile_count(rows); }

  // A[m0.., k0..k0+kl) -> per row tile t: [kl][MR] floats at t*MR*kl. Rows past the
  // tile's H are left as they are: the H-row kernel never reads them.
  template <int H = MR>
  static void pack_tile_f32(int h, const float* s, int64_t lda, int64_t kl, float* d) {
    if constexpr (H >= 1) {
      if (h != H) return pack_tile_f32<H - 1>(h, s, lda, kl, d);
      // k outer: the stores are contiguous and each of the H rows is read sequentially.
      for (int64_t k = 0; k < kl; k++) {
#pragma GCC unroll 16
        for (int i = 0; i < H; i++) d[k * MR + i] = s[i * lda + k];
      }
    }
  }
  static void pack_a_f32(const float* A, int64_t lda, int64_t rows, int64_t kl, float* dst) {
    for (int64_t t = 0; t < tile_count(rows); t++) {
      const int64_t b = tile_begin(rows, t), h = tile_begin(rows, t + 1) - b;
      pack_tile_f32(static_cast<int>(h), A + b * lda, lda, kl, dst + t * MR * kl);
    }
  }
  // Same, rounded to bf16 pairs: [ceil(kl/2)][MR] uint32, low half = even k (rows past a
  // short tile are left as they are: never read).
  static void pack_a_bf16_pairs(const float* A, int64_t lda, int64_t rows, int64_t kl, uint32_t* dst) {
    const int64_t kp_n = (kl + 1) / 2;
    for (int64_t t = 0; t < tile_count(rows); t++) {
      const int64_t b = tile_begin(rows, t), h = tile_begin(rows, t + 1) - b;
      uint32_t* d = dst + t * MR * kp_n;
      for (int64_t i = 0; i < h; i++) {
        const float* s = A + (b + i) * lda;
        for (int64_t kp = 0; kp < kp_n; kp++) {
          uint32_t v = bf16_bits(s[2 * kp]);
          if (2 * kp + 1 < kl) v |= uint32_t(bf16_bits(s[2 * kp + 1])) << 16;
          d[kp * MR + i] = v;
        }
      }
    }
  }
  // A bf16 panel's K block -> fp32 [kl][NR] (for many row tiles, expanding once and
  // running the fp32 kernel beats expanding in every tile's inner loop).
  static void expand_b(const uint16_t* b, int64_t kl, float* dst) {
    const VU hi_mask = VU{} + 0xffff0000u;
    for (int64_t k = 0; k < kl; k += 2) {
      const VU p0 = loadu32(b + k * NR), p1 = loadu32(b + k * NR + 2 * W);
      *reinterpret_cast<V*>(dst + k * NR) = (V)(p0 << 16);
      *reinterpret_cast<V*>(dst + k * NR + W) = (V)(p1 << 16);
      if (k + 1 < kl) {
        *reinterpret_cast<V*>(dst + (k + 1) * NR) = (V)(p0 & hi_mask);
        *reinterpret_cast<V*>(dst + (k + 1) * NR + W) = (V)(p1 & hi_mask);
      }
    }
  }

  // dst[r, n] = act(src[r, n] + bias[n]) + residual[r, n], for a tile of rows x cols.
  static void epilogue(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, int64_t cols,
                       const float* bias, Activation act, const float* residual, int64_t ldr) {
    for (int64_t i = 0; i < rows; i++) {
      const float* s = src + i * lds;
      float* d = dst + i * ldd;
      const float* res = residual ? residual + i * ldr : nullptr;
      int64_t j = 0;
      for (; j + W <= cols; j += W) {
        V y = loadu(s + j);
        if (bias) y += loadu(bias + j);
        y = M::activate(act, y);
        if (res) y += loadu(res + j);
        storeu(d + j, y);
      }
      if (j < cols) {  // tail: through a padded vector so it rounds exactly like the body
        const int64_t n = cols - j;
        float tmp[W] = {}, tb[W] = {}, tr[W] = {};
        for (int64_t q = 0; q < n; q++) {
          tmp[q] = s[j + q];
          if (bias) tb[q] = bias[j + q];
          if (res) tr[q] = res[j + q];
        }
        V y = loadu(tmp) + loadu(tb);
        y = M::activate(act, y) + loadu(tr);
        storeu(tmp, y);
        for (int64_t q = 0; q < n; q++) d[j + q] = tmp[q];
      }
    }
  }

  static void epilogue_rows(float* C, int64_t ldc, int64_t rows, int64_t cols, const float* bias, Activation act,
                            const float* residual, int64_t ldr) {
    epilogue(C, ldc, C, ldc, rows, cols, bias, act, residual, ldr);
  }

  // One task: rows [m0, m1) x panels [p0, p1) over all of K. Loop order per K block:
  // panels outer, MR-row tiles inner, so the panel's K block (kc x NR, ~16-32 KB) stays
  // in L1 while every row tile uses it; A's block (packed) stays in L2.
  template <Mode kMode>
  static void block(const BlockArgs& g) {
    const int64_t rows = g.m1 - g.m0;
    // kBf16Dot: A is always pre-packed (bf16 pairs, once per matmul: g.a_pairs).
    const bool prepacked = kMode == kBf16Dot || g.a_packed;
    const bool pack = g.pack_a || prepacked;
    for (int64_t k0 = 0; k0 < g.K; k0 += g.kc) {
      const int64_t kl = imin(g.kc, g.K - k0);
      const bool first = k0 == 0, last = k0 + kl == g.K;
      const float* a_rows = g.A + g.m0 * g.lda + k0;
      const void* a_block = g.scratch_a;
      if (kMode == kBf16Dot)
        a_block = g.a_pairs + k0 / 2 * g.a_packed_rows;
      else if (prepacked)
        a_block = g.a_packed + k0 * g.a_packed_rows;
      else if (pack)
        pack_a_f32(a_rows, g.lda, rows, kl, static_cast<float*>(g.scratch_a));
      const int64_t a_tile = kMode == kBf16Dot ? MR * ((kl + 1) / 2) : MR * kl;  // elements per packed tile
      for (int64_t p = g.p0; p < g.p1; p++) {
        const int64_t n0 = p * NR;
        const int64_t nv = imin(NR, g.N - n0);
        const bool edge = nv < NR;
        const void* b = kMode == kF32
                            ? static_cast<const void*>(static_cast<const float*>(g.B) + p * g.panel_stride + k0 * NR)
                            : static_cast<const void*>(static_cast<const uint16_t*>(g.B) + p * g.panel_stride +
                                                       k0 * NR);
        // bf16 weights and several row tiles: expand the block once, then fp32 kernels.
        constexpr bool kCanExpandOnce = kMode == kBf16Expand;
        const bool expand_once = kCanExpandOnce && tile_count(rows) >= 3 && g.scratch_b;
        if (expand_once) {
          expand_b(static_cast<const uint16_t*>(b), kl, g.scratch_b);
          b = g.scratch_b;
        }
        for (int64_t t = 0; t < tile_count(rows); t++) {
          const int64_t m = g.m0 + tile_begin(rows, t);
          const int r = static_cast<int>(tile_begin(rows, t + 1) - tile_begin(rows, t));
          float* c = edge ? g.scratch_c + (m - g.m0) * NR : g.C + m * g.ldc + n0;
          const int64_t ldc = edge ? NR : g.ldc;
          const bool preloaded = g.c_preloaded && !edge;
          const bool accumulate = !first || preloaded;
          if (pack) {
            const void* a = kMode == kBf16Dot ? static_cast<const void*>(static_cast<const uint32_t*>(a_block) +
                                                                         t * a_tile)
                                              : static_cast<const void*>(static_cast<const float*>(a_block) +
                                                                         t * a_tile);
            if (kCanExpandOnce && expand_once)
              call<kF32, true>(r, a, 0, b, kl, c, ldc, accumulate);
            else
              call<kMode, true>(r, a, 0, b, kl, c, ldc, accumulate);
          } else {
            if (kCanExpandOnce && expand_once)
              call<kF32, false>(r, g.A + m * g.lda + k0, g.lda, b, kl, c, ldc, accumulate);
            else
              call<kMode, false>(r, g.A + m * g.lda + k0, g.lda, b, kl, c, ldc, accumulate);
          }
          if (last) {
            const float* res = g.residual && !preloaded ? g.residual + m * g.ldr + n0 : nullptr;
            if (edge || g.bias || res || g.activation != Activation::None)
              epilogue(c, ldc, g.C + m * g.ldc + n0, g.ldc, r, nv, g.bias ? g.bias + n0 : nullptr, g.activation,
                       res, g.ldr);
          }
        }
      }
    }
  }

  static void block_f32(const BlockArgs& g) { block<kF32>(g); }
  static void block_bf16_expand(const BlockArgs& g) { block<kBf16Expand>(g); }
  static void block_bf16_dot(const BlockArgs& g) { block<kBf16Dot>(g); }
};

}  // namespace
}  // namespace gpt2::cpu::gemm
