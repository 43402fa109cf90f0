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
    model::check_token_ids(t.data(), static_cast<int64_t>(t.size()), c.vocab_size, where + ", ");
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
    const Key key{item->size(), item->order};
    arrival_.emplace(item->order, item->size());
    queued_.emplace(key, std::move(item));
  }
}

bool EmbeddingSource::cancel(const std::shared_ptr<EmbedJob>& job) {
  std::vector<std::shared_ptr<EmbedJob>> finished_jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (job->finished) return false;
    finish(job, std::make_exception_ptr(Error(ErrorKind::Error, code::kAborted, "embed: aborted")), finished_jobs);
  }
  notify_done(finished_jobs);
  return true;
}

EmbeddingSource::Queue::iterator EmbeddingSource::unqueue(Queue::iterator it) {
  arrival_.erase(it->first.second);
  return queued_.erase(it);
}

void EmbeddingSource::plan(std::vector<model::SequenceInput>& step, StepBudget& budget) {
  std::lock_guard<std::mutex> lock(mutex_);
  KvCache& kv = model_.kv_cache();
  auto take = [&](Item& it) { return budget.take(it.size(), kv.blocks_needed(it.kv, it.size())); };
  auto add = [&](std::unique_ptr<Item> item) {
    model::SequenceInput in;
    in.ids = item->job->texts[item->index].data();
    in.n = item->size();
    in.kv = &item->kv;
    in.logits = model::LogitsMode::None;
    in.hidden = item->job->options.capture;
    step.push_back(in);
    running_.push_back(std::move(item));
  };
  // Items of jobs that already failed are dropped as they come up.
  while (!retry_.empty() && retry_.front()->job->finished) retry_.pop_front();
  if (!retry_.empty()) {
    // A retry is this step's only embedding input, to learn whether it was this item that
    // failed the shared step (other sources' inputs may share the step).
    if (take(*retry_.front())) {
      add(std::move(retry_.front()));
      retry_.pop_front();
    }
    return;
  }
  Queue::iterator seed;
  for (;;) {
    if (arrival_.empty()) return;
    seed = queued_.find(Key{arrival_.begin()->second, arrival_.begin()->first});
    if (!seed->second->job->finished) break;
    unqueue(seed);
  }
  if (!take(*seed->second)) return;
  std::vector<Queue::iterator> taken{seed};
  // Two cursors from the oldest item: shorter (below) and longer (above) texts, the closer
  // in length first. When one side does not fit, the rest of that side will not either.
  const int32_t n0 = seed->first.first;
  Queue::iterator below = seed, above = std::next(seed);
  bool below_open = true, above_open = true;
  for (;;) {
    const bool has_below = below_open && below != queued_.begin();
    const bool has_above = above_open && above != queued_.end();
    if (!has_below && !has_above) break;
    const Queue::iterator lower = has_below ? std::prev(below) : queued_.end();
    const bool use_above = !has_below || (has_above && above->first.first - n0 <= n0 - lower->first.first);
    const Queue::iterator it = use_above ? above : lower;
    if (it->second->job->finished) {
      if (use_above)
        above = unqueue(it);
      else
        unqueue(it);  // `below` stays valid
      continue;
    }
    if (!take(*it->second)) {
      (use_above ? above_open : below_open) = false;
      continue;
    }
    taken.push_back(it);
    if (use_above)
      ++above;
    else
      below = lower;
  }
  for (Queue::iterator it : taken) {
    add(std::move(it->second));
    unqueue(it);
  }
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
        retry_.push_back(std::move(it));
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
    for (auto& [key, it] : queued_) finish(it->job, error, finished_jobs);
    for (auto& it : retry_) finish(it->job, error, finished_jobs);
    for (auto& it : running_) {
      model_.kv_cache().release(it->kv);
      finish(it->job, error, finished_jobs);
    }
    queued_.clear();
    arrival_.clear();
    retry_.clear();
    running_.clear();
  }
  notify_done(finished_jobs);
}

}  // namespace gpt2::engine
