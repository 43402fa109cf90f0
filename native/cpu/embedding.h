// Token + position embedding gather: out[i] = wte[ids[i]] + wpe[positions[i]].
// Ids and positions are validated by the model before they get here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gpt2 {
class ThreadPool;
}

namespace gpt2::cpu {

class PackedWeight;

void embed_reference(const int32_t* ids, const int32_t* positions, int64_t n, const float* wte, const float* wpe,
                     int64_t dim, float* out);

// Rows split over the pool when there are many.
void embed(ThreadPool& pool, int max_threads, const int32_t* ids, const int32_t* positions, int64_t n, const float* wte,
           const float* wpe, int64_t dim, float* out);

// What bf16 rounding took off each value of a [V, E] matrix, so that the bf16 copy plus this
// gives back the exact fp32 bits: fp32 bits = (bf16 bits << 16) + low (mod 2^32). A few values
// differ by more than int16 holds (halfway cases rounded down to even: +0x8000; NaNs); those are
// kept whole in `exact`. Half the size of an fp32 copy.
struct Bf16Residual {
  std::vector<int16_t> low;        // [V, E] row-major
  std::vector<int64_t> exact_at;   // flat indices (ascending) whose low is not used
  std::vector<float> exact;        // their fp32 values
  static Bf16Residual of(const float* w, int64_t count);
  size_t bytes() const { return low.size() * sizeof(int16_t) + exact_at.size() * (sizeof(int64_t) + sizeof(float)); }
};

// embed() with wte read from the tied lm_head's packed panels (gemm.h: the transposed [E, V]
// weight, so row v of wte is column v there) instead of a separate copy. F32 panels hold wte
// exactly; BF16 panels need `residual` (Bf16Residual::of(wte)). Either way the rows are
// bit-identical to embed()'s from the fp32 wte. dim must be the weight's K.
void embed_packed(ThreadPool& pool, int max_threads, const int32_t* ids, const int32_t* positions, int64_t n,
                  const PackedWeight& wte, const Bf16Residual* residual, const float* wpe, int64_t dim, float* out);

// out[i] = x[rows[i]] (for picking the rows whose logits are asked).
void gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t dim, float* out);

}  // namespace gpt2::cpu
