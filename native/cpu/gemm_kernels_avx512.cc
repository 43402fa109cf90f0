// AVX-512 GEMM kernels (compiled with -mavx512f/bw/vl/dq -mavx512bf16 -mamx-*; called
// only when cpu_features().has_avx512()). 14x32 register block: 28 accumulators + 2 B
// vectors + the broadcast = 31 of the 32 zmm registers. The same template as the AVX2
// kernels (gemm_microkernel.h) with 16 lanes; its logic is tested on AVX2 machines through
// kernels_avx2_wide_emulated().
//
// Only constant data at namespace scope here: no static initialiser may run AVX-512 code
// on a CPU without it. AMX (tdpbf16ps on 16x16 tiles) serves bf16 weights at large M; its
// addressing is shared with a portable emulation tested everywhere (gemm_amx.h).
#include <immintrin.h>

#include "cpu/gemm_amx.h"
#include "cpu/gemm_microkernel.h"

namespace gpt2::cpu::gemm {
namespace {

struct Avx512Ops : VecTypes<16> {
  GPT2_VINLINE V bcast(const float* p) { return (V)_mm512_set1_ps(*p); }
  GPT2_VINLINE V fma(V a, V b, V c) { return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
  GPT2_VINLINE V dpbf16(V acc, VU a, VU b) {
    return (V)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
  }
};
// Without AVX512-BF16 the "dot" op is not used (the expand path is); this variant keeps
// the emulation so the type is complete.
struct Avx512NoBf16Ops : VecTypes<16> {
  GPT2_VINLINE V bcast(const float* p) { return (V)_mm512_set1_ps(*p); }
  GPT2_VINLINE V fma(V a, V b, V c) { return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
  GPT2_VINLINE V dpbf16(V acc, VU a, VU b) {
    const VU hi = VU{} + 0xffff0000u;
    acc = fma((V)(a & hi), (V)(b & hi), acc);
    return fma((V)(a << 16), (V)(b << 16), acc);
  }
};
using Avx512Gemm = Gemm<Avx512Ops, 14>;
using Avx512NoBf16Gemm = Gemm<Avx512NoBf16Ops, 14>;

// The real tile instructions. The intrinsics take tile numbers as literal tokens, hence
// the explicit cases.
struct AmxTiles {
  static void configure() {
    alignas(64) uint8_t cfg[64] = {};
    cfg[0] = 1;  // palette 1
    for (int t = 0; t < 8; t++) {
      cfg[16 + 2 * t] = 64;  // colsb (uint16, little-endian)
      cfg[48 + t] = 16;      // rows
    }
    _tile_loadconfig(cfg);
  }
  static void release() { _tile_release(); }
  template <int T>
  static void zero() {
    if constexpr (T == 0) _tile_zero(0);
    else if constexpr (T == 1) _tile_zero(1);
    else if constexpr (T == 2) _tile_zero(2);
    else if constexpr (T == 3) _tile_zero(3);
    else static_assert(T < 4, "only C tiles are zeroed");
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    if constexpr (T == 4) _tile_loadd(4, p, stride);
    else if constexpr (T == 5) _tile_loadd(5, p, stride);
    else if constexpr (T == 6) _tile_loadd(6, p, stride);
    else if constexpr (T == 7) _tile_loadd(7, p, stride);
    else static_assert(T >= 4, "only A/B tiles are loaded");
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    if constexpr (T == 0) _tile_stored(0, p, stride);
    else if constexpr (T == 1) _tile_stored(1, p, stride);
    else if constexpr (T == 2) _tile_stored(2, p, stride);
    else if constexpr (T == 3) _tile_stored(3, p, stride);
    else static_assert(T < 4, "only C tiles are stored");
  }
  template <int TC, int TA, int TB>
  static void dp() {
    if constexpr (TC == 0 && TA == 4 && TB == 6) _tile_dpbf16ps(0, 4, 6);
    else if constexpr (TC == 1 && TA == 4 && TB == 7) _tile_dpbf16ps(1, 4, 7);
    else if constexpr (TC == 2 && TA == 5 && TB == 6) _tile_dpbf16ps(2, 5, 6);
    else if constexpr (TC == 3 && TA == 5 && TB == 7) _tile_dpbf16ps(3, 5, 7);
    else static_assert(TC < 0, "tile combination not used by amx_block");
  }
};
void block_amx(const BlockArgs& g) { amx_block<AmxTiles, Avx512Gemm>(g); }

constexpr KernelSet kAvx512 = {"avx512", 14, Avx512NoBf16Gemm::NR, 16, false, Avx512NoBf16Gemm::block_f32,
                               Avx512NoBf16Gemm::block_bf16_expand, nullptr, Avx512NoBf16Gemm::pack_a_f32,
                               Avx512NoBf16Gemm::epilogue_rows};
constexpr KernelSet kAvx512Bf16 = {"avx512bf16", 14, Avx512Gemm::NR, 16, true, Avx512Gemm::block_f32,
                                   Avx512Gemm::block_bf16_dot, nullptr, Avx512Gemm::pack_a_f32,
                                   Avx512Gemm::epilogue_rows, Avx512Gemm::pack_a_bf16_pairs, amx_pack_a_group};
constexpr KernelSet kAvx512Amx = {"avx512bf16-amx", 14, Avx512Gemm::NR, 16, true, Avx512Gemm::block_f32,
                                  Avx512Gemm::block_bf16_dot, block_amx, Avx512Gemm::pack_a_f32,
                                  Avx512Gemm::epilogue_rows, Avx512Gemm::pack_a_bf16_pairs, amx_pack_a_group};

}  // namespace

// The caller (gemm.cc) has checked cpu_features(): nothing here reads it, so no inline
// function from a shared header is compiled with AVX-512 flags.
const KernelSet* kernels_avx512(Avx512Variant v) {
  switch (v) {
    case Avx512Variant::Plain: return &kAvx512;
    case Avx512Variant::Bf16: return &kAvx512Bf16;
    case Avx512Variant::Amx: return &kAvx512Amx;
  }
  return &kAvx512;
}

}  // namespace gpt2::cpu::gemm
