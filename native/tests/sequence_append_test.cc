// The Sequence.append work source (engine/sequence_append.h) on the engine loop: appends
// submitted together share steps and give the same logits, bitwise, as forward() on each
// sequence alone, step after step; one that cannot fit in the KV cache fails alone with
// ERR_GPT2_KV_CACHE_FULL and keeps its state; bad input is rejected at submit; a step that
// fails because of another source's input is retried append by append; stop() rejects
// what is queued.
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/error.h"
#include "engine/scheduler.h"
#include "engine/sequence_append.h"
#include "test_main.h"
#include "tiny_model.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::engine;

namespace {

std::vector<int32_t> tokens(int n, int salt) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; i++) ids[i] = (i * 7919 + salt * 104729) % 50257;
  return ids;
}

// Waits for jobs' done() callbacks.
struct Waiter {
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  std::shared_ptr<AppendJob> job(std::vector<int32_t> ids, KvSequence kv, LogitsMode logits = LogitsMode::Last) {
    auto j = std::make_shared<AppendJob>();
    j->ids = std::move(ids);
    j->kv = std::move(kv);
    j->logits = logits;
    j->done = [this](AppendJob&) {
      std::lock_guard<std::mutex> lock(m);
      done++;
      cv.notify_all();
    };
    return j;
  }
  bool wait(int n) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, std::chrono::seconds(60), [&] { return done >= n; });
  }
};

std::vector<float> alone(GPT2Model& m, const std::vector<int32_t>& ids, KvSequence& kv, LogitsMode logits) {
  SequenceInput in{ids.data(), static_cast<int32_t>(ids.size()), &kv, logits};
  return std::move(m.forward(std::span<const SequenceInput>(&in, 1), ForwardOptions{false, false})[0].logits);
}

std::string code_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.code();
  } catch (...) {
  }
  return "?";
}

// Adds one input with an out-of-range token id to the next step (once), failing it.
class PoisonSource : public WorkSource {
 public:
  bool armed = true;
  std::vector<int32_t> ids{1, 999999};
  KvSequence kv;
  void plan(std::vector<SequenceInput>& step, StepBudget& budget) override {
    if (!armed || !budget.take(2, 1)) return;
    armed = false;
    step.push_back({ids.data(), 2, &kv, LogitsMode::None});
  }
  void complete(std::span<SequenceOutput>) override {}
  void fail(std::exception_ptr) override {}
  void stop() override {}
};

}  // namespace

TEST(appends_share_steps_and_equal_each_sequence_alone_bitwise) {
  auto model = test::tiny_model(0, 5);
  auto reference = test::tiny_model(0, 5);  // same weights, its own cache
  SequenceAppendSource src(*model);
  Scheduler sched(*model, SchedulerOptions{});
  sched.add_source(&src);
  const int n_seqs = 4;
  std::vector<KvSequence> kv(n_seqs), ref_kv(n_seqs);
  int expected_done = 0;
  Waiter w;
  for (int round = 0; round < 4; round++) {
    std::vector<std::shared_ptr<AppendJob>> jobs;
    for (int s = 0; s < n_seqs; s++) {
      const LogitsMode mode = round == 0 && s == 1 ? LogitsMode::All : LogitsMode::Last;
      jobs.push_back(w.job(round == 0 ? tokens(3 + 4 * s, s) : tokens(1, 100 * round + s), std::move(kv[s]), mode));
      src.submit(jobs.back());
    }
    const int64_t steps_before = sched.stats().steps;
    sched.notify();
    expected_done += n_seqs;
    CHECK(w.wait(expected_done));
    CHECK(sched.stats().steps - steps_before == 1);  // one step for the whole round
    for (int s = 0; s < n_seqs; s++) {
      AppendJob& j = *jobs[s];
      CHECK(!j.error);
      const auto want = alone(*reference, j.ids, ref_kv[s], j.logits);
      CHECK(j.out == want);  // bitwise
      kv[s] = std::move(j.kv);
      CHECK(kv[s].length == ref_kv[s].length);
    }
  }
  for (auto& k : kv) model->kv_cache().release(k);
}

TEST(an_append_that_cannot_fit_fails_alone_and_keeps_its_state) {
  auto model = test::tiny_model(64, 6);  // 4 blocks of 16
  SequenceAppendSource src(*model);
  Scheduler sched(*model, SchedulerOptions{});
  sched.add_source(&src);
  Waiter w;
  auto big = w.job(tokens(60, 1), KvSequence{});
  auto small = w.job(tokens(60, 2), KvSequence{});
  src.submit(big);
  src.submit(small);
  sched.notify();
  CHECK(w.wait(2));
  CHECK(!big->error);
  CHECK(big->kv.length == 60);
  CHECK(code_of(small->error) == code::kKvCacheFull);
  CHECK(small->kv.length == 0 && small->kv.blocks.empty());
  model->kv_cache().release(big->kv);
  CHECK(model->kv_cache().free_blocks() == model->kv_cache().shape().num_blocks);
}

TEST(bad_input_is_rejected_at_submit) {
  auto model = test::tiny_model(0, 7);
  SequenceAppendSource src(*model);
  Waiter w;
  CHECK_THROWS(src.submit(w.job({}, KvSequence{})));
  CHECK_THROWS(src.submit(w.job({1, 50257}, KvSequence{})));
  KvSequence long_kv;
  long_kv.length = 63;  // n_positions 64
  CHECK_THROWS(src.submit(w.job({1, 2}, long_kv)));
  std::vector<SequenceInput> step;
  StepBudget budget{2048, model->kv_cache().free_blocks()};
  src.plan(step, budget);
  CHECK(step.empty());
}

TEST(a_step_failed_by_another_source_is_retried_append_by_append) {
  auto model = test::tiny_model(0, 8);
  auto reference = test::tiny_model(0, 8);
  PoisonSource poison;
  SequenceAppendSource src(*model);
  Scheduler sched(*model, SchedulerOptions{});
  sched.add_source(&poison);
  sched.add_source(&src);
  Waiter w;
  auto a = w.job(tokens(5, 1), KvSequence{});
  auto b = w.job(tokens(7, 2), KvSequence{});
  src.submit(a);
  src.submit(b);
  sched.notify();
  CHECK(w.wait(2));
  CHECK(sched.stats().failed_steps == 1);
  for (auto* j : {a.get(), b.get()}) {
    CHECK(!j->error);
    KvSequence ref;
    CHECK(j->out == alone(*reference, j->ids, ref, LogitsMode::Last));
    model->kv_cache().release(j->kv);
  }
}

TEST(stop_rejects_queued_appends) {
  auto model = test::tiny_model(0, 9);
  SequenceAppendSource src(*model);
  Waiter w;
  auto a = w.job(tokens(4, 1), KvSequence{});
  src.submit(a);
  src.stop();
  CHECK(w.wait(1));
  CHECK(code_of(a->error) == code::kDisposed);
  CHECK_THROWS(src.submit(w.job(tokens(4, 2), KvSequence{})));
}

TEST_MAIN()
