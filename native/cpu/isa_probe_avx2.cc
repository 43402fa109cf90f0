// Keeps the AVX2 target non-empty until kernels land; reports that the target was built.
namespace gpt2::cpu { bool built_with_avx2_target() { return true; } }
