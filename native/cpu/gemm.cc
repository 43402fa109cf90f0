// GEMM: weight packing, kernel dispatch, and the split of C into tasks for the pool.
// The micro-kernels live in gemm_microkernel.h; this file also instantiates them for the
// baseline (SSE2, 4-wide, no FMA) path.
#include "cpu/gemm.h"

#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/gemm_internal.h"
#include "cpu/gemm_amx.h"
#include "cpu/gemm_microkernel.h"
#include "cpu/host_memory.h"

namespace gpt2::cpu {

using gemm::BlockArgs;
using gemm::KernelSet;

// ---------------------------------------------------------------------------------------
// Baseline kernels: 4-wide GCC vectors (SSE2 on x86-64), multiply-add unfused.
namespace gemm {
namespace {
struct BaselineOps : VecTypes<4> {
  GPT2_VINLINE V bcast(const float* p) { const float x = *p; return V{x, x, x, x}; }
  GPT2_VINLINE V fma(V a, V b, V c) { return a * b + c; }
  GPT2_VINLINE V dpbf16(V acc, VU a, VU b) {
    const VU hi = VU{} + 0xffff0000u;
    acc = (V)(a & hi) * (V)(b & hi) + acc;
    return (V)(a << 16) * (V)(b << 16) + acc;
  }
};
using BaselineGemm = Gemm<BaselineOps, 4>;
const KernelSet kBaseline = {"baseline", 4, BaselineGemm::NR, 4, false, BaselineGemm::block_f32,
                             BaselineGemm::block_bf16_expand, nullptr, BaselineGemm::pack_a_f32,
                             BaselineGemm::epilogue_rows};
// The AMX emulation: 32-column panels like the AVX-512 path, the 16-wide template on
// plain GCC vectors (lowered to SSE2 here), tile instructions emulated.
struct Wide16PortableOps : VecTypes<16> {
  GPT2_VINLINE V bcast(const float* p) { return V{} + *p; }
  GPT2_VINLINE V fma(V a, V b, V c) { return a * b + c; }
  GPT2_VINLINE V dpbf16(V acc, VU a, VU b) {
    const VU hi = VU{} + 0xffff0000u;
    acc = (V)(a & hi) * (V)(b & hi) + acc;  // vdpbf16ps order: odd (high) pair element first
    return (V)(a << 16) * (V)(b << 16) + acc;
  }
};
using Wide16PortableGemm = Gemm<Wide16PortableOps, 14>;
void block_amx_emulated(const BlockArgs& g) { amx_block<EmulatedTiles, Wide16PortableGemm>(g); }
const KernelSet kAmxEmulated = {"amx-emulated", 14, 32, 16, true, Wide16PortableGemm::block_f32,
                                Wide16PortableGemm::block_bf16_dot, block_amx_emulated,
                                Wide16PortableGemm::pack_a_f32, Wide16PortableGemm::epilogue_rows,
                                Wide16PortableGemm::pack_a_bf16_pairs, amx_pack_a_group};
}  // namespace

const KernelSet* kernels_baseline() { return &kBaseline; }
const KernelSet* kernels_amx_emulated() { return &kAmxEmulated; }

namespace {
Isa g_isa_override = Isa::Auto;
Bf16Path g_bf16_path = Bf16Path::Auto;
}  // namespace

void set_isa_for_testing(Isa isa) { g_isa_override = isa; }
void set_bf16_path_for_testing(Bf16Path p) { g_bf16_path = p; }
bool amx_allowed() { return g_bf16_path == Bf16Path::Auto; }

const KernelSet* select_kernels() {
  const CpuFeatures& f = cpu_features();
  const KernelSet* k = nullptr;
  switch (g_isa_override) {
    case Isa::Auto:
      if (f.has_avx512())
        k = kernels_avx512(f.has_amx_bf16() && f.has_avx512_bf16() ? Avx512Variant::Amx
                           : f.has_avx512_bf16()                  ? Avx512Variant::Bf16
                                                                  : Avx512Variant::Plain);
      else if (f.has_avx2())
        k = kernels_avx2();
      break;
    case Isa::AmxEmulated: k = kernels_amx_emulated(); break;
    case Isa::Baseline: break;
    case Isa::Avx2: k = f.has_avx2() ? kernels_avx2() : nullptr; break;
    case Isa::Avx2WideEmulated: k = f.has_avx2() ? kernels_avx2_wide_emulated() : nullptr; break;
    case Isa::Avx2DotEmulated: k = f.has_avx2() ? kernels_avx2_dot_emulated() : nullptr; break;
    case Isa::Avx512:
      k = f.has_avx512() ? kernels_avx512(f.has_avx512_bf16() ? Avx512Variant::Bf16 : Avx512Variant::Plain) : nullptr;
      break;
  }
  return k ? k : kernels_baseline();
}

}  // namespace gemm

// ---------------------------------------------------------------------------------------
struct PackedWeight::Impl {
  int64_t K = 0, N = 0;
  int64_t panels = 0, panel_stride = 0;  // elements per panel
  WeightType type = WeightType::F32;
  const KernelSet* kernels = nullptr;
  void* data = nullptr;
  size_t bytes = 0;
  ~Impl() {
    host_free(data);
  }
};

PackedWeight::PackedWeight() = default;
PackedWeight::~PackedWeight() = default;
PackedWeight::PackedWeight(PackedWeight&&) noexcept = default;
PackedWeight& PackedWeight::operator=(PackedWeight&&) noexcept = default;
int64_t PackedWeight::K() const { return impl_ ? impl_->K : 0; }
int64_t PackedWeight::N() const { return impl_ ? impl_->N : 0; }
WeightType PackedWeight::type() const { return impl_ ? impl_->type : WeightType::F32; }
size_t PackedWeight::bytes() const { return impl_ ? impl_->bytes : 0; }
const char* PackedWeight::kernel_name() const { return impl_ ? impl_->kernels->name : "none"; }
PackedWeight::Panels PackedWeight::panels() const {
  return impl_ ? Panels{impl_->data, impl_->kernels->nr, impl_->panel_stride} : Panels{nullptr, 0, 0};
}

PackedWeight PackedWeight::pack(const float* w, int64_t K, int64_t N, bool transposed, WeightType type) {
  if (!w) throw_type_error("PackedWeight::pack: weight is null");
  if (K <= 0 || N <= 0 || K > (int64_t(1) << 31) || N > (int64_t(1) << 31))
    throw_range_error("PackedWeight::pack: bad shape [" + std::to_string(K) + ", " + std::to_string(N) + "]");
  auto impl = std::make_unique<Impl>();
  const KernelSet* ks = gemm::select_kernels();
  const int64_t NR = ks->nr;
  impl->K = K;
  impl->N = N;
  impl->type = type;
  impl->kernels = ks;
  impl->panels = (N + NR - 1) / NR;
  const auto src = [&](int64_t k, int64_t n) { return transposed ? w[n * K + k] : w[k * N + n]; };
  if (type == WeightType::F32) {
    impl->panel_stride = K * NR;
    impl->bytes = size_t(impl->panels * impl->panel_stride) * sizeof(float);
    impl->data = host_alloc(impl->bytes);
    float* dst = static_cast<float*>(impl->data);
    for (int64_t p = 0; p < impl->panels; p++) {
      float* d = dst + p * impl->panel_stride;
      const int64_t n0 = p * NR;
      if (!transposed) {
        for (int64_t k = 0; k < K; k++)
          for (int64_t c = 0; c < NR; c++) d[k * NR + c] = n0 + c < N ? w[k * N + n0 + c] : 0.0f;
      } else {
        for (int64_t c = 0; c < NR; c++) {
          if (n0 + c < N) {
            const float* s = w + (n0 + c) * K;
            for (int64_t k = 0; k < K; k++) d[k * NR + c] = s[k];
          } else {
            for (int64_t k = 0; k < K; k++) d[k * NR + c] = 0.0f;
          }
        }
      }
    }
  } else {
    const int64_t Kp = K + (K & 1);
    impl->panel_stride = Kp * NR;
    impl->bytes = size_t(impl->panels * impl->panel_stride) * sizeof(uint16_t);
    impl->data = host_alloc(impl->bytes);
    uint16_t* dst = static_cast<uint16_t*>(impl->data);
    for (int64_t p = 0; p < impl->panels; p++) {
      uint16_t* d = dst + p * impl->panel_stride;
      const int64_t n0 = p * NR;
      for (int64_t c = 0; c < NR; c++) {
        const int64_t n = n0 + c;
        for (int64_t k = 0; k < Kp; k++)
          d[(k / 2) * 2 * NR + c * 2 + (k & 1)] = n < N && k < K ? gemm::float_to_bf16(src(k, n)) : 0;
      }
    }
  }
  PackedWeight out;
  out.impl_ = std::move(impl);
  return out;
}

// ---------------------------------------------------------------------------------------
namespace {

struct AlignedBuffer {
  void* p = nullptr;
  size_t size = 0;
  ~AlignedBuffer() { host_free(p); }
  // Grows geometrically; gives a large buffer back when a call needs under a quarter of it, so
  // one long prefill (4096 tokens: 48 MiB of packed A) does not stay resident on every thread
  // that ever ran one (host_alloc unmaps blocks of 1 MiB and more when they are freed).
  // Reallocating costs page faults, small next to the matmuls that need it.
  void* get(size_t bytes) {
    const bool shrink = size > kKeepBytes && bytes < size / 4;
    if (bytes > size || shrink) {
      const size_t want = shrink ? std::max(bytes, kKeepBytes) : std::max(bytes, size * 2);
      host_free(p);
      p = nullptr;  // a failed host_alloc leaves the buffer empty, not dangling
      size = 0;
      p = host_alloc(want);
      size = want;
    }
    return p;
  }
  static constexpr size_t kKeepBytes = size_t(16) << 20;
};
// Per-thread packing buffers: pool threads are persistent, so these live as long as they do.
thread_local AlignedBuffer t_scratch_a, t_scratch_b, t_scratch_c;
// A packed once per matmul for all tasks (the calling thread's; pool threads read it).
thread_local AlignedBuffer t_packed_a;

bool ranges_overlap(const float* a, int64_t rows_a, int64_t ld_a, const float* b, int64_t ld_b, int64_t rows,
                    int64_t cols) {
  const float* a_end = a + (rows_a - 1) * ld_a + cols;
  const float* b_end = b + (rows - 1) * ld_b + cols;
  return a < b_end && b < a_end;
}

}  // namespace

void matmul(ThreadPool& pool, const float* A, int64_t M, int64_t lda, const PackedWeight& W, float* C, int64_t ldc,
            const Epilogue& ep) {
  const PackedWeight::Impl* w = W.impl();
  if (!w) throw_type_error("matmul: weight is empty");
  if (M <= 0) return;
  const int64_t K = w->K, N = w->N;
  if (!A || !C) throw_type_error("matmul: null input or output");
  if (lda < K || ldc < N || (ep.residual && ep.ldr < N))
    throw_range_error("matmul: row stride shorter than the row (lda " + std::to_string(lda) + ", K " +
                      std::to_string(K) + ", ldc " + std::to_string(ldc) + ", N " + std::to_string(N) + ")");
  const KernelSet& ks = *w->kernels;
  const int64_t MR = ks.mr, NR = ks.nr;

  BlockArgs g{};
  g.A = A;
  g.lda = lda;
  g.B = w->data;
  g.K = K;
  g.N = N;
  g.panel_stride = w->panel_stride;
  g.C = C;
  g.ldc = ldc;
  g.bias = ep.bias;
  g.activation = ep.activation;
  g.residual = ep.residual;
  g.ldr = ep.ldr;

  // A residual that shares memory with C: x += f(x·W) with C == residual is the common
  // case and runs in place (C starts as the accumulator); anything else gets a copy.
  std::vector<float> residual_copy;
  if (ep.residual && ranges_overlap(C, M, ldc, ep.residual, ep.ldr, M, N)) {
    if (ep.residual == C && ep.ldr == ldc && ep.activation == Activation::None) {
      g.c_preloaded = true;
    } else {
      residual_copy.resize(size_t(M * N));
      for (int64_t m = 0; m < M; m++)
        std::copy(ep.residual + m * ep.ldr, ep.residual + m * ep.ldr + N, residual_copy.begin() + m * N);
      g.residual = residual_copy.data();
      g.ldr = N;
    }
  }

  void (*block)(const BlockArgs&) = w->type == WeightType::F32 ? ks.block_f32 : ks.block_bf16;
  // AMX from 4 rows up: the tiles are padded to 32 rows, but below 32 the matmul is bound by
  // the weight stream, which the tile loads read faster than the vdpbf16ps kernels do
  // (decode batch 8: ~2-2.5x fp32 per CPU-second against ~1.4x; 1-2 rows: no clear gain).
  constexpr int64_t kAmxMinRows = 4;
  const bool amx = w->type == WeightType::BF16 && ks.block_amx && gemm::amx_allowed() && M >= kAmxMinRows &&
                   K % 32 == 0;
  if (amx) block = ks.block_amx;

  // Blocking. K: one block when a single row tile (decode: B streams once from memory);
  // otherwise kc so a panel's K block (kc x NR) sits in L1 while all row tiles use it.
  const int64_t panels = w->panels;
  int64_t kc = K;
  if (M > MR && !amx) {
    kc = NR >= 32 ? 192 : 256;
    if (K <= kc + kc / 2) kc = K;
  }
  if (kc < K) kc += kc & 1;  // bf16 pairs never straddle blocks
  // M: blocks of at most ~192 rows (packed A's K block ~150-200 KB, in L2), balanced in
  // whole row tiles: 128 rows stay one block (both threads share the B stream instead of
  // each reading it for its half of the rows), 1024 rows -> 6 blocks of 182 (MR = 14).
  int64_t mblocks = 1, mb = M;
  if (amx) {
    // Up to 128 rows stay one block, so the threads split N and stream distinct weight
    // panels (M = 128: +0-7% per CPU-second over two 64-row blocks that both read every panel).
    mblocks = M <= 128 ? 1 : (M + 63) / 64;
    mb = mblocks == 1 ? M : 64;
  } else if (M > 192) {
    mblocks = (M + 191) / 192;
    mb = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
    mblocks = (M + mb - 1) / mb;
  }
  // N: enough tasks for the pool to balance (8 per thread: a thread descheduled on this
  // shared machine leaves a shorter tail; c_attn at M = 128 +17%), at most 8 panels per task when
  // there are many row blocks (the B block stays in L2).
  const int threads = pool.size();
  int64_t nb = (panels * mblocks + 8 * threads - 1) / (8 * threads);
  if (mblocks > 1) nb = std::min<int64_t>(nb, amx ? 4 : 8);
  nb = std::clamp<int64_t>(nb, 1, panels);
  const int64_t nblocks = (panels + nb - 1) / nb;
  g.pack_a = mb > MR;

  const int64_t mb_round = (mb + MR - 1) / MR * MR;
  const size_t scratch_a_bytes = size_t(mb_round + 32) * size_t(kc + 32) * sizeof(float);
  const size_t scratch_b_bytes = size_t(kc + 2) * size_t(NR) * sizeof(float);
  const size_t scratch_c_bytes = size_t(mb_round + 32) * size_t(NR) * sizeof(float);

  // fp32 kernels (fp32 weights, or bf16 ones expanded to fp32) on several row tiles: pack
  // all of A once, in parallel, instead of once per task (N-block) in every task.
  const bool fp32_kernel = w->type == WeightType::F32 || (!amx && !ks.bf16_rounds_activations);
  if (g.pack_a && fp32_kernel) {
    const int64_t kblocks = (K + kc - 1) / kc;
    float* packed = static_cast<float*>(t_packed_a.get(size_t(mblocks * mb_round * K) * sizeof(float)));
    pool.run(mblocks * kblocks, [&](int64_t i, int) {
      const int64_t bm = i / kblocks, k0 = (i % kblocks) * kc;
      const int64_t m0 = bm * mb, rows = std::min(M, m0 + mb) - m0;
      ks.pack_a(A + m0 * lda + k0, lda, rows, std::min(kc, K - k0), packed + (bm * K + k0) * mb_round);
    });
    g.a_packed = packed;
    g.a_packed_rows = mb_round;
  }

  // bf16 dot kernels (vdpbf16ps): round A to bf16 pairs once, in parallel, instead of in
  // every task (decode: 16 tasks each rounding the same rows cost ~10-50% of the matmul).
  const bool bf16_dot = w->type == WeightType::BF16 && !amx && ks.bf16_rounds_activations;
  if (bf16_dot) {
    const int64_t kblocks = (K + kc - 1) / kc, kpairs = (K + 1) / 2;
    uint32_t* packed = static_cast<uint32_t*>(t_packed_a.get(size_t(mblocks * mb_round * kpairs) * sizeof(uint32_t)));
    pool.run(mblocks * kblocks, [&](int64_t i, int) {
      const int64_t bm = i / kblocks, k0 = (i % kblocks) * kc;
      const int64_t m0 = bm * mb, rows = std::min(M, m0 + mb) - m0;
      ks.pack_a_pairs(A + m0 * lda + k0, lda, rows, std::min(kc, K - k0), packed + (bm * kpairs + k0 / 2) * mb_round);
    });
    g.a_pairs = packed;
    g.a_packed_rows = mb_round;
  }

  // AMX: round all of A to bf16 tiles once, in parallel (16-row groups, up to a multiple of 32).
  if (amx) {
    const int64_t groups = (M + 31) / 32 * 2;
    uint16_t* packed = static_cast<uint16_t*>(t_packed_a.get(size_t(groups * 16 * K) * sizeof(uint16_t)));
    pool.run(groups, [&](int64_t i, int) {
      const int64_t rows = std::clamp<int64_t>(M - i * 16, 0, 16);
      ks.pack_a_amx(rows > 0 ? A + i * 16 * lda : A, lda, rows, K, packed + i * 16 * K);
    });
    g.a_bf16 = packed;
  }

  auto task = [&](int64_t i, int) {
    BlockArgs t = g;
    const int64_t bm = i % mblocks, bn = i / mblocks;
    t.m0 = bm * mb;
    t.m1 = std::min(M, t.m0 + mb);
    t.p0 = bn * nb;
    t.p1 = std::min(panels, t.p0 + nb);
    t.kc = kc;
    if (t.a_packed) t.a_packed += bm * K * mb_round;
    if (t.a_pairs) t.a_pairs += bm * ((K + 1) / 2) * mb_round;
    t.scratch_a = amx || bf16_dot ? nullptr : t_scratch_a.get(scratch_a_bytes);
    t.scratch_c = static_cast<float*>(t_scratch_c.get(scratch_c_bytes));
    t.scratch_b = w->type == WeightType::BF16 && !amx ? static_cast<float*>(t_scratch_b.get(scratch_b_bytes)) : nullptr;
    block(t);
  };
  const int64_t tasks = mblocks * nblocks;
  if (tasks == 1) {
    task(0, 0);
  } else {
    pool.run(tasks, task);
  }
}

}  // namespace gpt2::cpu
