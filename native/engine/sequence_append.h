// Sequence.append as a work source of the engine loop (engine/scheduler.h), so a custom
// decoding loop shares the engine's steps with generation and embeddings instead of
// running forward passes of its own beside them.
//
// One AppendJob per append: new token ids for one sequence's KV state, which the job owns
// while it is queued or running (the caller moves it in and gets it back in done(), so the
// engine never touches the caller's objects). Jobs run in arrival order, as many per step
// as the budget allows; each is one SequenceInput, so the logits are those of a forward
// pass over that sequence alone (rows are independent of the batch). A job that does not
// fit in a step waits for a later one, unless it does not fit in the KV cache even with
// the step to itself: then it fails with ERR_GPT2_KV_CACHE_FULL (its state unchanged).
// When a step with several jobs fails, each is retried as the only append of a step, so
// one bad append fails only itself. done() is called exactly once per job, on the engine
// thread or in stop().
#pragma once
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/kv_cache.h"
#include "engine/scheduler.h"
#include "model/gpt2_model.h"

namespace gpt2::engine {

struct AppendJob {
  std::vector<int32_t> ids;
  KvSequence kv;  // the sequence's state, handed back through done() (grown by ids on success)
  model::LogitsMode logits = model::LogitsMode::Last;
  std::function<void(AppendJob&)> done;  // must not call back into the source
  // Results: [vocab] (Last), [n, vocab] (All) or nothing (None); or the error.
  std::vector<float> out;
  std::exception_ptr error;
};

class SequenceAppendSource : public WorkSource {
 public:
  explicit SequenceAppendSource(model::GPT2Model& model) : model_(model) {}

  // Validates (non-empty, ids < vocab_size, kv length + n <= n_positions: RangeError) and
  // queues. Any thread; call Scheduler::notify() afterwards.
  void submit(std::shared_ptr<AppendJob> job);

  void plan(std::vector<model::SequenceInput>& step, StepBudget& budget) override;
  void complete(std::span<model::SequenceOutput> outputs) override;
  void fail(std::exception_ptr error) override;
  void stop() override;

 private:
  using Jobs = std::vector<std::shared_ptr<AppendJob>>;
  static void notify_done(Jobs& finished);

  model::GPT2Model& model_;
  std::mutex mutex_;
  std::deque<std::shared_ptr<AppendJob>> queued_;  // arrival order
  std::deque<std::shared_ptr<AppendJob>> retry_;   // from failed shared steps: each runs alone
  Jobs running_;                                   // the current step's jobs, in step order
  bool stopped_ = false;
};

}  // namespace gpt2::engine
