// The engine loop (engine/scheduler.h): sources fill steps under the token and KV-block
// budgets, get back exactly their own outputs, equal to running each input alone; work
// that does not fit waits; a failing step reaches every source in it; stop() reaches
// every source.
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "engine/scheduler.h"
#include "test_main.h"
#include "tiny_model.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::engine;

namespace {

std::unique_ptr<GPT2Model> make_model(int64_t kv_tokens) { return test::tiny_model(kv_tokens, 7); }

// Prefills whole prompts (one input each), records their last-row logits.
class PromptSource : public WorkSource {
 public:
  struct Item {
    std::vector<int32_t> ids;
    KvSequence kv;
    std::vector<float> logits;
    bool done = false, failed = false, stopped = false;
  };
  explicit PromptSource(GPT2Model& m) : model_(m) {}
  void submit(std::vector<int32_t> ids) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto item = std::make_unique<Item>();
    item->ids = std::move(ids);
    queue_.push_back(item.get());
    items_.push_back(std::move(item));
  }
  void plan(std::vector<SequenceInput>& step, StepBudget& budget) override {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!queue_.empty()) {
      Item* it = queue_.front();
      const int32_t n = static_cast<int32_t>(it->ids.size());
      if (!budget.take(n, model_.kv_cache().blocks_needed(it->kv, n))) break;
      step.push_back({it->ids.data(), n, &it->kv, LogitsMode::Last});
      running_.push_back(it);
      queue_.pop_front();
    }
    max_step_inputs = std::max(max_step_inputs, static_cast<int>(running_.size()));
  }
  void complete(std::span<SequenceOutput> out) override {
    std::lock_guard<std::mutex> lock(mutex_);
    CHECK(out.size() == running_.size());
    for (size_t i = 0; i < out.size(); i++) {
      running_[i]->logits = std::move(out[i].logits);
      running_[i]->done = true;
      model_.kv_cache().release(running_[i]->kv);
    }
    finished += static_cast<int>(out.size());
    running_.clear();
    cv_.notify_all();
  }
  void fail(std::exception_ptr) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Item* it : running_) it->failed = true, it->done = true;
    finished += static_cast<int>(running_.size());
    running_.clear();
    cv_.notify_all();
  }
  void stop() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Item* it : queue_) it->stopped = true;
    queue_.clear();
    stopped_calls++;
  }
  void wait_for(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return finished >= n; });
  }
  std::vector<std::unique_ptr<Item>> items_;
  int finished = 0, max_step_inputs = 0, stopped_calls = 0;

 private:
  GPT2Model& model_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item*> queue_;
  std::vector<Item*> running_;
};

std::vector<float> alone(GPT2Model& m, const std::vector<int32_t>& ids) {
  KvSequence kv;
  SequenceInput in{ids.data(), static_cast<int32_t>(ids.size()), &kv, LogitsMode::Last};
  auto out = m.forward(std::span<const SequenceInput>(&in, 1), ForwardOptions{false, false});
  m.kv_cache().release(kv);
  return out[0].logits;
}

std::vector<int32_t> prompt(int n, int salt) { return test::token_ids(n, salt); }

}  // namespace

TEST(scheduler_batches_and_matches_alone) {
  auto model = make_model(0);
  PromptSource src(*model);
  Scheduler sched(*model, SchedulerOptions{64});
  sched.add_source(&src);
  for (int i = 0; i < 12; i++) src.submit(prompt(5 + i % 7, i));
  sched.notify();
  src.wait_for(12);
  CHECK(src.finished == 12);
  CHECK(src.max_step_inputs > 1);  // several prompts shared a step
  const SchedulerStats st = sched.stats();
  CHECK(st.steps >= 2 && st.steps < 12);
  CHECK(st.max_step_sequences > 1);
  // Every step lands in exactly one bucket of each histogram; a shared step is above bucket 0.
  int64_t by_sequences = 0, by_tokens = 0;
  for (int b = 0; b < SchedulerStats::kBuckets; b++) {
    by_sequences += st.step_sequences_buckets[b];
    by_tokens += st.step_tokens_buckets[b];
  }
  CHECK(by_sequences == st.steps && by_tokens == st.steps);
  CHECK(st.step_sequences_buckets[0] < st.steps);
  for (int i = 0; i < 12; i++) {
    const auto& it = *src.items_[i];
    CHECK(it.done && !it.failed);
    const auto ref = alone(*model, it.ids);
    CHECK(ref.size() == it.logits.size());
    double m = 0;
    for (size_t k = 0; k < ref.size(); k++) m = std::max(m, double(std::fabs(ref[k] - it.logits[k])));
    CHECK(m < 1e-4);
  }
  CHECK(model->kv_cache().free_blocks() == model->kv_cache().shape().num_blocks);
}

TEST(scheduler_waits_for_kv_blocks) {
  // 4 blocks of 16 tokens: two 30-token prompts fit at a time, the rest wait.
  auto model = make_model(64);
  PromptSource src(*model);
  Scheduler sched(*model, SchedulerOptions{4096});
  sched.add_source(&src);
  for (int i = 0; i < 6; i++) src.submit(prompt(30, i));
  sched.notify();
  src.wait_for(6);
  CHECK(src.finished == 6);
  CHECK(src.max_step_inputs == 2);
  for (auto& it : src.items_) CHECK(it->done && !it->failed);
}

TEST(scheduler_long_input_runs_alone) {
  auto model = make_model(0);
  PromptSource src(*model);
  Scheduler sched(*model, SchedulerOptions{8});  // budget below one prompt
  sched.add_source(&src);
  src.submit(prompt(20, 1));
  src.submit(prompt(20, 2));
  sched.notify();
  src.wait_for(2);
  CHECK(src.finished == 2 && src.max_step_inputs == 1);
}

TEST(scheduler_failed_step_reaches_source) {
  auto model = make_model(0);
  PromptSource src(*model);
  Scheduler sched(*model, SchedulerOptions{64});
  sched.add_source(&src);
  src.submit({1, 2, 50257});  // out of vocabulary: the forward pass rejects the step
  sched.notify();
  src.wait_for(1);
  CHECK(src.items_[0]->failed);
  CHECK(sched.stats().failed_steps == 1);
}

TEST(scheduler_stop_reaches_sources) {
  auto model = make_model(0);
  PromptSource src(*model);
  {
    Scheduler sched(*model, SchedulerOptions{64});
    sched.add_source(&src);
    src.submit(prompt(4, 1));  // never notified: still queued at stop()
  }
  CHECK(src.stopped_calls == 1);
  CHECK(src.items_[0]->stopped);
}

TEST_MAIN()
