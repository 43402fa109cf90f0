#include <immintrin.h>

#include <cstring>

#include "cpu/f16_convert.h"

namespace gpt2::cpu {

void f16_to_f32_avx2(const void* src, float* dst, size_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  if (i < n) {  // tail through a zero-padded buffer: never reads past src + 2n
    uint16_t tail[8] = {};
    std::memcpy(tail, s + 2 * i, 2 * (n - i));
    float out[8];
    _mm256_storeu_ps(out, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tail))));
    std::memcpy(dst + i, out, 4 * (n - i));
  }
}

}  // namespace gpt2::cpu
