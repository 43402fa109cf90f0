// Internals shared by gemm.cc (packing, threading, dispatch) and the ISA-specific kernel
// files (gemm_kernels_*.cc), plus the hooks the tests use. Not part of the public contract.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/gemm.h"

namespace gpt2::cpu::gemm {

// Packed weight layouts (NR = columns per panel, a multiple of the vector width):
//   F32:  panel p holds columns [p*NR, p*NR+NR) as [K][NR] floats, contiguous; panels
//         follow each other, so a range of panels is one sequential stream (decode).
//   BF16: panel p holds [Kp/2][NR][2] bf16 (Kp = K rounded up to even): for each pair of
//         rows k = 2i, 2i+1 and each column, the two values side by side. This is the
//         "VNNI" pair layout vdpbf16ps and AMX's tdpbf16ps B tiles read, and the AVX2
//         path expands each 32-bit pair into two fp32 rows with a shift and a mask.
// Columns past N and rows past K are zero.

// One task's share of C: rows [m0, m1) x panels [p0, p1), all of K in blocks of kc.
struct BlockArgs {
  const float* A;
  int64_t lda;
  const void* B;          // packed panels
  int64_t K, N;
  int64_t panel_stride;   // elements (floats or uint16) per panel
  float* C;
  int64_t ldc;
  const float* bias;
  Activation activation;
  const float* residual;  // nullptr: none
  int64_t ldr;
  // C already holds the residual (residual == C, no activation): the first K block
  // accumulates onto C instead of overwriting it, and the epilogue adds only the bias.
  bool c_preloaded;
  int64_t m0, m1, p0, p1;
  int64_t kc;             // K block (even)
  bool pack_a;            // copy A's block into the micro-kernel's order first
  // A already packed for all tasks (fp32 kernels): the K block starting at k0 of this
  // task's rows is at a_packed + k0 * a_packed_rows, laid out as pack_a_f32 writes it
  // (a_packed_rows = the row block rounded up to MR). nullptr: pack per task if pack_a.
  const float* a_packed;
  int64_t a_packed_rows;
  // bf16 dot kernels: A rounded to bf16 pairs once for all tasks, laid out like a_packed
  // (K block k0 at a_pairs + k0 / 2 * a_packed_rows, as pack_a_bf16_pairs writes it).
  const uint32_t* a_pairs;
  // AMX: all of A as amx_pack_a_group writes it (rows padded to 32), for every task.
  const uint16_t* a_bf16;
  void* scratch_a;        // >= (m1-m0 rounded up to MR) * kc floats, 64-byte aligned
  float* scratch_c;       // >= (m1-m0 rounded up to MR) * NR floats: the last (partial) panel
  float* scratch_b;       // >= kc * NR floats (bf16 panel block expanded to fp32), or nullptr
};

// The kernels one ISA provides. The F32 and BF16 block functions compute a BlockArgs
// task end to end (A packing, K loop, micro-kernels, epilogue).
struct KernelSet {
  const char* name;
  int mr, nr;
  int vector_width;
  // bf16 path rounds activations to bf16 too (vdpbf16ps / AMX); otherwise it expands
  // the bf16 weights to fp32 in registers and multiplies in fp32.
  bool bf16_rounds_activations;
  void (*block_f32)(const BlockArgs&);
  void (*block_bf16)(const BlockArgs&);
  // AMX (bf16, large M, K % 32 == 0); nullptr where not compiled or not usable.
  void (*block_amx)(const BlockArgs&);
  // A[rows, kl] (stride lda) -> row tiles [kl][MR] one after another, as the fp32
  // micro-kernels read them (rows past a short tile are left as they are: never read).
  void (*pack_a)(const float* A, int64_t lda, int64_t rows, int64_t kl, float* dst);
  // Applies the epilogue to rows of an already computed C (used for tests of the
  // vectorised activations): C[r, n] = act(C[r,n] + bias[n]) + residual[r, n].
  void (*epilogue_rows)(float* C, int64_t ldc, int64_t rows, int64_t cols, const float* bias, Activation act,
                        const float* residual, int64_t ldr);
  // With bf16_rounds_activations: A[rows, kl] -> row tiles of bf16 pairs [ceil(kl/2)][MR]
  // (uint32, low half = even k), as the vdpbf16ps micro-kernels read them.
  void (*pack_a_pairs)(const float* A, int64_t lda, int64_t rows, int64_t kl, uint32_t* dst);
  // With block_amx: rounds 16 rows of A (`rows` <= 16 real, the rest zero) to bf16 A tiles.
  void (*pack_a_amx)(const float* A, int64_t lda, int64_t rows, int64_t K, uint16_t* dst);
};

// Kernel sets by file. Each returns nullptr when the file's ISA flags were not compiled in.
const KernelSet* kernels_baseline();            // gemm.cc: 4-wide vectors (SSE2), no FMA
const KernelSet* kernels_avx2();                // gemm_kernels_avx2.cc: 8-wide AVX2+FMA
const KernelSet* kernels_avx2_wide_emulated();  // gemm_kernels_avx2.cc: the 16-wide (AVX-512) template,
                                                //   on 64-byte GCC vectors lowered to AVX2 (tests only)
const KernelSet* kernels_avx2_dot_emulated();   // same, with the AVX512-BF16 path (vdpbf16ps emulated)
// gemm_kernels_avx512.cc: AVX-512; with AVX512-BF16 (vdpbf16ps); with AMX as well.
enum class Avx512Variant { Plain, Bf16, Amx };
const KernelSet* kernels_avx512(Avx512Variant v);
const KernelSet* kernels_amx_emulated();        // gemm.cc: 16-wide template on plain vectors + AMX
                                                //   tiles emulated (tests only, slow)

// Which kernel set pack() picks: the best cpu_features() allows, unless a test forced one.
enum class Isa { Auto, Baseline, Avx2, Avx2WideEmulated, Avx2DotEmulated, AmxEmulated, Avx512 };
void set_isa_for_testing(Isa isa);  // not thread-safe; tests only
const KernelSet* select_kernels();  // for the current setting; never nullptr

// The ISA the kernels should use for a matmul (what the heuristics choose); exposed so
// tests can force the AMX path off or on (Auto = let the dispatcher decide).
enum class Bf16Path { Auto, NoAmx };
void set_bf16_path_for_testing(Bf16Path p);
bool amx_allowed();

// bfloat16 conversion, round to nearest even (NaN stays NaN).
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

}  // namespace gpt2::cpu::gemm
