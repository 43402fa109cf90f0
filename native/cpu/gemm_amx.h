// AMX bf16 block (tdpbf16ps), written over a Tiles policy so the same code runs with the
// real tile instructions (gemm_kernels_avx512.cc) and with a portable emulation of them
// (gemm.cc), which the tests run on machines without AMX to check the addressing.
//
// Layout (panel NR = 32): the bf16 weight panel is [K/2][32][2] bf16, i.e. for each pair
// of K rows a 128-byte row holding 32 column pairs. A B tile is 16 such pair rows (32 K
// values) x 16 columns: rows of 64 bytes at stride 128 bytes; the second 16 columns start
// 64 bytes further. A is rounded to bf16 once per matmul into contiguous 1 KB A tiles
// (amx_pack_a_group; rows padded to 32 with zeros). Each step computes a
// 32 x 32 block of C in four 16 x 16 fp32 tiles:  C(i,j) += A(i) * B(j).
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/gemm_microkernel.h"

namespace gpt2::cpu::gemm {
namespace {

// A rounded to bf16 in AMX A-tile order, packed once per matmul: for each group of 16
// rows and each K step of 32, one 16 x 32 bf16 tile (1 KB, rows of 64 bytes) after the
// other, so rows r..r+15 (r a multiple of 16) at K step k start at a + r * K + k * 16.
// Packs one group: `rows` (0..16) rows of A, the rest of the group zero.
void amx_pack_a_group(const float* A, int64_t lda, int64_t rows, int64_t K, uint16_t* dst) {
  using T = VecTypes<16>;
  typedef uint16_t VH __attribute__((vector_size(32)));
  for (int64_t k = 0; k < K; k += 32) {
    uint16_t* tile = dst + k * 16;
    for (int64_t r = 0; r < 16; r++) {
      if (r >= rows) {
        std::memset(tile + r * 32, 0, 64);
        continue;
      }
      const float* s = A + r * lda + k;
      for (int h = 0; h < 2; h++) {
        T::VU u;
        std::memcpy(&u, s + 16 * h, 64);
        // bf16_bits, 16 lanes at a time: round to nearest even, NaN stays a quiet NaN.
        const T::VU rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const T::VU quiet = (u >> 16) | 0x40u;
        const VH v = __builtin_convertvector((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded, VH);
        std::memcpy(tile + r * 32 + 16 * h, &v, 32);
      }
    }
  }
}

// Tile numbers: C00 C01 C10 C11 = 0..3, A0 A1 = 4, 5, B0 B1 = 6, 7. All tiles are
// configured 16 rows x 64 bytes.
template <class Tiles, class EpilogueGemm>
void amx_block(const BlockArgs& g) {
  constexpr int NR = 32;
  static_assert(EpilogueGemm::NR == NR, "AMX path needs 32-column panels");
  const int64_t K = g.K;  // multiple of 32 (checked by the dispatcher)
  const int64_t rows = g.m1 - g.m0;
  const uint16_t* a = g.a_bf16 + g.m0 * K;  // m0 is a multiple of 32
  float* c_tile = g.scratch_c;  // [32][32] fp32
  const int64_t b_stride = NR * 4, c_stride = NR * 4;  // bytes
  Tiles::configure();
  for (int64_t p = g.p0; p < g.p1; p++) {
    const uint16_t* panel = static_cast<const uint16_t*>(g.B) + p * g.panel_stride;
    const int64_t n0 = p * NR;
    const int64_t nv = imin(NR, g.N - n0);
    for (int64_t m = 0; m < rows; m += 32) {
      Tiles::template zero<0>();
      Tiles::template zero<1>();
      Tiles::template zero<2>();
      Tiles::template zero<3>();
      const uint16_t* a0 = a + m * K;
      const uint16_t* a1 = a0 + 16 * K;
      for (int64_t k = 0; k < K; k += 32) {
        const uint16_t* b0 = panel + (k / 2) * NR * 2;
        Tiles::template load<4>(a0 + k * 16, 64);
        Tiles::template load<5>(a1 + k * 16, 64);
        Tiles::template load<6>(b0, b_stride);
        Tiles::template load<7>(b0 + 32, b_stride);  // columns 16..31: 64 bytes on
        Tiles::template dp<0, 4, 6>();
        Tiles::template dp<1, 4, 7>();
        Tiles::template dp<2, 5, 6>();
        Tiles::template dp<3, 5, 7>();
      }
      Tiles::template store<0>(c_tile, c_stride);
      Tiles::template store<1>(c_tile + 16, c_stride);
      Tiles::template store<2>(c_tile + 16 * NR, c_stride);
      Tiles::template store<3>(c_tile + 16 * NR + 16, c_stride);
      const int64_t r = imin(32, rows - m);
      const int64_t row = g.m0 + m;
      // C holds the residual itself when preloaded: it is added like a separate one.
      EpilogueGemm::epilogue(c_tile, NR, g.C + row * g.ldc + n0, g.ldc, r, nv, g.bias ? g.bias + n0 : nullptr,
                             g.activation, g.residual ? g.residual + row * g.ldr + n0 : nullptr, g.ldr);
    }
  }
  Tiles::release();
}

// Portable emulation of the eight tiles (16 rows x 64 bytes each) and the tile
// instructions used above, following the ISA reference's pseudo-code for tdpbf16ps: for
// each output element and each K pair, add the even (low) element's product, then the
// odd one's, in fp32 (products of bf16 values are exact in fp32).
struct EmulatedTiles {
  static inline thread_local uint8_t tile[8][16][64];
  static void configure() {}
  static void release() {}
  template <int T>
  static void zero() {
    std::memset(tile[T], 0, sizeof tile[T]);
  }
  template <int T>
  static void load(const void* base, int64_t stride) {
    for (int r = 0; r < 16; r++) std::memcpy(tile[T][r], static_cast<const uint8_t*>(base) + r * stride, 64);
  }
  template <int T>
  static void store(void* base, int64_t stride) {
    for (int r = 0; r < 16; r++) std::memcpy(static_cast<uint8_t*>(base) + r * stride, tile[T][r], 64);
  }
  template <int TC, int TA, int TB>
  static void dp() {
    for (int m = 0; m < 16; m++) {
      float c[16];
      std::memcpy(c, tile[TC][m], 64);
      uint16_t arow[32];
      std::memcpy(arow, tile[TA][m], 64);
      for (int kp = 0; kp < 16; kp++) {
        uint16_t brow[32];
        std::memcpy(brow, tile[TB][kp], 64);
        for (int n = 0; n < 16; n++) {
          c[n] += bf16_value(arow[2 * kp]) * bf16_value(brow[2 * n]);
          c[n] += bf16_value(arow[2 * kp + 1]) * bf16_value(brow[2 * n + 1]);
        }
      }
      std::memcpy(tile[TC][m], c, 64);
    }
  }
};

}  // namespace
}  // namespace gpt2::cpu::gemm
