#include "engine/scheduler.h"

#include <algorithm>

namespace gpt2::engine {

namespace {
// SchedulerStats bucket of `value`: the first i with value <= first_bound * 2^i, else the last.
int bucket_of(int64_t value, int64_t first_bound) {
  int i = 0;
  for (int64_t bound = first_bound; i < SchedulerStats::kBuckets - 1 && value > bound; bound *= 2) i++;
  return i;
}
}  // namespace

Scheduler::Scheduler(model::GPT2Model& model, SchedulerOptions options) : model_(model), options_(options) {
  if (options_.max_batch_tokens < 1) options_.max_batch_tokens = 1;
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::add_source(WorkSource* source) {
  std::lock_guard<std::mutex> lock(mutex_);
  sources_.push_back(source);
}

void Scheduler::notify() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return;
  pending_ = true;
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  wake_.notify_one();
}

void Scheduler::stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopping_ = true;
    wake_.notify_one();
    t = std::move(thread_);
  }
  if (t.joinable()) t.join();
  // The loop has ended (or never started): reject what is still queued, here.
  for (WorkSource* s : sources_) s->stop();
  std::lock_guard<std::mutex> lock(mutex_);
  stopped_ = true;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return pending_ || stopping_; });
      if (stopping_) return;
      pending_ = false;
    }
    // Step while there is work; a notify() during a step is seen by the next wait.
    while (run_step()) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
  }
}

bool Scheduler::run_step() {
  std::vector<model::SequenceInput> step;
  StepBudget budget;
  budget.tokens = options_.max_batch_tokens;
  budget.free_blocks = model_.kv_cache().free_blocks();
  // Which inputs belong to which source: [begin, end) of `step`.
  std::vector<std::pair<size_t, size_t>> spans(sources_.size());
  for (size_t i = 0; i < sources_.size(); i++) {
    const size_t begin = step.size();
    sources_[i]->plan(step, budget);
    spans[i] = {begin, step.size()};
  }
  if (step.empty()) return false;

  std::vector<model::SequenceOutput> outputs;
  std::exception_ptr error;
  try {
    // Per-input requests (logits mode, hidden rows) say what comes back; nothing step-wide.
    outputs = model_.forward(step, model::ForwardOptions{false, false});
  } catch (...) {
    error = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.steps++;
    if (error) stats_.failed_steps++;
    int64_t tokens = 0;
    for (const auto& in : step) tokens += in.n;
    stats_.tokens += tokens;
    stats_.sequences += static_cast<int64_t>(step.size());
    stats_.last_step_tokens = static_cast<int32_t>(tokens);
    stats_.last_step_sequences = static_cast<int32_t>(step.size());
    stats_.max_step_sequences = std::max(stats_.max_step_sequences, stats_.last_step_sequences);
    stats_.step_sequences_buckets[bucket_of(static_cast<int64_t>(step.size()), 1)]++;
    stats_.step_tokens_buckets[bucket_of(tokens, 16)]++;
  }
  for (size_t i = 0; i < sources_.size(); i++) {
    const auto [begin, end] = spans[i];
    if (begin == end) continue;
    if (error)
      sources_[i]->fail(error);
    else
      sources_[i]->complete(std::span<model::SequenceOutput>(outputs.data() + begin, end - begin));
  }
  return true;
}

}  // namespace gpt2::engine
