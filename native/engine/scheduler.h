// The engine loop: one native thread per model that owns every forward pass of that model
// and fills each step from the model's work sources (generation, embedding, ...).
//
// A step is one GPT2Model::forward over a ragged batch. The scheduler asks its sources in
// priority order (the order they were added) for inputs, under a token budget
// (max_batch_tokens) and the KV blocks still free; sources spend from the same StepBudget,
// so a later source gets what the earlier ones left. Work that does not fit waits for a
// later step instead of failing (KV blocks free up as sequences finish). A source that
// adds nothing to a non-empty step is simply asked again next step.
//
// Sources are told about the outcome on the engine thread: complete() with the outputs of
// exactly the inputs they added (same order), or fail() when the forward pass threw
// (nothing advanced). They hand results to JavaScript themselves (through the addon's
// per-request channels, native/addon/request_events.h).
//
// Threading: submit work to a source from any thread, then call notify(); the loop sleeps
// when every source comes back empty. stop() finishes the running step, tells every source
// stop(), and joins; the model must outlive the scheduler.
#pragma once
#include <array>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "model/gpt2_model.h"

namespace gpt2::engine {

// What one step may still take. Sources decrement both as they add inputs.
struct StepBudget {
  int64_t tokens = 0;       // sum of SequenceInput::n still allowed
  int32_t free_blocks = 0;  // KV blocks not yet promised (see KvCache::blocks_needed)
  bool step_empty = true;   // nothing added yet: one input may then exceed `tokens`
                            // (a prompt chunk or text longer than the budget runs alone)

  // Whether an input of n tokens needing `blocks` fits; if so, spends it.
  bool take(int64_t n, int32_t blocks) {
    if (blocks > free_blocks) return false;
    if (n > tokens && !step_empty) return false;
    tokens -= n;
    free_blocks -= blocks;
    step_empty = false;
    return true;
  }
};

class WorkSource {
 public:
  virtual ~WorkSource() = default;
  // Engine thread. Appends inputs for the next step, spending from `budget`. Pointers in
  // the inputs (ids, kv) must stay valid until complete()/fail() returns.
  virtual void plan(std::vector<model::SequenceInput>& step, StepBudget& budget) = 0;
  // Engine thread, after a successful forward: outputs of this source's inputs, in order.
  virtual void complete(std::span<model::SequenceOutput> outputs) = 0;
  // Engine thread: the step's forward pass threw; this source's inputs did not advance.
  virtual void fail(std::exception_ptr error) = 0;
  // Engine thread, once, from Scheduler::stop(): reject whatever is still queued.
  virtual void stop() = 0;
};

struct SchedulerOptions {
  int64_t max_batch_tokens = 2048;  // tokens per forward step (decode rows + prefill chunks)
};

// Counters for metrics and tests (read with stats()).
struct SchedulerStats {
  // Steps by batch size: bucket i counts steps with at most 2^i sequences (tokens: 16 * 2^i);
  // the last bucket takes the rest. Cumulative sums of these are Prometheus histogram buckets.
  static constexpr int kBuckets = 10;
  std::array<int64_t, kBuckets> step_sequences_buckets{};
  std::array<int64_t, kBuckets> step_tokens_buckets{};
  int64_t steps = 0;
  int64_t tokens = 0;           // total input tokens run
  int64_t sequences = 0;        // total inputs run (one per sequence per step)
  int32_t last_step_tokens = 0;
  int32_t last_step_sequences = 0;
  int32_t max_step_sequences = 0;
  int64_t failed_steps = 0;
};

class Scheduler {
 public:
  Scheduler(model::GPT2Model& model, SchedulerOptions options);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Before the first notify(). Earlier sources have priority within a step.
  void add_source(WorkSource* source);
  // Wakes the loop (starting its thread on first use). Any thread.
  void notify();
  // Idempotent. Not from the engine thread.
  void stop();

  model::GPT2Model& model() { return model_; }
  const SchedulerOptions& options() const { return options_; }
  SchedulerStats stats() const;
  // True on the engine thread (sources may assert it).
  bool on_engine_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void loop();
  bool run_step();  // false when no source added anything

  model::GPT2Model& model_;
  SchedulerOptions options_;
  std::vector<WorkSource*> sources_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false;  // notify() since the loop last looked
  bool stopping_ = false;
  bool stopped_ = false;
  SchedulerStats stats_;
};

}  // namespace gpt2::engine
