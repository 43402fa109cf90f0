// Plain transcriptions of transformers 4.41's logits processors and warpers (generation/
// logits_process.py), full-vocabulary and in float32 like torch, for the tests that check
// the fast versions in sampler.cc. min_tokens_to_keep = 1 throughout.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "engine/sampler.h"

namespace gpt2::engine::reference {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<float> softmax(std::span<const float> x) {
  const float m = *std::max_element(x.begin(), x.end());
  std::vector<float> p(x.size());
  float s = 0;
  for (size_t i = 0; i < x.size(); i++) s += p[i] = std::exp(x[i] - m);
  for (float& v : p) v /= s;
  return p;
}

std::vector<int32_t> all_ids(const TokenHistory& h) {
  std::vector<int32_t> ids(h.prompt.begin(), h.prompt.end());
  ids.insert(ids.end(), h.generated.begin(), h.generated.end());
  return ids;
}

}  // namespace

// score = gather(scores, input_ids); where(score < 0, score * p, score / p); scatter.
void repetition_penalty(float penalty, const TokenHistory& h, std::span<float> logits) {
  const std::vector<float> orig(logits.begin(), logits.end());
  for (int32_t t : all_ids(h)) logits[t] = orig[t] < 0 ? orig[t] * penalty : orig[t] / penalty;
}

// _get_ngrams + _get_generated_ngrams: a dict from (n-1)-prefix to following tokens.
void no_repeat_ngram(int32_t n, const TokenHistory& h, std::span<float> logits) {
  const std::vector<int32_t> ids = all_ids(h);
  const int64_t cur_len = static_cast<int64_t>(ids.size());
  if (cur_len + 1 < n) return;
  std::map<std::vector<int32_t>, std::vector<int32_t>> ngrams;
  for (int64_t i = 0; i + n <= cur_len; i++)
    ngrams[std::vector<int32_t>(ids.begin() + i, ids.begin() + i + n - 1)].push_back(ids[i + n - 1]);
  const std::vector<int32_t> prefix(ids.begin() + (cur_len + 1 - n), ids.end());
  auto it = ngrams.find(prefix);
  if (it != ngrams.end())
    for (int32_t t : it->second) logits[t] = kNegInf;
}

// indices_to_remove = scores < topk(scores, k)[0][..., -1, None]
void top_k(int32_t k, std::span<float> logits) {
  std::vector<float> sorted(logits.begin(), logits.end());
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  const float kth = sorted[std::min<size_t>(std::max(k, 1), sorted.size()) - 1];
  for (float& v : logits)
    if (v < kth) v = kNegInf;
}

// sort ascending; cumulative softmax; remove where cumsum <= 1 - top_p; keep the last one.
void top_p(float p, std::span<float> logits) {
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] < logits[b]; });
  std::vector<float> sorted(idx.size());
  for (size_t i = 0; i < idx.size(); i++) sorted[i] = logits[idx[i]];
  const std::vector<float> probs = softmax(sorted);
  float cum = 0;
  std::vector<bool> remove(idx.size());
  for (size_t i = 0; i < idx.size(); i++) {
    cum += probs[i];
    remove[i] = cum <= 1 - p;
  }
  remove.back() = false;
  for (size_t i = 0; i < idx.size(); i++)
    if (remove[i]) logits[idx[i]] = kNegInf;
}

// probs < min_p * max(probs) are removed.
void min_p(float p, std::span<float> logits) {
  const std::vector<float> probs = softmax(logits);
  const float scaled = p * *std::max_element(probs.begin(), probs.end());
  for (size_t i = 0; i < logits.size(); i++)
    if (probs[i] < scaled) logits[i] = kNegInf;
}

// entropy-centred sort, cumulative probability up to `mass`, ties with the cut kept.
void typical_p(float mass, std::span<float> logits) {
  const std::vector<float> probs = softmax(logits);
  const size_t V = logits.size();
  std::vector<float> normalized(V);
  float ent = 0;
  for (size_t i = 0; i < V; i++) {
    normalized[i] = std::log(probs[i]);
    if (probs[i] > 0) ent -= normalized[i] * probs[i];
  }
  std::vector<float> shifted(V);
  for (size_t i = 0; i < V; i++) shifted[i] = std::fabs(-normalized[i] - ent);
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return shifted[a] < shifted[b]; });
  float cum = 0;
  size_t last_ind = 0;
  for (size_t i = 0; i < V; i++) {
    cum += probs[idx[i]];
    if (cum < mass) last_ind++;
  }
  last_ind = std::min(last_ind, V - 1);
  const float cutoff = shifted[idx[last_ind]];
  for (size_t i = 1; i < V; i++)
    if (shifted[idx[i]] > cutoff) logits[idx[i]] = kNegInf;
}

}  // namespace gpt2::engine::reference
