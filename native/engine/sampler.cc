#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gpt2::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// (id, logit) of every entry not yet removed: after top_k this is short, which is what
// makes the later warpers cheap.
std::vector<std::pair<int32_t, float>> finite_entries(std::span<const float> logits) {
  std::vector<std::pair<int32_t, float>> out;
  for (size_t i = 0; i < logits.size(); i++)
    if (logits[i] != kNegInf) out.emplace_back(static_cast<int32_t>(i), logits[i]);
  return out;
}

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); i++)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

double log_sum_exp(std::span<const float> logits) {
  const float m = logits[argmax(logits)];
  if (m == kNegInf) return kNegInf;
  double s = 0;
  for (float v : logits) s += std::exp(static_cast<double>(v) - m);
  return m + std::log(s);
}

std::vector<std::pair<int32_t, float>> top_n(std::span<const float> values, int32_t n) {
  n = std::min<int32_t>(n, static_cast<int32_t>(values.size()));
  std::vector<int32_t> idx(values.size());
  for (size_t i = 0; i < idx.size(); i++) idx[i] = static_cast<int32_t>(i);
  auto better = [&](int32_t a, int32_t b) { return values[a] > values[b] || (values[a] == values[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), better);
  std::vector<std::pair<int32_t, float>> out;
  for (int32_t i = 0; i < n; i++) out.emplace_back(idx[i], values[idx[i]]);
  return out;
}

void process_repetition_penalty(float penalty, const TokenHistory& h, std::span<float> logits) {
  std::vector<int32_t> seen(h.prompt.begin(), h.prompt.end());
  seen.insert(seen.end(), h.generated.begin(), h.generated.end());
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  for (int32_t t : seen) {
    float& v = logits[t];
    v = v < 0 ? v * penalty : v / penalty;
  }
}

void process_no_repeat_ngram(int32_t n, const TokenHistory& h, std::span<float> logits) {
  std::vector<int32_t> ids(h.prompt.begin(), h.prompt.end());
  ids.insert(ids.end(), h.generated.begin(), h.generated.end());
  const int64_t len = static_cast<int64_t>(ids.size());
  if (len + 1 < n) return;
  // An n-gram whose first n-1 tokens equal the last n-1 tokens bans its last token.
  const int32_t* tail = ids.data() + len - (n - 1);
  for (int64_t i = 0; i + n <= len; i++)
    if (std::equal(ids.begin() + i, ids.begin() + i + n - 1, tail)) logits[ids[i + n - 1]] = kNegInf;
}

void warp_top_k(int32_t k, std::span<float> logits) {
  const size_t keep = std::min<size_t>(std::max(k, 1), logits.size());
  std::vector<float> copy(logits.begin(), logits.end());
  std::nth_element(copy.begin(), copy.begin() + (keep - 1), copy.end(), std::greater<float>());
  const float kth = copy[keep - 1];
  for (float& v : logits)
    if (v < kth) v = kNegInf;
}

void warp_top_p(float p, std::span<float> logits) {
  auto e = finite_entries(logits);
  std::sort(e.begin(), e.end(), [](auto& a, auto& b) { return a.second < b.second; });  // ascending, as transformers
  const float m = e.back().second;
  double total = 0;
  for (auto& [id, v] : e) total += std::exp(static_cast<double>(v) - m);
  double cum = 0;
  for (size_t i = 0; i + 1 < e.size(); i++) {  // the largest always stays
    cum += std::exp(static_cast<double>(e[i].second) - m) / total;
    if (cum <= 1.0 - p) logits[e[i].first] = kNegInf;
  }
}

void warp_min_p(float p, std::span<float> logits) {
  // probs < min_p * max_prob  <=>  logit < max_logit + log(min_p)
  const float m = logits[argmax(logits)];
  const double threshold = m + std::log(static_cast<double>(p));
  for (float& v : logits)
    if (v < threshold) v = kNegInf;
}

void warp_typical_p(float mass, std::span<float> logits) {
  auto e = finite_entries(logits);
  const double lse = log_sum_exp(logits);
  double entropy = 0;
  for (auto& [id, v] : e) {
    const double lp = v - lse;
    entropy -= lp * std::exp(lp);
  }
  // Sort by |(-log p) - entropy| ascending; keep the prefix up to the first index where the
  // cumulative probability reaches `mass` (that index included), and ties with its score.
  std::vector<std::pair<double, int32_t>> shifted;
  for (auto& [id, v] : e) shifted.emplace_back(std::fabs(-(v - lse) - entropy), id);
  std::sort(shifted.begin(), shifted.end());
  double cum = 0;
  size_t last = 0;
  while (last < shifted.size()) {
    cum += std::exp(logits[shifted[last].second] - lse);
    if (!(cum < mass)) break;
    last++;
  }
  last = std::min(last, shifted.size() - 1);
  const double cutoff = shifted[last].first;
  for (size_t i = 1; i < shifted.size(); i++)
    if (shifted[i].first > cutoff) logits[shifted[i].second] = kNegInf;
}

void apply_processors(const SamplerConfig& c, const TokenHistory& h, std::span<float> logits) {
  for (auto& [id, bias] : c.logit_bias)
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] += bias;
  if (c.repetition_penalty != 1.0f) process_repetition_penalty(c.repetition_penalty, h, logits);
  if (c.presence_penalty != 0.0f || c.frequency_penalty != 0.0f) {
    std::vector<int32_t> g(h.generated.begin(), h.generated.end());
    std::sort(g.begin(), g.end());
    for (size_t i = 0; i < g.size();) {
      size_t j = i;
      while (j < g.size() && g[j] == g[i]) j++;
      logits[g[i]] -= c.presence_penalty + c.frequency_penalty * static_cast<float>(j - i);
      i = j;
    }
  }
  if (c.no_repeat_ngram_size > 0) process_no_repeat_ngram(c.no_repeat_ngram_size, h, logits);
}

void apply_warpers(const SamplerConfig& c, std::span<float> logits) {
  if (c.temperature != 1.0f)
    for (float& v : logits) v /= c.temperature;
  if (c.top_k > 0) warp_top_k(c.top_k, logits);
  if (c.top_p < 1.0f) warp_top_p(c.top_p, logits);
  if (c.min_p > 0.0f) warp_min_p(c.min_p, logits);
  if (c.typical_p < 1.0f) warp_typical_p(c.typical_p, logits);
}

int32_t sample_token(const SamplerConfig& c, const TokenHistory& h, std::span<float> logits, Rng& rng) {
  apply_processors(c, h, logits);
  if (c.greedy()) return argmax(logits);
  apply_warpers(c, logits);
  const int32_t best = argmax(logits);
  const float m = logits[best];
  if (m == kNegInf) return best;  // everything banned: nothing better to do than id 0
  double total = 0;
  for (float v : logits) total += v == kNegInf ? 0.0 : std::exp(static_cast<double>(v) - m);
  double u = rng.uniform() * total;
  int32_t last = best;
  for (size_t i = 0; i < logits.size(); i++) {
    if (logits[i] == kNegInf) continue;
    u -= std::exp(static_cast<double>(logits[i]) - m);
    last = static_cast<int32_t>(i);
    if (u < 0) return last;
  }
  return last;  // rounding left u a hair above 0: the last candidate
}

}  // namespace gpt2::engine
