// Vectorised half -> float conversion for loading float16 checkpoints. The scalar
// reference is gpt2::model::f16_to_f32 (native/model/safetensors.h); the test compares
// the two on every f16 value.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gpt2::cpu {

// F16C (vcvtph2ps): exact for every value; a signalling NaN comes out quiet. `src` needs
// no alignment. Call only when cpu_features().has_avx2().
void f16_to_f32_avx2(const void* src, float* dst, size_t n);

}  // namespace gpt2::cpu
