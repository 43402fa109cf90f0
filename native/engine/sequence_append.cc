#include "engine/sequence_append.h"

#include <string>

#include "core/error.h"

namespace gpt2::engine {

void SequenceAppendSource::submit(std::shared_ptr<AppendJob> job) {
  const model::GPT2Config& c = model_.config();
  const auto& ids = job->ids;
  if (ids.empty()) throw_range_error("Sequence.append: no token ids given (at least one is needed)");
  model::check_token_ids(ids.data(), static_cast<int64_t>(ids.size()), c.vocab_size, "Sequence.append: ");
  const int64_t total = int64_t(job->kv.length) + int64_t(ids.size());
  if (total > c.n_positions)
    throw_range_error("Sequence.append: the sequence would be " + std::to_string(total) +
                      " tokens long, more than n_positions (" + std::to_string(c.n_positions) + ")");
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopped_) throw Error(ErrorKind::Error, code::kDisposed, "Sequence.append: the model has been disposed");
  queued_.push_back(std::move(job));
}

void SequenceAppendSource::plan(std::vector<model::SequenceInput>& step, StepBudget& budget) {
  Jobs finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    KvCache& kv = model_.kv_cache();
    // Takes the job into the step if it fits; fails it when it could never fit right now.
    auto try_take = [&](std::deque<std::shared_ptr<AppendJob>>& from) {
      AppendJob& job = *from.front();
      const int32_t n = static_cast<int32_t>(job.ids.size());
      const int32_t blocks = kv.blocks_needed(job.kv, n);
      if (budget.take(n, blocks)) {
        step.push_back(model::SequenceInput{job.ids.data(), n, &job.kv, job.logits});
        running_.push_back(std::move(from.front()));
      } else if (budget.step_empty) {
        job.error = std::make_exception_ptr(Error(
            ErrorKind::RangeError, code::kKvCacheFull,
            "KV cache is full: appending " + std::to_string(n) + " tokens needs " + std::to_string(blocks) +
                " more blocks, " + std::to_string(budget.free_blocks) + " free (dispose sequences or raise kvCacheTokens)"));
        finished.push_back(std::move(from.front()));
      } else {
        return false;  // waits for a later step
      }
      from.pop_front();
      return true;
    };
    if (!retry_.empty()) {
      // A retry is this step's only append, to learn whether it failed the shared step.
      try_take(retry_);
    } else {
      while (!queued_.empty() && try_take(queued_)) {
      }
    }
  }
  notify_done(finished);
}

void SequenceAppendSource::notify_done(Jobs& finished) {
  for (auto& job : finished)
    if (job->done) job->done(*job);
}

void SequenceAppendSource::complete(std::span<model::SequenceOutput> outputs) {
  Jobs finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < running_.size() && i < outputs.size(); i++) running_[i]->out = std::move(outputs[i].logits);
    finished.swap(running_);
  }
  notify_done(finished);
}

void SequenceAppendSource::fail(std::exception_ptr error) {
  Jobs finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Nothing advanced: with others in the step, each job gets a step of its own to tell.
    if (running_.size() > 1) {
      for (auto& job : running_) retry_.push_back(std::move(job));
    } else {
      for (auto& job : running_) job->error = error;
      finished.swap(running_);
    }
    running_.clear();
  }
  notify_done(finished);
}

void SequenceAppendSource::stop() {
  Jobs finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    const auto error = std::make_exception_ptr(
        Error(ErrorKind::Error, code::kDisposed, "Sequence.append: the model was disposed before this call finished"));
    for (auto* jobs : {&queued_, &retry_})
      for (auto& job : *jobs) finished.push_back(std::move(job));
    for (auto& job : running_) finished.push_back(std::move(job));
    for (auto& job : finished) job->error = error;
    queued_.clear();
    retry_.clear();
    running_.clear();
  }
  notify_done(finished);
}

}  // namespace gpt2::engine
