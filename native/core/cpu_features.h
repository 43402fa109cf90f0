// What this CPU and OS can run, read once from CPUID/XGETBV. Kernels are chosen from
// this at run time; the binary itself targets baseline x86-64.
#pragma once
#include <string>

namespace gpt2 {

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_fp16 = false, avx512_vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  // OS has enabled the AMX tile-data state for this process (Linux arch_prctl).
  bool amx_enabled = false;
  std::string brand;

  // The kernel families the dispatcher may use.
  bool has_avx2() const { return avx2 && fma && f16c; }
  bool has_avx512() const { return has_avx2() && avx512f && avx512bw && avx512vl && avx512dq; }
  bool has_avx512_bf16() const { return has_avx512() && avx512_bf16; }
  bool has_amx_bf16() const { return has_avx512() && amx_tile && amx_bf16 && amx_enabled; }
};

// Detected once (thread-safe); GPT2_CPU_ISA=baseline|avx2|avx512 caps what is reported,
// so tests can exercise every code path on one machine.
const CpuFeatures& cpu_features();

// "avx512" | "avx2" | "baseline": the best family cpu_features() allows.
const char* cpu_isa_name();

}  // namespace gpt2
