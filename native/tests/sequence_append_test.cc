// The Sequence.append work source (engine/sequence_append.h) on the engine loop: appends
// submitted together share steps and give the same logits, bitwise, as forward() on each
// sequence alone, step after step; one that cannot fit in the KV cache fails alone with
// ERR_GPT2_KV_CACHE_FULL and keeps its state; bad input is rejected at submit; a step that
// fails because of another source's input is retried append by append; stop() rejects
// what is queued.
#include "core/error.h"
#include "engine/scheduler.h"
#include "engine/sequence_append.h"
#include "test_main.h"
#include "tiny_model.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::engine;

namespace {

std::vector<int32_t> tokens(int n, int salt) { return test::token_ids(n, salt); }

// Makes jobs and waits for their done() callbacks.
struct Waiter : test::DoneCounter {
  std::shared_ptr<AppendJob> job(std::vector<int32_t> ids, KvSequence kv, LogitsMode logits = LogitsMode::Last) {
    auto j = std::make_shared<AppendJob>();
    j->ids = std::move(ids);
    j->kv = std::move(kv);
    j->logits = logits;
    j->done = callback<AppendJob>();
    return j;
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

using test::PoisonSource;

// A tiny model with the append source on its engine loop (after `first`, when given).
struct Engine {
  std::unique_ptr<GPT2Model> model;
  SequenceAppendSource src;
  Scheduler sched;
  Waiter w;
  Engine(int64_t kv_tokens, uint64_t seed, WorkSource* first = nullptr)
      : model(test::tiny_model(kv_tokens, seed)), src(*model), sched(*model, SchedulerOptions{}) {
    if (first) sched.add_source(first);
    sched.add_source(&src);
  }
  // Submits the jobs, wakes the engine and waits until they are done.
  bool run(const std::vector<std::shared_ptr<AppendJob>>& jobs) {
    for (auto& j : jobs) src.submit(j);
    sched.notify();
    submitted += static_cast<int>(jobs.size());
    return w.wait(submitted);
  }
  int submitted = 0;
};

}  // namespace

TEST(appends_share_steps_and_equal_each_sequence_alone_bitwise) {
  Engine e(0, 5);
  auto reference = test::tiny_model(0, 5);  // same weights, its own cache
  const int n_seqs = 4;
  std::vector<KvSequence> kv(n_seqs), ref_kv(n_seqs);
  for (int round = 0; round < 4; round++) {
    std::vector<std::shared_ptr<AppendJob>> jobs;
    for (int s = 0; s < n_seqs; s++) {
      const LogitsMode mode = round == 0 && s == 1 ? LogitsMode::All : LogitsMode::Last;
      jobs.push_back(e.w.job(round == 0 ? tokens(3 + 4 * s, s) : tokens(1, 100 * round + s), std::move(kv[s]), mode));
    }
    const int64_t steps_before = e.sched.stats().steps;
    CHECK(e.run(jobs));
    CHECK(e.sched.stats().steps - steps_before == 1);  // one step for the whole round
    for (int s = 0; s < n_seqs; s++) {
      AppendJob& j = *jobs[s];
      CHECK(!j.error);
      const auto want = alone(*reference, j.ids, ref_kv[s], j.logits);
      CHECK(j.out == want);  // bitwise
      kv[s] = std::move(j.kv);
      CHECK(kv[s].length == ref_kv[s].length);
    }
  }
  for (auto& k : kv) e.model->kv_cache().release(k);
}

TEST(an_append_that_cannot_fit_fails_alone_and_keeps_its_state) {
  Engine e(64, 6);  // 4 blocks of 16
  auto big = e.w.job(tokens(60, 1), KvSequence{});
  auto small = e.w.job(tokens(60, 2), KvSequence{});
  CHECK(e.run({big, small}));
  CHECK(!big->error);
  CHECK(big->kv.length == 60);
  CHECK(code_of(small->error) == code::kKvCacheFull);
  CHECK(small->kv.length == 0 && small->kv.blocks.empty());
  e.model->kv_cache().release(big->kv);
  CHECK(e.model->kv_cache().free_blocks() == e.model->kv_cache().shape().num_blocks);
}

TEST(bad_input_is_rejected_at_submit) {
  Engine e(0, 7);
  CHECK_THROWS(e.src.submit(e.w.job({}, KvSequence{})));
  CHECK_THROWS(e.src.submit(e.w.job({1, 50257}, KvSequence{})));
  KvSequence long_kv;
  long_kv.length = 63;  // n_positions 64
  CHECK_THROWS(e.src.submit(e.w.job({1, 2}, long_kv)));
  std::vector<SequenceInput> step;
  StepBudget budget{2048, e.model->kv_cache().free_blocks()};
  e.src.plan(step, budget);
  CHECK(step.empty());
}

TEST(a_step_failed_by_another_source_is_retried_append_by_append) {
  PoisonSource poison;
  Engine e(0, 8, &poison);
  auto reference = test::tiny_model(0, 8);
  auto a = e.w.job(tokens(5, 1), KvSequence{});
  auto b = e.w.job(tokens(7, 2), KvSequence{});
  CHECK(e.run({a, b}));
  CHECK(e.sched.stats().failed_steps == 1);
  for (auto* j : {a.get(), b.get()}) {
    CHECK(!j->error);
    KvSequence ref;
    CHECK(j->out == alone(*reference, j->ids, ref, LogitsMode::Last));
    e.model->kv_cache().release(j->kv);
  }
}

TEST(stop_rejects_queued_appends) {
  Engine e(0, 9);
  auto a = e.w.job(tokens(4, 1), KvSequence{});
  e.src.submit(a);
  e.src.stop();
  CHECK(e.w.wait(1));
  CHECK(code_of(a->error) == code::kDisposed);
  CHECK_THROWS(e.src.submit(e.w.job(tokens(4, 2), KvSequence{})));
}

TEST_MAIN()
