// AVX2+FMA GEMM kernels (compiled with -mavx2 -mfma -mf16c; called only when
// cpu_features().has_avx2()). 6x16 register block: 12 accumulators + 2 B vectors + the
// broadcast A value = 15 of the 16 ymm registers.
//
// Also here, for tests only: the 16-wide (AVX-512) template instantiated on 64-byte GCC
// vectors, which GCC lowers to pairs of AVX2 registers, so the wide kernels' logic (14x32
// tiles, 32-column panels, the vdpbf16ps pair path) runs on this machine.
#include <immintrin.h>

// The 64-byte vector type is internal to this file; its by-value ABI does not matter.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "cpu/gemm_microkernel.h"

namespace gpt2::cpu::gemm {
namespace {

struct Avx2Ops : VecTypes<8> {
  GPT2_VINLINE V bcast(const float* p) { return (V)_mm256_broadcast_ss(p); }
  GPT2_VINLINE V fma(V a, V b, V c) { return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
  // vdpbf16ps emulated: products of bf16 values are exact in fp32, so fma = multiply + add.
  GPT2_VINLINE V dpbf16(V acc, VU a, VU b) {
    const VU hi = VU{} + 0xffff0000u;
    acc = fma((V)(a & hi), (V)(b & hi), acc);
    return fma((V)(a << 16), (V)(b << 16), acc);
  }
};
using Avx2Gemm = Gemm<Avx2Ops, 6>;

// 64-byte vectors on AVX2: each operation is done on the two 32-byte halves.
struct WideEmulatedOps : VecTypes<16> {
  GPT2_VINLINE V bcast(const float* p) {
    const __m256 h[2] = {_mm256_broadcast_ss(p), _mm256_broadcast_ss(p)};
    V r;
    std::memcpy(&r, h, sizeof r);
    return r;
  }
  GPT2_VINLINE V fma(V a, V b, V c) {
    __m256 ah[2], bh[2], ch[2];
    std::memcpy(ah, &a, sizeof a);
    std::memcpy(bh, &b, sizeof b);
    std::memcpy(ch, &c, sizeof c);
    ch[0] = _mm256_fmadd_ps(ah[0], bh[0], ch[0]);
    ch[1] = _mm256_fmadd_ps(ah[1], bh[1], ch[1]);
    V r;
    std::memcpy(&r, ch, sizeof r);
    return r;
  }
  GPT2_VINLINE V dpbf16(V acc, VU a, VU b) {
    const VU hi = VU{} + 0xffff0000u;
    acc = fma((V)(a & hi), (V)(b & hi), acc);
    return fma((V)(a << 16), (V)(b << 16), acc);
  }
};
using WideGemm = Gemm<WideEmulatedOps, 14>;

constexpr KernelSet kAvx2 = {"avx2", 6, Avx2Gemm::NR, 8, false, Avx2Gemm::block_f32, Avx2Gemm::block_bf16_expand,
                             nullptr, Avx2Gemm::pack_a_f32, Avx2Gemm::epilogue_rows};
constexpr KernelSet kWide = {"avx512-emulated", 14, WideGemm::NR, 16, false, WideGemm::block_f32,
                             WideGemm::block_bf16_expand, nullptr, WideGemm::pack_a_f32, WideGemm::epilogue_rows};
constexpr KernelSet kWideDot = {"avx512bf16-emulated", 14, WideGemm::NR, 16, true, WideGemm::block_f32,
                                WideGemm::block_bf16_dot, nullptr, WideGemm::pack_a_f32, WideGemm::epilogue_rows,
                                WideGemm::pack_a_bf16_pairs};

}  // namespace

const KernelSet* kernels_avx2() { return &kAvx2; }
const KernelSet* kernels_avx2_wide_emulated() { return &kWide; }
const KernelSet* kernels_avx2_dot_emulated() { return &kWideDot; }

}  // namespace gpt2::cpu::gemm
