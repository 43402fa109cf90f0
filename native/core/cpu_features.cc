#include "core/cpu_features.h"

#include <cpuid.h>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <mutex>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace gpt2 {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

// Linux keeps AMX tile data off until a process asks for it (kernel >= 5.16).
bool request_amx_permission() {
#if defined(__linux__)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = c & (1u << 20);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const bool osxsave = c & (1u << 27);
  const bool avx_cpu = c & (1u << 28);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;
  const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
  f.avx = avx_cpu && os_ymm;
  if (!f.avx) f.fma = f.f16c = false;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = f.avx && (b & (1u << 5));
    if (os_zmm) {
      f.avx512f = b & (1u << 16);
      f.avx512dq = b & (1u << 17);
      f.avx512bw = b & (1u << 30);
      f.avx512vl = b & (1u << 31);
      f.avx512_vnni = c & (1u << 11);
      f.avx512_fp16 = d & (1u << 23);
    }
    if (os_amx) {
      f.amx_bf16 = d & (1u << 22);
      f.amx_tile = d & (1u << 24);
      f.amx_int8 = d & (1u << 25);
    }
    __cpuid_count(7, 1, a, b, c, d);
    if (os_zmm) f.avx512_bf16 = a & (1u << 5);
  }
  if (f.amx_tile) f.amx_enabled = request_amx_permission();

  char brand[49] = {0};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; i++) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  f.brand = brand;
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();

  // Test hook: cap the ISA to exercise fallbacks on a capable machine.
  if (const char* cap = std::getenv("GPT2_CPU_ISA")) {
    const std::string c_ = cap;
    if (c_ == "avx2" || c_ == "baseline") {
      f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = false;
      f.avx512_bf16 = f.avx512_fp16 = f.avx512_vnni = false;
      f.amx_tile = f.amx_bf16 = f.amx_int8 = f.amx_enabled = false;
    }
    if (c_ == "baseline") f.avx2 = f.fma = f.f16c = false;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* cpu_isa_name() {
  const CpuFeatures& f = cpu_features();
  if (f.has_avx512()) return "avx512";
  if (f.has_avx2()) return "avx2";
  return "baseline";
}

}  // namespace gpt2
