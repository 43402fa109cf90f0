// The generation work source (engine/generation.h) on a real engine loop: greedy requests
// batched together equal a plain argmax loop over forward(); prompts longer than a step are
// prefilled in chunks; n > 1 rows fork the prompt; beams and aborts give every KV block back;
// requests that do not fit wait; stop() ends what is left. Run under ASan by native.test.ts
// with GPT2_TEST_SANITIZE=1.
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/error.h"
#include "engine/generation.h"
#include "test_main.h"
#include "tiny_model.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::engine;

namespace {

std::unique_ptr<GPT2Model> make_model(int64_t kv_tokens) { return test::tiny_model(kv_tokens, 11); }

struct Collect : GenerationSink {
  std::mutex m;
  std::condition_variable cv;
  std::vector<int32_t> streamed;
  std::vector<FinishedRow> rows;
  bool done = false, failed = false;
  void on_tokens(std::vector<TokenEvent>&& events) override {
    std::lock_guard<std::mutex> l(m);
    for (auto& e : events)
      if (e.row == 0) streamed.push_back(e.token);
  }
  void on_finish(std::vector<FinishedRow>&& r) override {
    std::lock_guard<std::mutex> l(m);
    rows = std::move(r);
    done = true;
    cv.notify_all();
  }
  void on_error(std::exception_ptr) override {
    std::lock_guard<std::mutex> l(m);
    failed = done = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> l(m);
    cv.wait_for(l, std::chrono::seconds(60), [&] { return done; });
    if (!done) throw test::Failure("timed out");
  }
};

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; i++) ids[i] = (i * 7919 + salt * 104729 + 1) % 50257;
  return ids;
}

std::vector<int32_t> argmax_loop(GPT2Model& m, std::vector<int32_t> ids, int steps) {
  std::vector<int32_t> out;
  for (int s = 0; s < steps; s++) {
    KvSequence kv;
    SequenceInput in{ids.data(), static_cast<int32_t>(ids.size()), &kv, LogitsMode::Last};
    auto o = m.forward(std::span<const SequenceInput>(&in, 1), ForwardOptions{false, false});
    m.kv_cache().release(kv);
    const int32_t t = argmax(o[0].logits);
    out.push_back(t);
    ids.push_back(t);
  }
  return out;
}

GenerationParams greedy(std::vector<int32_t> p, int n) {
  GenerationParams g;
  g.prompt = std::move(p);
  g.max_new_tokens = n;
  return g;
}

}  // namespace

TEST(greedy_batched_with_chunked_prefill_equals_argmax_loop) {
  auto model = make_model(0);
  Scheduler sched(*model, SchedulerOptions{16});  // prompts of 20+ tokens need several chunks
  GenerationSource src(*model, sched, GenerationOptions{8});
  sched.add_source(&src);
  const int32_t free0 = model->kv_cache().free_blocks();
  std::vector<std::shared_ptr<Collect>> sinks;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; i++) {
    prompts.push_back(prompt(3 + i * 6, i));
    sinks.push_back(std::make_shared<Collect>());
    src.submit(greedy(prompts.back(), 10), sinks.back());
  }
  for (int i = 0; i < 5; i++) {
    sinks[i]->wait();
    CHECK(!sinks[i]->failed);
    CHECK(sinks[i]->rows.size() == 1);
    CHECK(sinks[i]->rows[0].tokens == argmax_loop(*model, prompts[i], 10));
    CHECK(sinks[i]->streamed == sinks[i]->rows[0].tokens);
    CHECK(sinks[i]->rows[0].reason == FinishReason::Length);
  }
  CHECK(sched.stats().max_step_sequences > 1);
  sched.stop();
  CHECK(model->kv_cache().free_blocks() == free0);
}

TEST(rows_beams_and_aborts_give_every_block_back) {
  auto model = make_model(0);
  Scheduler sched(*model, SchedulerOptions{});
  GenerationSource src(*model, sched);
  sched.add_source(&src);
  const int32_t free0 = model->kv_cache().free_blocks();
  GenerationParams sampled = greedy(prompt(20, 1), 12);
  sampled.sampler.temperature = 1.0f;
  sampled.num_return = 3;
  sampled.seed = 5;
  GenerationParams beams = greedy(prompt(9, 2), 8);
  beams.num_beams = 4;
  beams.num_return = 2;
  auto a = std::make_shared<Collect>(), b = std::make_shared<Collect>(), c = std::make_shared<Collect>();
  src.submit(sampled, a);
  src.submit(beams, b);
  auto r = src.submit(greedy(prompt(5, 3), 40), c);
  src.abort(r);
  a->wait();
  b->wait();
  c->wait();
  CHECK(a->rows.size() == 3);
  for (auto& row : a->rows) CHECK(row.tokens.size() == 12);
  CHECK(b->rows.size() == 2);
  CHECK(b->rows[0].score >= b->rows[1].score);
  CHECK(c->rows[0].reason == FinishReason::Abort);
  sched.stop();
  CHECK(model->kv_cache().free_blocks() == free0);
}

TEST(requests_wait_for_blocks_in_order_and_too_big_ones_throw) {
  auto model = make_model(64);  // 4 blocks of 16
  Scheduler sched(*model, SchedulerOptions{});
  GenerationSource src(*model, sched);
  sched.add_source(&src);
  std::vector<std::shared_ptr<Collect>> sinks;
  for (int i = 0; i < 3; i++) {
    sinks.push_back(std::make_shared<Collect>());
    src.submit(greedy(prompt(30, i), 30), sinks.back());  // 60 positions: the whole cache each
  }
  for (auto& s : sinks) {
    s->wait();
    CHECK(!s->failed && s->rows[0].tokens.size() == 30);
  }
  GenerationParams big = greedy(prompt(30, 9), 30);
  big.num_return = 2;
  big.sampler.temperature = 1.0f;
  CHECK_THROWS(src.submit(big, std::make_shared<Collect>()));
  sched.stop();
}

TEST(stop_ends_queued_and_running_requests) {
  auto model = make_model(0);
  auto sched = std::make_unique<Scheduler>(*model, SchedulerOptions{});
  GenerationSource src(*model, *sched);
  sched->add_source(&src);
  auto s = std::make_shared<Collect>();
  src.submit(greedy(prompt(4, 1), 50), s);
  sched->stop();
  s->wait();
  CHECK(s->rows.size() == 1);
  CHECK(s->rows[0].reason == FinishReason::Abort || s->rows[0].reason == FinishReason::Length);
  CHECK(model->kv_cache().free_blocks() == model->kv_cache().shape().num_blocks);
}

int main(int argc, char** argv) { return gpt2::test::run_all(argc, argv); }
