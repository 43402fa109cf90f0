// The sampler (engine/sampler.h): each fast processor and warper against its literal
// transcription of transformers 4.41 (engine/sampler_reference.cc) on random logits, the
// order of the whole chain, and the per-request random stream.
#include <cmath>
#include <limits>
#include <random>

#include "engine/sampler.h"
#include "test_main.h"

using namespace gpt2::engine;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<float> random_logits(std::mt19937& g, int V, float scale) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(V);
  for (float& x : v) x = d(g);
  return v;
}

// The same set of removed (-inf) entries, and equal values elsewhere.
void check_same(const std::vector<float>& fast, const std::vector<float>& ref, const char* what, int trial) {
  for (size_t i = 0; i < fast.size(); i++) {
    const bool fi = fast[i] == kNegInf, ri = ref[i] == kNegInf;
    if (fi != ri || (!fi && std::fabs(fast[i] - ref[i]) > 1e-6f))
      throw gpt2::test::Failure(std::string(what) + ": trial " + std::to_string(trial) + " differs at id " + std::to_string(i) +
                                " (fast " + std::to_string(fast[i]) + ", reference " + std::to_string(ref[i]) + ")");
  }
}

template <class Fast, class Ref>
void compare_warper(const char* what, Fast fast, Ref ref) {
  std::mt19937 g(1234);
  for (int trial = 0; trial < 300; trial++) {
    const int V = 1 + static_cast<int>(g() % 700);
    std::vector<float> a = random_logits(g, V, 0.5f + static_cast<float>(g() % 40) / 10.f);
    if (trial % 3 == 0) warp_top_k(1 + static_cast<int>(g() % 64), a);  // some entries already removed
    std::vector<float> b = a;
    const float param = std::uniform_real_distribution<float>(0.01f, 0.99f)(g);
    fast(param, a);
    ref(param, b);
    check_same(a, b, what, trial);
  }
}

}  // namespace

TEST(top_k_matches_reference) {
  compare_warper("top_k", [](float p, std::vector<float>& v) { warp_top_k(1 + int(p * 80), v); },
                 [](float p, std::vector<float>& v) { reference::top_k(1 + int(p * 80), v); });
}
TEST(top_p_matches_reference) {
  compare_warper("top_p", [](float p, std::vector<float>& v) { warp_top_p(p, v); },
                 [](float p, std::vector<float>& v) { reference::top_p(p, v); });
}
TEST(min_p_matches_reference) {
  compare_warper("min_p", [](float p, std::vector<float>& v) { warp_min_p(p * 0.5f, v); },
                 [](float p, std::vector<float>& v) { reference::min_p(p * 0.5f, v); });
}
TEST(typical_p_matches_reference) {
  compare_warper("typical_p", [](float p, std::vector<float>& v) { warp_typical_p(p, v); },
                 [](float p, std::vector<float>& v) { reference::typical_p(p, v); });
}

TEST(repetition_and_ngram_match_reference) {
  std::mt19937 g(99);
  for (int trial = 0; trial < 200; trial++) {
    const int V = 50 + static_cast<int>(g() % 100);
    std::vector<int32_t> prompt(1 + g() % 30), gen(g() % 30);
    for (auto& t : prompt) t = static_cast<int32_t>(g() % 12);  // small alphabet: many repeats
    for (auto& t : gen) t = static_cast<int32_t>(g() % 12);
    const TokenHistory h{prompt, gen};
    std::vector<float> a = random_logits(g, V, 3.f), b = a;
    process_repetition_penalty(1.3f, h, a);
    reference::repetition_penalty(1.3f, h, b);
    check_same(a, b, "repetition_penalty", trial);
    const int n = 1 + static_cast<int>(g() % 4);
    process_no_repeat_ngram(n, h, a);
    reference::no_repeat_ngram(n, h, b);
    check_same(a, b, "no_repeat_ngram", trial);
  }
}

TEST(no_repeat_ngram_bans_the_repeat) {
  std::vector<int32_t> prompt{5, 6, 7, 5};
  std::vector<float> logits(10, 0.f);
  process_no_repeat_ngram(2, {prompt, {}}, logits);
  CHECK(logits[6] == kNegInf);  // "5 6" was seen; the text now ends in 5
  CHECK(logits[7] == 0.f);
}

TEST(greedy_applies_processors_then_argmax) {
  SamplerConfig c;  // temperature 0
  c.logit_bias = {{2, -100.f}};
  std::vector<float> logits{0.f, 1.f, 5.f, 2.f};
  Rng rng(1);
  CHECK(sample_token(c, {}, logits, rng) == 3);
  c.repetition_penalty = 10.f;
  std::vector<int32_t> prompt{3};
  std::vector<float> l2{0.f, 1.f, 5.f, 2.f};
  CHECK(sample_token(c, {prompt, {}}, l2, rng) == 1);  // 2 biased away, 3 penalised to 0.2
}

TEST(presence_and_frequency_penalties) {
  SamplerConfig c;
  c.presence_penalty = 0.5f;
  c.frequency_penalty = 0.25f;
  std::vector<int32_t> gen{1, 1, 2};
  std::vector<float> logits(4, 0.f);
  apply_processors(c, {{}, gen}, logits);
  CHECK(logits[0] == 0.f);
  CHECK(logits[1] == -1.0f);
  CHECK(logits[2] == -0.75f);
}

TEST(sampling_follows_the_distribution_and_the_seed) {
  SamplerConfig c;
  c.temperature = 1.f;
  const std::vector<float> base{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Rng rng(42);
  int counts[3] = {0, 0, 0};
  const int N = 60000;
  for (int i = 0; i < N; i++) {
    std::vector<float> l = base;
    counts[sample_token(c, {}, l, rng)]++;
  }
  CHECK(std::fabs(counts[0] / double(N) - 0.5) < 0.01);
  CHECK(std::fabs(counts[1] / double(N) - 0.3) < 0.01);
  Rng a(7), b(7), d(8);
  bool differs = false;
  for (int i = 0; i < 100; i++) {
    const uint64_t x = a.next();
    CHECK(x == b.next());
    differs = differs || x != d.next();
  }
  CHECK(differs);
}

TEST(top_k_one_is_greedy) {
  SamplerConfig c;
  c.temperature = 0.7f;
  c.top_k = 1;
  std::mt19937 g(3);
  Rng rng(5);
  for (int i = 0; i < 50; i++) {
    std::vector<float> l = random_logits(g, 100, 2.f);
    const int32_t want = argmax(l);
    CHECK(sample_token(c, {}, l, rng) == want);
  }
}

int main(int argc, char** argv) { return gpt2::test::run_all(argc, argv); }
