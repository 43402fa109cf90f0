// Generation as an engine work source (engine/scheduler.h): requests are queued from any
// thread, admitted in FIFO order when the KV cache can hold their worst case, prefilled in
// chunks that share steps with the running decode rows, then decoded one token per row per
// step until a stop token, max_new_tokens, n_positions, an abort, or the end of a beam
// search. Results go to each request's GenerationSink, called on the engine thread.
//
// Rows: a sampling request with num_return > 1 has that many rows; they share the prompt's
// KV blocks (KvCache::fork after the prefill; the partial last block is copied on write).
// A beam request keeps num_beams rows, re-forked from their parents every step, and scores
// hypotheses exactly like transformers 4.41's BeamSearchScorer (see generation.cc).
//
// KV admission: a request is admitted only when the blocks its worst case could need
// (prompt + max_new_tokens for every row) are free and not promised to a running request,
// so running requests never starve each other; the others wait in order. A request whose
// worst case exceeds the whole cache fails with ERR_GPT2_KV_CACHE_FULL.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "engine/scheduler.h"

namespace gpt2::engine {

struct GenerationParams {
  std::vector<int32_t> prompt;  // non-empty
  SamplerConfig sampler;
  uint64_t seed = 0;            // row r draws from Rng(seed + r * golden ratio)
  int32_t max_new_tokens = 16;
  std::vector<int32_t> stop_token_ids;  // EOS included by the caller unless ignored
  int32_t num_return = 1;       // rows (sampling) or returned hypotheses (beams)
  int32_t num_beams = 1;
  float length_penalty = 1.0f;
  bool early_stopping = false;
  int32_t logprobs = -1;        // -1: none; 0: the chosen token's; n: also the top n
};

enum class FinishReason { Length, Stop, Abort };

struct TokenEvent {
  int32_t row = 0;
  int32_t token = 0;
  float logprob = 0;  // log-softmax of the raw logits (when logprobs >= 0)
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), best first
};

struct FinishedRow {
  std::vector<int32_t> tokens;  // generated tokens, without the stop/EOS token
  double score = 0;             // beams: sequences_scores; sampling: mean logprob
  FinishReason reason = FinishReason::Length;
};

// Receives a request's results on the engine thread; must not block for long.
class GenerationSink {
 public:
  virtual ~GenerationSink() = default;
  virtual void on_tokens(std::vector<TokenEvent>&& events) = 0;  // sampling rows, per step
  // Every row, in row order (sampling) or best first (beams). Last call.
  virtual void on_finish(std::vector<FinishedRow>&& rows) = 0;
  // The request failed (last call; its KV blocks are already released).
  virtual void on_error(std::exception_ptr error) = 0;
};

struct GenerationRequest;  // generation.cc

struct GenerationOptions {
  // Prompt tokens per step while decode rows are running (all the budget when none are),
  // so a long prompt arriving does not stall the streams for a whole big step.
  int32_t prefill_tokens_with_decodes = 256;
};

class GenerationSource : public WorkSource {
 public:
  GenerationSource(model::GPT2Model& model, Scheduler& scheduler, GenerationOptions options = {});
  ~GenerationSource() override;

  // Any thread. Validates (RangeError/TypeError), queues, wakes the engine.
  std::shared_ptr<GenerationRequest> submit(GenerationParams params, std::shared_ptr<GenerationSink> sink);
  // Any thread: the request ends within one step with FinishReason::Abort; its blocks are freed.
  void abort(const std::shared_ptr<GenerationRequest>& request);
  // Any thread: one sampling row ends with FinishReason::Stop (a stop string matched).
  void stop_row(const std::shared_ptr<GenerationRequest>& request, int32_t row);
  // Any thread: every request, queued or running, ends with Abort (Model.dispose()).
  void abort_all();

  void plan(std::vector<model::SequenceInput>& step, StepBudget& budget) override;
  void complete(std::span<model::SequenceOutput> outputs) override;
  void fail(std::exception_ptr error) override;
  void stop() override;

  // Worst-case KV blocks of a request (exposed for tests).
  int32_t worst_case_blocks(const GenerationParams& p) const;

 private:
  struct Planned {
    GenerationRequest* request;
    int32_t row;  // -1: a prefill chunk
    int32_t n;
  };
  bool take_budget(GenerationRequest& r, StepBudget& budget, int32_t n, int32_t blocks);
  void admit_and_prefill(std::vector<model::SequenceInput>& step, StepBudget& budget, bool decodes_running);
  void start_decoding(GenerationRequest& r, std::span<float> logits);
  void sample_row(GenerationRequest& r, int32_t row, std::span<float> logits, std::vector<TokenEvent>& events);
  void beam_step(GenerationRequest& r, std::vector<std::span<float>>& logits);
  void finish(GenerationRequest& r, FinishReason reason_for_live_rows);
  // Gives back the request's KV blocks and what is left of its reservation; marks it Done.
  void end(GenerationRequest& r);
  void reap();
  void take_incoming();

  model::GPT2Model& model_;
  Scheduler& scheduler_;
  GenerationOptions options_;
  std::mutex mutex_;  // incoming_ and the abort flag only; everything else is engine-thread state
  std::deque<std::shared_ptr<GenerationRequest>> incoming_;
  std::atomic<bool> abort_all_{false};
  std::deque<std::shared_ptr<GenerationRequest>> waiting_;  // FIFO, not admitted
  std::vector<std::shared_ptr<GenerationRequest>> running_;
  std::vector<Planned> planned_;
  int64_t reserved_blocks_ = 0;  // promised to running requests, not yet taken
};

}  // namespace gpt2::engine
