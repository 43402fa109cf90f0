// AVX-512 GEMM kernels (compiled with -mavx512f/bw/vl/dq -mavx512bf16 -mamx-*; called
// only when cpu_features().has_avx512()). 14x32 register block: 28 accumulators + 2 B
// vectors + the broadcast = 31 of the 32 zmm registers. The same template as the AVX2
// kernels (gemm_microkernel.h) with 16 lanes; its logic is tested on AVX2 machines through
// kernels_avx2_wide_emulated().
//
// Only constant data at namespace scope here: no static initialiser may run AVX-512 code
// on a CPU without it.
#include <immintrin.h>

#include "core/cpu_features.h"
#include "cpu/gemm_microkernel.h"

namespace gpt2::cpu::gemm {
namespace {

struct Avx512Ops : VecTypes<16> {
  static V fma(V a, V b, V c) { return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
  static V dpbf16(V acc, VU a, VU b) {
    return (V)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
  }
};
// Without AVX512-BF16 the "dot" op is not used (the expand path is); this variant keeps
// the emulation so the type is complete.
struct Avx512NoBf16Ops : VecTypes<16> {
  static V fma(V a, V b, V c) { return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
  static V dpbf16(V acc, VU a, VU b) {
    const VU hi = VU{} + 0xffff0000u;
    acc = fma((V)(a & hi), (V)(b & hi), acc);
    return fma((V)(a << 16), (V)(b << 16), acc);
  }
};
using Avx512Gemm = Gemm<Avx512Ops, 14>;
using Avx512NoBf16Gemm = Gemm<Avx512NoBf16Ops, 14>;

constexpr KernelSet kAvx512 = {"avx512", 14, Avx512NoBf16Gemm::NR, 16, false, Avx512NoBf16Gemm::block_f32,
                               Avx512NoBf16Gemm::block_bf16_expand, nullptr, Avx512NoBf16Gemm::epilogue_rows};
constexpr KernelSet kAvx512Bf16 = {"avx512bf16", 14, Avx512Gemm::NR, 16, true, Avx512Gemm::block_f32,
                                   Avx512Gemm::block_bf16_dot, nullptr, Avx512Gemm::epilogue_rows};

}  // namespace

const KernelSet* kernels_avx512() {
  const CpuFeatures& f = cpu_features();
  if (!f.has_avx512()) return nullptr;
  return f.has_avx512_bf16() ? &kAvx512Bf16 : &kAvx512;
}

}  // namespace gpt2::cpu::gemm
