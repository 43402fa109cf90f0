#include "engine/embedding.h"

#include <algorithm>

#include "core/error.h"
#include "model/pooling.h"

namespace gpt2::engine {

EmbeddingSource::~EmbeddingSource() {
  // The scheduler stopped first (ModelState::release_model); nothing should be left.
  for (auto& it : running_) model_.kv_cache().release(it->kv);
}

void EmbeddingSource::submit(std::shared_ptr<EmbedJob> job) {
  const model::GPT2Config& c = model_.config();
  if (job->texts.empty()) throw_range_error("embed: no texts given");
  if (job->options.capture.layer < -1 || job->options.capture.layer > c.n_layer)
    throw_range_error("embed: layer " + std::to_string(job->options.capture.layer) + " is out of range (0 ... " +
                      std::to_string(c.n_layer) + ")");
  if (job->options.capture.layer == -1) job->options.capture.layer = static_cast<int32_t>(c.n_layer);
  for (size_t i = 0; i < job->texts.size(); i++) {
    const auto& t = job->texts[i];
    const std::string where = "embed: text " + std::to_string(i);
    if (t.empty()) throw_range_error(where + " is empty (at least one token is needed)");
    if (int64_t(t.size()) > c.n_positions)
      throw_range_error(where + " has " + std::to_string(t.size()) + " tokens, more than n_positions (" +
                        std::to_string(c.n_positions) + "); pass truncate or split it into windows");
    for (size_t p = 0; p < t.size(); p++)
      if (t[p] < 0 || t[p] >= c.vocab_size)
        throw_range_error(where + ", position " + std::to_string(p) + ": token id " + std::to_string(t[p]) +
                          " is out of range (vocab_size " + std::to_string(c.vocab_size) + ")");
  }
  job->vectors.assign(job->texts.size(), {});
  job->remaining = job->texts.size();
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopped_) throw Error(ErrorKind::Error, code::kDisposed, "embed: the model has been disposed");
  for (size_t i = 0; i < job->texts.size(); i++) {
    auto item = std::make_unique<Item>();
    item->job = job;
    item->index = static_cast<int32_t>(i);
    item->order = next_order_++;
    pending_.push_back(std::move(item));
  }
}

void EmbeddingSource::plan(std::vector<model::SequenceInput>& step, StepBudget& budget) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Items of jobs that already failed are dropped.
  std::erase_if(pending_, [](const std::unique_ptr<Item>& it) { return it->job->finished; });
  if (pending_.empty()) return;
  // By length (then arrival); the step grows outwards from the oldest item.
  std::sort(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) {
    return a->size() != b->size() ? a->size() < b->size() : a->order < b->order;
  });
  size_t seed = 0;
  for (size_t i = 1; i < pending_.size(); i++) {
    // A retried item goes first and alone; otherwise the oldest.
    const bool better = pending_[i]->alone != pending_[seed]->alone ? pending_[i]->alone
                                                                     : pending_[i]->order < pending_[seed]->order;
    if (better) seed = i;
  }
  KvCache& kv = model_.kv_cache();
  auto try_take = [&](size_t i) {
    Item& it = *pending_[i];
    return budget.take(it.size(), kv.blocks_needed(it.kv, it.size()));
  };
  std::vector<size_t> taken;
  if (!try_take(seed)) return;
  taken.push_back(seed);
  if (!pending_[seed]->alone) {
    // Two cursors: below (shorter) and above (longer); take the closer in length first.
    ptrdiff_t lo = ptrdiff_t(seed) - 1;
    size_t hi = seed + 1;
    const int32_t n0 = pending_[seed]->size();
    while (lo >= 0 || hi < pending_.size()) {
      const bool use_hi = lo < 0 || (hi < pending_.size() && pending_[hi]->size() - n0 <= n0 - pending_[lo]->size());
      const size_t i = use_hi ? hi : size_t(lo);
      if (pending_[i]->alone || !try_take(i)) {
        // Longer ones will not fit either; shorter ones may.
        if (use_hi)
          hi = pending_.size();
        else
          lo = -1;
        continue;
      }
      taken.push_back(i);
      if (use_hi)
        hi++;
      else
        lo--;
    }
  }
  std::sort(taken.begin(), taken.end());
  for (size_t i : taken) {
    Item& it = *pending_[i];
    model::SequenceInput in;
    in.ids = it.job->texts[it.index].data();
    in.n = it.size();
    in.kv = &it.kv;
    in.logits = model::LogitsMode::None;
    in.hidden = it.job->options.capture;
    step.push_back(in);
    running_.push_back(std::move(pending_[i]));
  }
  std::erase_if(pending_, [](const std::unique_ptr<Item>& it) { return !it; });
}

void EmbeddingSource::finish(const std::shared_ptr<EmbedJob>& job, std::exception_ptr error,
                             std::vector<std::shared_ptr<EmbedJob>>& finished_jobs) {
  if (job->finished) return;
  job->finished = true;
  job->error = error;
  if (error) job->vectors.clear();
  finished_jobs.push_back(job);
}

void EmbeddingSource::notify_done(std::vector<std::shared_ptr<EmbedJob>>& finished_jobs) {
  for (auto& job : finished_jobs)
    if (job->done) job->done(*job);
}

void EmbeddingSource::complete(std::span<model::SequenceOutput> outputs) {
  std::vector<std::shared_ptr<EmbedJob>> finished_jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < running_.size() && i < outputs.size(); i++) {
      Item& it = *running_[i];
      model_.kv_cache().release(it.kv);
      EmbedJob& job = *it.job;
      if (job.finished) continue;
      std::vector<float>& v = job.vectors[it.index];
      v = std::move(outputs[i].hidden);
      if (job.options.normalize && job.options.capture.pooling != model::Pooling::Rows)
        model::l2_normalize(v.data(), static_cast<int64_t>(v.size()));
      if (--job.remaining == 0) finish(it.job, nullptr, finished_jobs);
    }
    running_.clear();
  }
  notify_done(finished_jobs);
}

void EmbeddingSource::fail(std::exception_ptr error) {
  std::vector<std::shared_ptr<EmbedJob>> finished_jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool retry = running_.size() > 1;
    for (auto& it : running_) {
      model_.kv_cache().release(it->kv);
      if (retry && !it->job->finished) {
        it->alone = true;  // run alone next, to learn whether it was this item
        pending_.push_back(std::move(it));
      } else {
        finish(it->job, error, finished_jobs);
      }
    }
    running_.clear();
  }
  notify_done(finished_jobs);
}

void EmbeddingSource::stop() {
  std::vector<std::shared_ptr<EmbedJob>> finished_jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    const auto error = std::make_exception_ptr(
        Error(ErrorKind::Error, code::kDisposed, "embed: the model was disposed before this call finished"));
    for (auto& it : pending_) finish(it->job, error, finished_jobs);
    for (auto& it : running_) {
      model_.kv_cache().release(it->kv);
      finish(it->job, error, finished_jobs);
    }
    pending_.clear();
    running_.clear();
  }
  notify_done(finished_jobs);
}

}  // namespace gpt2::engine
