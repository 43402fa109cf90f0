// Token selection for generation: logits processors and warpers in transformers' order
// (4.41 GenerationMixin._get_logits_processor, then _get_logits_warper), then greedy
// argmax (temperature 0) or a draw from the request's own random stream.
//
// Order, applied to one row of raw logits in place:
//   1. logit_bias            (like SequenceBiasLogitsProcessor, transformers' first processor)
//   2. repetition_penalty    (RepetitionPenaltyLogitsProcessor: prompt + generated tokens;
//                             negative logits are multiplied, positive ones divided)
//   3. presence / frequency  (OpenAI's definition, over the generated tokens; transformers has none)
//   4. no_repeat_ngram_size  (NoRepeatNGramLogitsProcessor: prompt + generated tokens)
//   -- greedy stops here and takes the argmax --
//   5. temperature  6. top_k  7. top_p  8. min_p  9. typical_p   (the warpers, min_tokens_to_keep 1)
//   then softmax and one uniform draw.
// Removed tokens become -inf. sampler_reference.cc holds literal transcriptions of the
// transformers code the fast versions here are tested against (native/tests/sampler_test.cc).
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace gpt2::engine {

struct SamplerConfig {
  float temperature = 0.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float typical_p = 1.0f;    // 1 = off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t no_repeat_ngram_size = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;

  bool greedy() const { return temperature == 0.0f; }
};

// xoshiro256** seeded through splitmix64: a small, portable stream per request (row), so
// a seeded request draws the same numbers whatever shares its batch.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  double uniform();  // [0, 1), 53 bits

 private:
  uint64_t s_[4];
};

// The tokens a row has seen: the prompt, then what it generated.
struct TokenHistory {
  std::span<const int32_t> prompt;
  std::span<const int32_t> generated;
};

// Steps 1-4 (everything greedy decoding uses).
void apply_processors(const SamplerConfig& c, const TokenHistory& h, std::span<float> logits);
// Steps 5-9.
void apply_warpers(const SamplerConfig& c, std::span<float> logits);
// Processors, then argmax (greedy) or warpers and a draw. `logits` is modified.
int32_t sample_token(const SamplerConfig& c, const TokenHistory& h, std::span<float> logits, Rng& rng);

// First index of the largest value (torch.argmax).
int32_t argmax(std::span<const float> logits);
// log(sum(exp(x))) computed stably.
double log_sum_exp(std::span<const float> logits);
// The n largest entries, best first (ties: lower id first).
std::vector<std::pair<int32_t, float>> top_n(std::span<const float> values, int32_t n);

// Literal transcriptions of transformers' processors and warpers (sampler_reference.cc),
// for tests only: linked into the native test programs, not into the addon.
namespace reference {
void repetition_penalty(float penalty, const TokenHistory& h, std::span<float> logits);
void no_repeat_ngram(int32_t n, const TokenHistory& h, std::span<float> logits);
void top_k(int32_t k, std::span<float> logits);
void top_p(float p, std::span<float> logits);
void min_p(float p, std::span<float> logits);
void typical_p(float mass, std::span<float> logits);
}  // namespace reference

// The fast versions, one per warper (sampler.cc).
void warp_top_k(int32_t k, std::span<float> logits);
void warp_top_p(float p, std::span<float> logits);
void warp_min_p(float p, std::span<float> logits);
void warp_typical_p(float mass, std::span<float> logits);
void process_no_repeat_ngram(int32_t n, const TokenHistory& h, std::span<float> logits);
void process_repetition_penalty(float penalty, const TokenHistory& h, std::span<float> logits);

}  // namespace gpt2::engine
