// A tiny random GPT-2 (2 layers, 32 wide, 64 positions) on the CPU backend, and small helpers,
// for engine tests.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "engine/scheduler.h"
#include "model/gpt2_model.h"

namespace gpt2::test {

inline std::unique_ptr<model::GPT2Model> tiny_model(int64_t kv_tokens, uint64_t seed) {
  model::GPT2Config c = model::preset_config("gpt2");
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 2;
  c.n_inner = 128;
  c.n_positions = 64;
  model::ModelOptions o;
  o.kv_cache_tokens = kv_tokens;
  return std::make_unique<model::GPT2Model>(c, std::make_unique<cpu::CpuBackend>(ThreadPool::shared(2), 2),
                                            model::GPT2Model::random_reader(seed, c), o);
}

// n token ids spread over the vocabulary; `salt` picks another sequence.
inline std::vector<int32_t> token_ids(int n, int salt) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; i++) ids[i] = (i * 7919 + salt * 104729) % 50257;
  return ids;
}

// Counts work sources' done() callbacks (engine thread); wait(n) until n came (60 s at most).
struct DoneCounter {
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  template <class Job>
  std::function<void(Job&)> callback() {
    return [this](Job&) {
      std::lock_guard<std::mutex> lock(m);
      done++;
      cv.notify_all();
    };
  }
  bool wait(int n) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, std::chrono::seconds(60), [&] { return done >= n; });
  }
};

// Adds one input with an out-of-range token id to the next step (once), failing that step.
class PoisonSource : public engine::WorkSource {
 public:
  bool armed = true;
  int failures = 0;
  std::vector<int32_t> ids{1, 999999};
  KvSequence kv;
  void plan(std::vector<model::SequenceInput>& step, engine::StepBudget& budget) override {
    if (!armed || !budget.take(2, 1)) return;
    armed = false;
    step.push_back({ids.data(), 2, &kv, model::LogitsMode::None});
  }
  void complete(std::span<model::SequenceOutput>) override {}
  void fail(std::exception_ptr) override { failures++; }
  void stop() override {}
};

}  // namespace gpt2::test
