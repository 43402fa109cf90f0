// The embedding work source of the engine loop (engine/scheduler.h).
//
// An embed() call is one EmbedJob: its texts (token ids) become items, one SequenceInput
// each (no logits, a HiddenCapture for the layer and pooling asked, a fresh KvSequence
// released right after its step). Items of all queued jobs are planned together: each
// step starts with the oldest waiting item and fills the token budget with the items
// closest to it in length, so concurrent calls share forward passes (ragged, no padding)
// and similar lengths run together. An item longer than the budget runs alone. When a
// step with several items fails, each of them is retried as the only embedding input of a
// step, so one bad text only fails its own job. A job is done when all its items are
// (vectors in input order) or when one fails (the first error); `done` is then called
// exactly once, on the engine thread or in stop().
#pragma once
#include <cstdint>
#include <exception>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/scheduler.h"
#include "model/gpt2_model.h"

namespace gpt2::engine {

struct EmbedOptions {
  model::HiddenCapture capture{-1, true, model::Pooling::Mean};  // layer -1 = the last (n_layer)
  bool normalize = false;                                         // L2
};

struct EmbedJob {
  std::vector<std::vector<int32_t>> texts;
  EmbedOptions options;
  std::function<void(EmbedJob&)> done;  // must not call back into the source
  // Results: one vector per text (pooled [E], or [n, E] rows with Pooling::Rows).
  std::vector<std::vector<float>> vectors;
  std::exception_ptr error;

 private:
  friend class EmbeddingSource;
  size_t remaining = 0;
  bool finished = false;
};

class EmbeddingSource : public WorkSource {
 public:
  explicit EmbeddingSource(model::GPT2Model& model) : model_(model) {}
  ~EmbeddingSource() override;

  // Validates every text (non-empty, ids < vocab_size, at most n_positions tokens:
  // errors name the text's index) and the options, then queues the job. Any thread;
  // call Scheduler::notify() afterwards.
  void submit(std::shared_ptr<EmbedJob> job);

  // Ends a job that is not finished yet with an ERR_GPT2_ABORTED error (its done() runs
  // here): queued items are dropped as planning reaches them, a running step's results for
  // it are discarded. Any thread. Returns whether the job was still pending.
  bool cancel(const std::shared_ptr<EmbedJob>& job);

  void plan(std::vector<model::SequenceInput>& step, StepBudget& budget) override;
  void complete(std::span<model::SequenceOutput> outputs) override;
  void fail(std::exception_ptr error) override;
  void stop() override;

 private:
  struct Item {
    std::shared_ptr<EmbedJob> job;
    int32_t index = 0;
    uint64_t order = 0;  // arrival
    KvSequence kv;
    int32_t size() const { return static_cast<int32_t>(job->texts[index].size()); }
  };
  using Key = std::pair<int32_t, uint64_t>;  // (tokens, arrival)
  using Queue = std::map<Key, std::unique_ptr<Item>>;
  // Removes a queued item (by length and by arrival); returns the next one by length.
  Queue::iterator unqueue(Queue::iterator it);
  // Marks a job finished and queues its done() for after the lock (finished_jobs).
  void finish(const std::shared_ptr<EmbedJob>& job, std::exception_ptr error,
              std::vector<std::shared_ptr<EmbedJob>>& finished_jobs);
  static void notify_done(std::vector<std::shared_ptr<EmbedJob>>& finished_jobs);

  model::GPT2Model& model_;
  std::mutex mutex_;
  // Queued items by length then arrival (planning walks it from the oldest item outwards),
  // and arrival -> length (the oldest is its first entry). O(log n) per item taken.
  Queue queued_;
  std::map<uint64_t, int32_t> arrival_;
  std::deque<std::unique_ptr<Item>> retry_;     // from failed shared steps: each runs alone
  std::vector<std::unique_ptr<Item>> running_;  // the current step's items, in step order
  uint64_t next_order_ = 0;
  bool stopped_ = false;
};

}  // namespace gpt2::engine
