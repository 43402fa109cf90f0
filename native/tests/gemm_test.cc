// GEMM: every kernel path this machine can run (baseline, AVX2, the AVX-512 template
// emulated on AVX2, the AVX512-BF16 pair path emulated) against matmul_reference, on odd
// shapes, both weight layouts, every epilogue, residual aliasing C, and row strides.
// GPT2_CPU_ISA=baseline|avx2 caps what runs (select_kernels follows cpu_features()).
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::cpu;
using gemm::Isa;

namespace {

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct IsaCase {
  Isa isa;
  const char* name;
};
// The kernel sets this machine can run (after the GPT2_CPU_ISA cap).
std::vector<IsaCase> available_isas() {
  std::vector<IsaCase> out = {{Isa::Baseline, "baseline"}, {Isa::AmxEmulated, "amx-emulated"}};
  if (cpu_features().has_avx2()) {
    out.push_back({Isa::Avx2, "avx2"});
    out.push_back({Isa::Avx2WideEmulated, "avx512-emulated"});
    out.push_back({Isa::Avx2DotEmulated, "avx512bf16-emulated"});
  }
  if (cpu_features().has_avx512()) out.push_back({Isa::Avx512, "avx512"});
  return out;
}

struct Shape {
  int64_t M, K, N;
};

enum class ResidualMode { None, Separate, AliasC };

// One case: packs w under the current ISA, runs matmul, compares with the reference on
// (optionally bf16-rounded) inputs. Tolerance scales with sum |a*w| of each output.
void check_case(const char* isa, Shape s, bool transposed, WeightType type, bool round_a, bool bias_on,
                Activation act, ResidualMode rmode, int64_t lda_pad, int64_t ldc_pad, uint32_t seed) {
  const int64_t M = s.M, K = s.K, N = s.N;
  const int64_t lda = K + lda_pad, ldc = N + ldc_pad;
  std::vector<float> A = random_vec(size_t(M * lda), seed);
  std::vector<float> w = random_vec(size_t(K * N), seed + 1, 0.5f);
  std::vector<float> bias = random_vec(size_t(N), seed + 2);
  std::vector<float> resid = random_vec(size_t(M * ldc), seed + 3);

  // Reference inputs: what the kernel is specified to compute on.
  std::vector<float> A_ref = A, w_ref = w;
  if (type == WeightType::BF16) {
    for (auto& x : w_ref) x = gemm::round_to_bf16(x);
    if (round_a)
      for (auto& x : A_ref) x = gemm::round_to_bf16(x);
  }
  Epilogue ep_ref;
  ep_ref.bias = bias_on ? bias.data() : nullptr;
  ep_ref.activation = act;
  if (rmode != ResidualMode::None) {
    ep_ref.residual = resid.data();
    ep_ref.ldr = ldc;
  }
  std::vector<float> C_ref(size_t(M * ldc), -7.0f);
  matmul_reference(A_ref.data(), M, lda, w_ref.data(), K, N, transposed, C_ref.data(), ldc, ep_ref);
  // Error scale: sum_k |a w| (+ |bias| + |residual|).
  std::vector<float> A_abs = A_ref, w_abs = w_ref;
  for (auto& x : A_abs) x = std::fabs(x);
  for (auto& x : w_abs) x = std::fabs(x);
  std::vector<float> scale(size_t(M * ldc), 0.0f);
  matmul_reference(A_abs.data(), M, lda, w_abs.data(), K, N, false, scale.data(), ldc, {});

  std::vector<float> wt;  // the source the weight is packed from
  if (transposed) {
    wt.resize(w.size());
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = 0; n < N; n++) wt[n * K + k] = w[k * N + n];
  }
  // matmul_reference with transposed=true reads w as [N, K]: give it the same matrix.
  if (transposed) {
    std::vector<float> wt_ref(w.size());
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = 0; n < N; n++) wt_ref[n * K + k] = w_ref[k * N + n];
    matmul_reference(A_ref.data(), M, lda, wt_ref.data(), K, N, true, C_ref.data(), ldc, ep_ref);
  }
  PackedWeight pw = PackedWeight::pack(transposed ? wt.data() : w.data(), K, N, transposed, type);
  CHECK(pw.K() == K && pw.N() == N && pw.type() == type);

  std::vector<float> C(size_t(M * ldc), -7.0f);
  Epilogue ep;
  ep.bias = ep_ref.bias;
  ep.activation = act;
  if (rmode == ResidualMode::Separate) {
    ep.residual = resid.data();
    ep.ldr = ldc;
  } else if (rmode == ResidualMode::AliasC) {
    C = resid;  // x += f(x W): the residual is C itself
    ep.residual = C.data();
    ep.ldr = ldc;
  }
  matmul(pool(), A.data(), M, lda, pw, C.data(), ldc, ep);

  for (int64_t m = 0; m < M; m++) {
    for (int64_t n = 0; n < ldc; n++) {
      const size_t i = size_t(m * ldc + n);
      if (n >= N) {  // padding columns of C are never written
        const float expect = rmode == ResidualMode::AliasC ? resid[i] : -7.0f;
        CHECK_MSG(C[i] == expect, std::string(isa) + ": wrote past N");
        continue;
      }
      const double extra = (bias_on ? std::fabs(bias[n]) : 0) + (rmode != ResidualMode::None ? std::fabs(resid[i]) : 0);
      const double tol = 2e-6 * (scale[i] + extra) + 1e-6 * std::fabs(C_ref[i]) + 1e-30;
      const double err = std::fabs(double(C[i]) - double(C_ref[i]));
      if (!(err <= tol)) {
        char msg[400];
        std::snprintf(msg, sizeof msg,
                      "%s M=%lld K=%lld N=%lld T=%d bf16=%d act=%d res=%d: C[%lld,%lld]=%.9g ref=%.9g (tol %.3g)",
                      isa, (long long)M, (long long)K, (long long)N, int(transposed), int(type == WeightType::BF16),
                      int(act), int(rmode), (long long)m, (long long)n, C[i], C_ref[i], tol);
        throw test::Failure(msg);
      }
    }
  }
}

const Shape kShapes[] = {
    {1, 1, 1},    {1, 7, 33},    {7, 33, 17},   {3, 64, 48},    {33, 257, 100}, {1, 768, 130},
    {14, 300, 64}, {15, 129, 31}, {100, 520, 47}, {130, 66, 200}, {8, 1000, 40},  {29, 2, 97},
    {200, 800, 70},  // several row blocks x K blocks x N blocks (A packed once for all tasks)
    {250, 401, 33},  // same with an odd K: the last K block has an odd length (bf16 pairs half empty)
};

}  // namespace

TEST(isa_cap_is_respected) {
  // Under GPT2_CPU_ISA=baseline nothing vectorised beyond SSE2 may be selected.
  gemm::set_isa_for_testing(Isa::Auto);
  const char* name = gemm::select_kernels()->name;
  if (!cpu_features().has_avx2()) CHECK(std::string(name) == "baseline");
  if (!cpu_features().has_avx512()) CHECK(std::string(name) != "avx512" && std::string(name) != "avx512bf16");
  std::printf("     auto kernels: %s (isa %s)\n", name, cpu_isa_name());
}

TEST(f32_all_paths_shapes) {
  for (const IsaCase& isa : available_isas()) {
    gemm::set_isa_for_testing(isa.isa);
    uint32_t seed = 1;
    for (const Shape& s : kShapes)
      for (bool tr : {false, true})
        check_case(isa.name, s, tr, WeightType::F32, false, true, Activation::None, ResidualMode::None, 0, 0,
                   seed++);
  }
  gemm::set_isa_for_testing(Isa::Auto);
}

TEST(f32_epilogues_strides_aliasing) {
  const Activation acts[] = {Activation::None, Activation::GeluNew, Activation::Gelu, Activation::Relu,
                             Activation::Silu, Activation::Tanh};
  // (20, 700, 45): several K blocks, so C is accumulated across blocks (and preloaded
  // with the residual when it aliases C).
  const Shape shapes[] = {{5, 37, 45}, {20, 300, 33}, {101, 40, 70}, {20, 700, 45}};
  for (const IsaCase& isa : available_isas()) {
    gemm::set_isa_for_testing(isa.isa);
    uint32_t seed = 100;
    for (const Shape& s : shapes)
      for (Activation act : acts)
        for (ResidualMode r : {ResidualMode::None, ResidualMode::Separate, ResidualMode::AliasC})
          for (bool bias : {false, true}) {
            const bool tr = seed % 2 == 0;
            const int64_t lda_pad = seed % 3 == 0 ? 5 : 0, ldc_pad = seed % 4 == 1 ? 3 : 0;
            check_case(isa.name, s, tr, WeightType::F32, false, bias, act, r, lda_pad, ldc_pad, seed++);
          }
  }
  gemm::set_isa_for_testing(Isa::Auto);
}

TEST(bf16_all_paths) {
  // Expand paths multiply the bf16 weights in fp32 (A not rounded); the vdpbf16ps path
  // rounds A to bf16 as well. Both accumulate in fp32: same tolerance as fp32.
  for (const IsaCase& isa : available_isas()) {
    gemm::set_isa_for_testing(isa.isa);
    const bool round_a = gemm::select_kernels()->bf16_rounds_activations;
    uint32_t seed = 300;
    for (const Shape& s : kShapes)
      for (bool tr : {false, true}) {
        const ResidualMode r = seed % 3 == 0 ? ResidualMode::AliasC : ResidualMode::None;
        check_case(isa.name, s, tr, WeightType::BF16, round_a, seed % 2 == 0, Activation::GeluNew, r,
                   seed % 5 == 0 ? 3 : 0, 0, seed);
        seed++;
      }
  }
  gemm::set_isa_for_testing(Isa::Auto);
}

TEST(bf16_amx_tiles_emulated) {
  // The AMX block (M >= 4, K % 32 == 0) with emulated tile instructions (and with the
  // real ones where the CPU has AMX), and the same shapes through the vdpbf16ps path
  // (AMX off): all round A to bf16. Fewer than 32 rows: tiles padded with zero rows (decode).
  const Shape shapes[] = {{32, 32, 32}, {40, 64, 70}, {100, 96, 33}, {64, 768, 64}, {33, 160, 1}, {300, 64, 100},
                          {4, 64, 40},  {8, 768, 70}, {17, 96, 33},  {3, 64, 48}};
  std::vector<IsaCase> isas = {{Isa::AmxEmulated, "amx-emulated"}};
  const CpuFeatures& f = cpu_features();
  if (f.has_avx512() && f.has_avx512_bf16() && f.has_amx_bf16()) isas.push_back({Isa::Auto, "avx512bf16-amx"});
  for (const IsaCase& isa : isas) {
    gemm::set_isa_for_testing(isa.isa);
    CHECK(gemm::select_kernels()->block_amx != nullptr);
    uint32_t seed = 500;
    for (gemm::Bf16Path path : {gemm::Bf16Path::Auto, gemm::Bf16Path::NoAmx}) {
      gemm::set_bf16_path_for_testing(path);
      for (const Shape& s : shapes)
        for (bool tr : {false, true}) {
          const ResidualMode r = seed % 3 == 0 ? ResidualMode::AliasC : (seed % 3 == 1 ? ResidualMode::Separate : ResidualMode::None);
          check_case(isa.name, s, tr, WeightType::BF16, true, seed % 2 == 0, seed % 4 == 0 ? Activation::GeluNew : Activation::None, r,
                     seed % 5 == 0 ? 3 : 0, seed % 7 == 0 ? 2 : 0, seed);
          seed++;
        }
    }
  }
  gemm::set_bf16_path_for_testing(gemm::Bf16Path::Auto);
  gemm::set_isa_for_testing(Isa::Auto);
}

TEST(bf16_rounding_is_nearest_even) {
  CHECK(gemm::float_to_bf16(1.0f) == 0x3f80);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties go to even (1.0).
  CHECK(gemm::float_to_bf16(1.00390625f) == 0x3f80);
  // 1.0078125 + 2^-8 is halfway between 0x3f81 and 0x3f82: even is 0x3f82.
  CHECK(gemm::float_to_bf16(1.01171875f) == 0x3f82);
  CHECK(gemm::float_to_bf16(1.0040f) == 0x3f81);  // above halfway rounds up
  CHECK(gemm::float_to_bf16(-2.0f) == 0xc000);
  CHECK(std::isnan(gemm::bf16_to_float(gemm::float_to_bf16(std::nanf("")))));
  CHECK(std::isinf(gemm::bf16_to_float(gemm::float_to_bf16(INFINITY))));
}

TEST(vector_activations_match_reference) {
  const Activation acts[] = {Activation::GeluNew, Activation::Gelu, Activation::Relu, Activation::Silu,
                             Activation::Tanh};
  std::vector<float> xs;
  for (float x = -12.0f; x <= 12.0f; x += 0.00731f) xs.push_back(x);
  for (float x : {0.0f, 1e-6f, -1e-6f, 1e-3f, -1e-3f, 0.624f, 0.626f, -0.6249f, 30.0f, -30.0f, 100.0f, -100.0f})
    xs.push_back(x);
  for (const IsaCase& isa : available_isas()) {
    gemm::set_isa_for_testing(isa.isa);
    const gemm::KernelSet* ks = gemm::select_kernels();
    for (Activation act : acts) {
      std::vector<float> y = xs;
      ks->epilogue_rows(y.data(), int64_t(y.size()), 1, int64_t(y.size()), nullptr, act, nullptr, 0);
      double worst = 0;
      for (size_t i = 0; i < xs.size(); i++) {
        // The exact function in double without activation_reference's cancellation in
        // 1 + tanh / 1 + erf for very negative x (there it returns 0 below ~1e-17).
        const double x = xs[i];
        const auto exact = [&](double v) {
          if (act == Activation::GeluNew) return v / (1 + std::exp(-2 * 0.7978845608028654 * (v + 0.044715 * v * v * v)));
          if (act == Activation::Gelu) return 0.5 * v * std::erfc(-v * 0.7071067811865476);
          return double(activation_reference(act, float(v)));
        };
        const double ref = exact(x);
        // Allowed: 1e-6 relative, plus what rounding x itself to float (1.2e-7 relative)
        // moves the function by, |x f'(x)| * 1.2e-7: no float evaluation can beat that
        // where the function is steep in relative terms (gelu's far negative tail).
        const double h = std::max(std::fabs(x) * 1e-6, 1e-9);
        const double slope = act == Activation::Relu ? 1.0 : (exact(x + h) - exact(x - h)) / (2 * h);
        const double input_err = 1.2e-7 * std::fabs(x * slope);
        CHECK(std::fabs(ref - activation_reference(act, xs[i])) <= 1e-7 * std::fabs(ref) + 1e-15);
        const double err = std::fabs(y[i] - ref);
        if (std::fabs(ref) > 1e-30) worst = std::max(worst, err / (1e-6 * std::fabs(ref) + input_err));
        if (!(err <= 1e-6 * std::fabs(ref) + input_err + 1e-37)) {
          char msg[200];
          std::snprintf(msg, sizeof msg, "%s act %d x=%.9g: %.9g vs %.9g", ks->name, int(act), xs[i], y[i], ref);
          throw test::Failure(msg);
        }
      }
      if (isa.isa == Isa::Avx2 || isa.isa == Isa::Baseline)
        std::printf("     %s act %d: max err / allowed %.3g\n", ks->name, int(act), worst);
    }
  }
  gemm::set_isa_for_testing(Isa::Auto);
}

TEST(bad_arguments_throw) {
  std::vector<float> w(6, 1.0f), a(6, 1.0f), c(6, 0.0f);
  CHECK_THROWS(PackedWeight::pack(w.data(), 0, 3, false, WeightType::F32));
  CHECK_THROWS(PackedWeight::pack(nullptr, 2, 3, false, WeightType::F32));
  PackedWeight pw = PackedWeight::pack(w.data(), 2, 3, false, WeightType::F32);
  CHECK_THROWS(matmul(pool(), a.data(), 2, 1, pw, c.data(), 3));  // lda < K
  CHECK_THROWS(matmul(pool(), a.data(), 2, 2, pw, c.data(), 2));  // ldc < N
  PackedWeight empty;
  CHECK_THROWS(matmul(pool(), a.data(), 2, 2, empty, c.data(), 3));
}

TEST_MAIN()
