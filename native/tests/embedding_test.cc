// The embedding work source (engine/embedding.h) on the engine loop: jobs submitted
// together share steps and each vector equals its text run alone; a text longer than the
// budget runs alone; a step that fails because of another source's input is retried
// alone, item by item, so the embeddings still succeed; stop() rejects queued jobs; cancel()
// ends one job and drops its texts;
// pool_rows against a plain loop.
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>

#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "engine/embedding.h"
#include "engine/scheduler.h"
#include "model/pooling.h"
#include "test_main.h"
#include "tiny_model.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::engine;

namespace {

std::unique_ptr<GPT2Model> make_model() { return test::tiny_model(0, 11); }

std::vector<int32_t> text(int n, int salt) { return test::token_ids(n, salt); }

// Waits for jobs' done() callbacks.
struct Waiter : test::DoneCounter {
  std::shared_ptr<EmbedJob> job(std::vector<std::vector<int32_t>> texts) {
    auto j = std::make_shared<EmbedJob>();
    j->texts = std::move(texts);
    j->done = callback<EmbedJob>();
    return j;
  }
};

std::vector<float> alone(GPT2Model& m, const std::vector<int32_t>& ids) {
  KvSequence kv;
  SequenceInput in{ids.data(), static_cast<int32_t>(ids.size()), &kv, LogitsMode::None};
  auto out = m.forward(std::span<const SequenceInput>(&in, 1), ForwardOptions{true, false});
  m.kv_cache().release(kv);
  std::vector<float> v(m.config().n_embd);
  pool_rows(out[0].last_hidden_state.data(), in.n, m.config().n_embd, Pooling::Mean, v.data());
  return v;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// Plans one step of `src` under a token budget (with every free KV block); returns its inputs.
std::vector<SequenceInput> plan_step(GPT2Model& m, EmbeddingSource& src, int64_t tokens) {
  std::vector<SequenceInput> step;
  StepBudget budget;
  budget.tokens = tokens;
  budget.free_blocks = m.kv_cache().free_blocks();
  src.plan(step, budget);
  return step;
}

// Completes the planned step of n inputs with dummy vectors.
void complete_step(EmbeddingSource& src, size_t n) {
  std::vector<SequenceOutput> out(n);
  for (auto& o : out) o.hidden.assign(32, 1.0f);
  src.complete(out);
}

using test::PoisonSource;

}  // namespace

TEST(pool_rows_matches_plain_loops) {
  const int64_t n = 5, E = 7;
  std::vector<float> rows(n * E);
  for (size_t i = 0; i < rows.size(); i++) rows[i] = float(std::sin(double(i)));
  std::vector<float> out(E);
  pool_rows(rows.data(), n, E, Pooling::Mean, out.data());
  for (int64_t d = 0; d < E; d++) {
    float s = 0;
    for (int64_t r = 0; r < n; r++) s += rows[r * E + d];
    CHECK(std::fabs(out[d] - s / n) < 1e-6);
  }
  pool_rows(rows.data(), n, E, Pooling::Last, out.data());
  CHECK(std::equal(out.begin(), out.end(), rows.begin() + (n - 1) * E));
  pool_rows(rows.data(), n, E, Pooling::First, out.data());
  CHECK(std::equal(out.begin(), out.end(), rows.begin()));
  l2_normalize(out.data(), E);
  double ss = 0;
  for (float x : out) ss += double(x) * x;
  CHECK(std::fabs(ss - 1) < 1e-6);
}

TEST(jobs_share_steps_and_match_each_text_alone) {
  auto model = make_model();
  EmbeddingSource src(*model);
  Scheduler sched(*model, SchedulerOptions{128});
  sched.add_source(&src);
  Waiter w;
  std::vector<std::shared_ptr<EmbedJob>> jobs;
  for (int j = 0; j < 6; j++) {
    std::vector<std::vector<int32_t>> texts;
    for (int i = 0; i < 4; i++) texts.push_back(text(3 + (j * 4 + i) * 5 % 40, j * 4 + i));
    jobs.push_back(w.job(texts));
    src.submit(jobs.back());
  }
  // One text longer than the budget (runs alone).
  jobs.push_back(w.job({text(60, 77)}));
  src.submit(jobs.back());
  sched.notify();
  CHECK(w.wait(7));
  const SchedulerStats st = sched.stats();
  CHECK(st.max_step_sequences > 1);
  CHECK(st.steps < 25);
  for (auto& j : jobs) {
    CHECK(!j->error);
    CHECK(j->vectors.size() == j->texts.size());
    for (size_t i = 0; i < j->texts.size(); i++) CHECK(max_diff(j->vectors[i], alone(*model, j->texts[i])) < 1e-5);
  }
  CHECK(model->kv_cache().free_blocks() == model->kv_cache().shape().num_blocks);
}

TEST(plan_starts_with_the_oldest_and_groups_by_length) {
  auto model = make_model();
  EmbeddingSource src(*model);
  Waiter w;
  auto job = w.job({text(4, 0), text(30, 1), text(5, 2), text(31, 3), text(6, 4), text(29, 5), text(4, 6)});
  src.submit(job);
  auto plan = [&](int64_t tokens) {
    std::vector<int32_t> sizes;
    for (auto& in : plan_step(*model, src, tokens)) sizes.push_back(in.n);
    complete_step(src, sizes.size());
    return sizes;
  };
  // Oldest = 4 tokens; then the closest lengths until 40 tokens: 4, 5, 6 (29 does not fit).
  CHECK((plan(40) == std::vector<int32_t>{4, 4, 5, 6}));
  // Oldest left = 30; 31 and 29 are 1 away, neither fits with it.
  CHECK((plan(40) == std::vector<int32_t>{30}));
  // A text longer than the budget runs alone when the step is empty.
  CHECK((plan(20) == std::vector<int32_t>{31}));
  CHECK((plan(40) == std::vector<int32_t>{29}));
  CHECK(plan(40).empty());
  CHECK(w.wait(1) && !job->error && job->vectors.size() == 7);
}

TEST(a_failed_shared_step_is_retried_alone) {
  auto model = make_model();
  PoisonSource poison;
  EmbeddingSource src(*model);
  Scheduler sched(*model, SchedulerOptions{256});
  sched.add_source(&poison);
  sched.add_source(&src);
  Waiter w;
  auto job = w.job({text(5, 1), text(9, 2), text(4, 3)});
  src.submit(job);
  sched.notify();
  CHECK(w.wait(1));
  CHECK(poison.failures == 1);
  CHECK(!job->error);
  for (size_t i = 0; i < 3; i++) CHECK(max_diff(job->vectors[i], alone(*model, job->texts[i])) < 1e-5);
  CHECK(model->kv_cache().free_blocks() == model->kv_cache().shape().num_blocks);
}

TEST(submit_validates_and_stop_rejects_queued_jobs) {
  auto model = make_model();
  EmbeddingSource src(*model);
  CHECK_THROWS(src.submit([] { auto j = std::make_shared<EmbedJob>(); j->texts = {{1, 2}, {}}; return j; }()));
  CHECK_THROWS(src.submit([] { auto j = std::make_shared<EmbedJob>(); j->texts = {std::vector<int32_t>(65, 1)}; return j; }()));
  CHECK_THROWS(src.submit([] { auto j = std::make_shared<EmbedJob>(); j->texts = {{1, 50257}}; return j; }()));
  CHECK_THROWS(src.submit([] { auto j = std::make_shared<EmbedJob>(); j->texts = {{1}}; j->options.capture.layer = 3; return j; }()));
  Waiter w;
  auto job = w.job({text(5, 1)});
  src.submit(job);  // never notified: still queued at stop()
  src.stop();
  CHECK(w.wait(1));
  CHECK(job->error != nullptr);
  try {
    std::rethrow_exception(job->error);
  } catch (const Error& e) {
    CHECK(e.code() == code::kDisposed);
  }
}

TEST(cancel_ends_a_job_and_drops_its_queued_and_running_items) {
  auto model = make_model();
  EmbeddingSource src(*model);
  Waiter w;
  auto a = w.job({text(10, 1), text(11, 2), text(12, 3)});
  auto b = w.job({text(30, 4)});
  src.submit(a);
  src.submit(b);
  auto plan = [&](int64_t tokens) { return plan_step(*model, src, tokens); };
  auto complete = [&](size_t n) { complete_step(src, n); };
  // a's first text runs; a is cancelled meanwhile: done() at once, with ERR_GPT2_ABORTED.
  auto step = plan(10);
  CHECK(step.size() == 1 && step[0].n == 10);
  CHECK(src.cancel(a));
  CHECK(w.done == 1);
  CHECK(!src.cancel(a));  // already finished
  try {
    std::rethrow_exception(a->error);
  } catch (const Error& e) {
    CHECK(e.code() == code::kAborted);
  }
  complete(step.size());  // the running text's result is discarded
  CHECK(a->vectors.empty());
  // a's queued texts are dropped: the next step is b's text alone.
  step = plan(64);
  CHECK(step.size() == 1 && step[0].n == 30);
  complete(step.size());
  CHECK(w.wait(2) && !b->error && b->vectors.size() == 1);
  CHECK(!src.cancel(b));
  CHECK(plan(64).empty());
  CHECK(model->kv_cache().free_blocks() == model->kv_cache().shape().num_blocks);
}

TEST_MAIN()
