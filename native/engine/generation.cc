#include "engine/generation.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace gpt2::engine {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}

struct GenerationRow {
  KvSequence kv;
  std::vector<int32_t> generated;
  int32_t next_input = 0;
  Rng rng;
  double sum_logprob = 0;  // sampling: raw logprobs of the kept tokens
  float beam_score = 0;    // beams: running sum of (processed) log-softmax scores, float32 as torch
  bool finished = false;
  FinishReason reason = FinishReason::Length;
};

// transformers 4.41 BeamHypotheses.
struct BeamHypotheses {
  struct Hyp {
    double score;
    std::vector<int32_t> tokens;
    bool eos;
  };
  std::vector<Hyp> beams;
  double worst_score = 1e9;
  bool done = false;

  void add(std::vector<int32_t> tokens, double sum_logprobs, int32_t generated_len, float length_penalty, int32_t num_beams,
           bool eos) {
    const double score = sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty);
    if (static_cast<int32_t>(beams.size()) < num_beams || score > worst_score) {
      beams.push_back({score, std::move(tokens), eos});
      if (static_cast<int32_t>(beams.size()) > num_beams) {
        std::vector<std::pair<double, size_t>> sorted;
        for (size_t i = 0; i < beams.size(); i++) sorted.emplace_back(beams[i].score, i);
        std::sort(sorted.begin(), sorted.end());
        beams.erase(beams.begin() + static_cast<std::ptrdiff_t>(sorted[0].second));
        worst_score = sorted[1].first;
      } else {
        worst_score = std::min(score, worst_score);
      }
    }
  }
  bool is_done(double best_sum_logprobs, int32_t cur_len, float length_penalty, int32_t num_beams, bool early_stopping) const {
    if (static_cast<int32_t>(beams.size()) < num_beams) return false;
    if (early_stopping) return true;
    return worst_score >= best_sum_logprobs / std::pow(static_cast<double>(cur_len), length_penalty);
  }
};

struct GenerationRequest {
  GenerationParams p;
  std::shared_ptr<GenerationSink> sink;
  std::atomic<bool> aborted{false};
  std::unique_ptr<std::atomic<bool>[]> row_stop;  // stop_row() flags, num_return of them
  enum class Phase { Waiting, Prefill, Decode, Done } phase = Phase::Waiting;
  int32_t prefilled = 0;
  int64_t reserved = 0;  // blocks promised and not yet taken
  KvSequence prompt_kv;  // during the prefill
  std::vector<std::unique_ptr<GenerationRow>> rows;
  BeamHypotheses hyps;
  int32_t beam_outputs = 0;  // beam rows whose logits arrived this step

  bool beams() const { return p.num_beams > 1; }
  bool is_stop_token(int32_t t) const {
    return std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), t) != p.stop_token_ids.end();
  }
};

GenerationSource::GenerationSource(model::GPT2Model& model, Scheduler& scheduler, GenerationOptions options)
    : model_(model), scheduler_(scheduler), options_(options) {}

GenerationSource::~GenerationSource() = default;

int32_t GenerationSource::worst_case_blocks(const GenerationParams& p) const {
  const KvCache& kv = model_.kv_cache();
  const int64_t P = static_cast<int64_t>(p.prompt.size());
  const int64_t total = std::min<int64_t>(P + p.max_new_tokens, model_.config().n_positions);
  const int32_t rows = std::max(p.num_beams, p.num_return);
  const int32_t shared = static_cast<int32_t>(P / kv.shape().block_size);  // full prompt blocks, shared by forks
  // Each row owns the rest, plus one block of slack for the copy-on-write of a shared block.
  const int32_t per_row = kv.blocks_for(total) - shared + (rows > 1 ? 1 : 0);
  return shared + rows * per_row;
}

std::shared_ptr<GenerationRequest> GenerationSource::submit(GenerationParams params, std::shared_ptr<GenerationSink> sink) {
  const auto& cfg = model_.config();
  if (params.prompt.empty()) throw_range_error("generate: the prompt is empty");
  model::check_token_ids(params.prompt.data(), static_cast<int64_t>(params.prompt.size()), cfg.vocab_size,
                         "generate: prompt ");
  if (static_cast<int64_t>(params.prompt.size()) >= cfg.n_positions)
    throw_range_error("generate: a prompt of " + std::to_string(params.prompt.size()) +
                      " tokens leaves no room for new tokens (n_positions " + std::to_string(cfg.n_positions) + ")");
  if (params.max_new_tokens < 1) throw_range_error("generate: maxNewTokens must be at least 1");
  if (params.num_beams < 1) throw_range_error("generate: numBeams must be at least 1");
  if (params.num_return < 1) throw_range_error("generate: numReturnSequences must be at least 1");
  if (params.num_beams > 1 && params.num_return > params.num_beams)
    throw_range_error("generate: numReturnSequences must not exceed numBeams");
  if (params.num_beams > 1 && !params.sampler.greedy())
    throw_range_error("generate: beam search is deterministic; use temperature 0 with numBeams > 1");
  for (auto& [id, b] : params.sampler.logit_bias)
    if (id < 0 || id >= cfg.vocab_size) throw_range_error("generate: logitBias token id " + std::to_string(id) + " is out of range");
  auto r = std::make_shared<GenerationRequest>();
  r->p = std::move(params);
  r->sink = std::move(sink);
  r->row_stop.reset(new std::atomic<bool>[r->p.num_return]);
  for (int32_t i = 0; i < r->p.num_return; i++) r->row_stop[i] = false;
  const int32_t worst = worst_case_blocks(r->p);
  if (worst > model_.kv_cache().shape().num_blocks)
    throw Error(ErrorKind::RangeError, code::kKvCacheFull,
                "generate: this request needs up to " + std::to_string(worst) + " KV-cache blocks but the whole cache has " +
                    std::to_string(model_.kv_cache().shape().num_blocks) + " (raise kvCacheTokens or lower maxNewTokens)");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming_.push_back(r);
  }
  scheduler_.notify();
  return r;
}

void GenerationSource::abort(const std::shared_ptr<GenerationRequest>& request) {
  request->aborted = true;
  scheduler_.notify();
}

void GenerationSource::stop_row(const std::shared_ptr<GenerationRequest>& request, int32_t row) {
  if (row < 0 || row >= request->p.num_return) return;
  request->row_stop[row] = true;
  scheduler_.notify();
}

void GenerationSource::abort_all() {
  abort_all_ = true;
  scheduler_.notify();
}

void GenerationSource::end(GenerationRequest& r) {
  KvCache& kv = model_.kv_cache();
  kv.release(r.prompt_kv);
  for (auto& row : r.rows) kv.release(row->kv);
  reserved_blocks_ -= r.reserved;
  r.reserved = 0;
  r.phase = GenerationRequest::Phase::Done;
}

void GenerationSource::finish(GenerationRequest& r, FinishReason reason_for_live_rows) {
  end(r);
  std::vector<FinishedRow> out;
  if (r.beams() && reason_for_live_rows != FinishReason::Abort) {
    // Best first (stable for equal scores: insertion order, like Python's sorted()).
    std::vector<BeamHypotheses::Hyp> hyps = r.hyps.beams;
    std::stable_sort(hyps.begin(), hyps.end(), [](auto& a, auto& b) { return a.score > b.score; });
    for (int32_t i = 0; i < r.p.num_return && i < static_cast<int32_t>(hyps.size()); i++)
      out.push_back({std::move(hyps[i].tokens), hyps[i].score, hyps[i].eos ? FinishReason::Stop : FinishReason::Length});
  } else if (r.rows.empty() || r.beams()) {
    for (int32_t i = 0; i < r.p.num_return; i++) out.push_back({{}, 0, reason_for_live_rows});
  } else {
    for (auto& row : r.rows) {
      const double n = static_cast<double>(std::max<size_t>(row->generated.size(), 1));
      out.push_back({std::move(row->generated), row->sum_logprob / n, row->finished ? row->reason : reason_for_live_rows});
    }
  }
  r.rows.clear();
  r.sink->on_finish(std::move(out));
}

// Ends what was aborted or stopped (between steps, so nothing of theirs is in flight).
void GenerationSource::reap() {
  const bool all = abort_all_;
  for (auto& r : running_) {
    if (r->aborted || all) {
      finish(*r, FinishReason::Abort);
      continue;
    }
    if (r->phase == GenerationRequest::Phase::Decode && !r->beams()) {
      bool live = false;
      for (size_t i = 0; i < r->rows.size(); i++) {
        GenerationRow& row = *r->rows[i];
        if (!row.finished && r->row_stop[i]) {
          row.finished = true;
          row.reason = FinishReason::Stop;
          model_.kv_cache().release(row.kv);
        }
        live = live || !row.finished;
      }
      if (!live) finish(*r, FinishReason::Stop);
    }
  }
  std::erase_if(running_, [](auto& r) { return r->phase == GenerationRequest::Phase::Done; });
  for (auto& r : waiting_)
    if (r->aborted || all) finish(*r, FinishReason::Abort);
  std::erase_if(waiting_, [](auto& r) { return r->phase == GenerationRequest::Phase::Done; });
}

// Spends step budget for a request, from its KV reservation first.
bool GenerationSource::take_budget(GenerationRequest& r, StepBudget& budget, int32_t n, int32_t blocks) {
  if (!budget.take(n, blocks)) return false;
  const int64_t from_reservation = std::min<int64_t>(blocks, r.reserved);
  r.reserved -= from_reservation;
  reserved_blocks_ -= from_reservation;
  return true;
}

void GenerationSource::take_incoming() {
  std::lock_guard<std::mutex> lock(mutex_);
  while (!incoming_.empty()) {
    waiting_.push_back(std::move(incoming_.front()));
    incoming_.pop_front();
  }
}

void GenerationSource::plan(std::vector<model::SequenceInput>& step, StepBudget& budget) {
  take_incoming();
  reap();
  planned_.clear();
  KvCache& kv = model_.kv_cache();
  auto take = [&](GenerationRequest& r, int32_t n, int32_t blocks) { return take_budget(r, budget, n, blocks); };
  // Decode rows first: one token each.
  bool decodes = false;
  for (auto& rp : running_) {
    GenerationRequest& r = *rp;
    if (r.phase != GenerationRequest::Phase::Decode) continue;
    if (r.beams()) {
      // All beams of a step together: the beam step needs every beam's logits.
      int32_t blocks = 0;
      for (auto& row : r.rows) blocks += kv.blocks_needed(row->kv, 1);
      const int32_t n = static_cast<int32_t>(r.rows.size());
      if (blocks > budget.free_blocks || (n > budget.tokens && !budget.step_empty)) continue;
      for (auto& row : r.rows) {
        take(r, 1, kv.blocks_needed(row->kv, 1));
        step.push_back({&row->next_input, 1, &row->kv, model::LogitsMode::Last});
        planned_.push_back({&r, static_cast<int32_t>(&row - r.rows.data()), 1});
      }
      r.beam_outputs = 0;
      decodes = true;
      continue;
    }
    for (size_t i = 0; i < r.rows.size(); i++) {
      GenerationRow& row = *r.rows[i];
      if (row.finished) continue;
      if (!take(r, 1, kv.blocks_needed(row.kv, 1))) continue;
      step.push_back({&row.next_input, 1, &row.kv, model::LogitsMode::Last});
      planned_.push_back({&r, static_cast<int32_t>(i), 1});
      decodes = true;
    }
  }
  admit_and_prefill(step, budget, decodes);
  // What later sources may use: not the blocks promised to running requests.
  budget.free_blocks = static_cast<int32_t>(std::max<int64_t>(0, budget.free_blocks - reserved_blocks_));
}

void GenerationSource::admit_and_prefill(std::vector<model::SequenceInput>& step, StepBudget& budget, bool decodes_running) {
  KvCache& kv = model_.kv_cache();
  int64_t prefill_left = decodes_running ? options_.prefill_tokens_with_decodes : INT64_MAX;
  auto take = [&](GenerationRequest& r, int32_t n, int32_t blocks) { return take_budget(r, budget, n, blocks); };
  // One chunk per request per step.
  auto prefill = [&](GenerationRequest& r) {
    const int32_t remaining = static_cast<int32_t>(r.p.prompt.size()) - r.prefilled;
    int64_t n = std::min<int64_t>(remaining, prefill_left);
    if (!budget.step_empty) n = std::min<int64_t>(n, budget.tokens);
    if (n <= 0) return;
    const int32_t blocks = kv.blocks_needed(r.prompt_kv, static_cast<int32_t>(n));
    if (!take(r, static_cast<int32_t>(n), blocks)) return;
    prefill_left -= n;
    step.push_back({r.p.prompt.data() + r.prefilled, static_cast<int32_t>(n), &r.prompt_kv,
                    n == remaining ? model::LogitsMode::Last : model::LogitsMode::None});
    planned_.push_back({&r, -1, static_cast<int32_t>(n)});
  };
  for (auto& r : running_)
    if (r->phase == GenerationRequest::Phase::Prefill) prefill(*r);
  // Admit in FIFO order while the worst case fits in what is neither used nor promised.
  while (!waiting_.empty()) {
    GenerationRequest& r = *waiting_.front();
    const int32_t worst = worst_case_blocks(r.p);
    if (worst > budget.free_blocks - reserved_blocks_) break;
    r.reserved = worst;
    reserved_blocks_ += worst;
    r.phase = GenerationRequest::Phase::Prefill;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    prefill(r);
  }
}

void GenerationSource::complete(std::span<model::SequenceOutput> outputs) {
  std::vector<TokenEvent> events;
  GenerationRequest* events_of = nullptr;
  auto flush = [&] {
    if (events_of && !events.empty()) events_of->sink->on_tokens(std::move(events));
    events.clear();
    events_of = nullptr;
  };
  std::vector<std::span<float>> beam_logits;
  for (size_t i = 0; i < planned_.size(); i++) {
    const Planned& pl = planned_[i];
    GenerationRequest& r = *pl.request;
    std::span<float> logits(outputs[i].logits);
    if (events_of != &r) flush();
    events_of = &r;
    if (pl.row < 0) {
      r.prefilled += pl.n;
      if (r.prefilled == static_cast<int32_t>(r.p.prompt.size())) start_decoding(r, logits);
      continue;
    }
    if (r.beams()) {
      beam_logits.push_back(logits);
      if (static_cast<size_t>(++r.beam_outputs) == r.rows.size()) {
        beam_step(r, beam_logits);
        beam_logits.clear();
      }
      continue;
    }
    sample_row(r, pl.row, logits, events);
  }
  flush();
  planned_.clear();
  // Requests whose rows are all finished end now.
  for (auto& r : running_) {
    if (r->phase != GenerationRequest::Phase::Decode || r->beams()) continue;
    if (std::all_of(r->rows.begin(), r->rows.end(), [](auto& row) { return row->finished; })) finish(*r, FinishReason::Length);
  }
  std::erase_if(running_, [](auto& r) { return r->phase == GenerationRequest::Phase::Done; });
}

void GenerationSource::start_decoding(GenerationRequest& r, std::span<float> logits) {
  KvCache& kv = model_.kv_cache();
  r.phase = GenerationRequest::Phase::Decode;
  const int32_t nrows = r.beams() ? 1 : r.p.num_return;  // beams: only beam 0 is live at step 0
  for (int32_t i = 0; i < nrows; i++) {
    auto row = std::make_unique<GenerationRow>();
    row->rng = Rng(r.p.seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL);
    if (i == nrows - 1) {
      row->kv = std::move(r.prompt_kv);  // the last row takes the prompt's blocks; the others fork them
      r.prompt_kv = KvSequence{};
    } else {
      kv.fork(r.prompt_kv, row->kv);
    }
    r.rows.push_back(std::move(row));
  }
  if (r.beams()) {
    std::vector<std::span<float>> one{logits};
    beam_step(r, one);
    return;
  }
  std::vector<TokenEvent> events;
  std::vector<float> copy;
  for (int32_t i = 0; i < nrows; i++) {
    if (i + 1 < nrows) {
      copy.assign(logits.begin(), logits.end());
      sample_row(r, i, copy, events);
    } else {
      sample_row(r, i, logits, events);
    }
  }
  if (!events.empty()) r.sink->on_tokens(std::move(events));
}

void GenerationSource::sample_row(GenerationRequest& r, int32_t i, std::span<float> logits, std::vector<TokenEvent>& events) {
  GenerationRow& row = *r.rows[i];
  if (row.finished) return;  // stopped from JavaScript while its step ran
  const bool want_logprob = r.p.logprobs >= 0 || r.p.num_return > 1;
  double lse = 0;
  std::vector<std::pair<int32_t, float>> top;
  std::vector<float> raw;
  if (want_logprob) {
    lse = log_sum_exp(logits);
    if (r.p.logprobs > 0) top = top_n(logits, r.p.logprobs);
    raw.assign(logits.begin(), logits.end());
  }
  const int32_t token = sample_token(r.p.sampler, {r.p.prompt, row.generated}, logits, row.rng);
  if (r.is_stop_token(token)) {
    row.finished = true;
    row.reason = FinishReason::Stop;
    model_.kv_cache().release(row.kv);
    return;
  }
  const float lp = want_logprob ? static_cast<float>(raw[token] - lse) : 0.0f;
  row.sum_logprob += lp;
  row.generated.push_back(token);
  row.next_input = token;
  TokenEvent e;
  e.row = i;
  e.token = token;
  e.logprob = lp;
  for (auto& [id, v] : top) e.top.emplace_back(id, static_cast<float>(v - lse));
  events.push_back(std::move(e));
  if (static_cast<int32_t>(row.generated.size()) >= r.p.max_new_tokens || row.kv.length >= model_.config().n_positions) {
    row.finished = true;
    row.reason = FinishReason::Length;
    model_.kv_cache().release(row.kv);
  }
}

// One step of transformers 4.41 beam search (BeamSearchScorer.process, then finalize):
// scores = running beam score + processed log-softmax; the top 2 * num_beams candidates
// over all beams x vocabulary, best first; an EOS candidate among the first num_beams
// ranks closes a hypothesis (score sum / generated_len ^ length_penalty, the EOS counted),
// the first num_beams non-EOS candidates become the next beams.
void GenerationSource::beam_step(GenerationRequest& r, std::vector<std::span<float>>& logits) {
  KvCache& kv = model_.kv_cache();
  const int32_t num_beams = r.p.num_beams;
  const int32_t k = 2 * num_beams;
  struct Cand {
    float score;
    int32_t beam;
    int32_t token;
  };
  std::vector<Cand> cands;
  for (size_t b = 0; b < r.rows.size(); b++) {
    GenerationRow& row = *r.rows[b];
    std::span<float> lg = logits[b];
    // log_softmax in float32, as torch computes it.
    const float m = lg[argmax(lg)];
    float s = 0;
    for (float v : lg) s += std::exp(v - m);
    const float log_s = std::log(s);
    for (float& v : lg) v = (v - m) - log_s;
    apply_processors(r.p.sampler, {r.p.prompt, row.generated}, lg);
    for (float& v : lg) v += row.beam_score;
    for (auto& [id, v] : top_n(lg, k)) cands.push_back({v, static_cast<int32_t>(b), id});
  }
  // torch.topk over the flattened [beams * vocab] scores: ties go to the lower flat index.
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    return a.score > b.score || (a.score == b.score && (a.beam < b.beam || (a.beam == b.beam && a.token < b.token)));
  });
  if (static_cast<int32_t>(cands.size()) > k) cands.resize(k);
  const int32_t generated_len = static_cast<int32_t>(r.rows[0]->generated.size()) + 1;
  std::vector<Cand> next;
  for (int32_t rank = 0; rank < static_cast<int32_t>(cands.size()); rank++) {
    const Cand& c = cands[rank];
    if (r.is_stop_token(c.token)) {
      if (rank >= num_beams) continue;
      r.hyps.add(r.rows[c.beam]->generated, c.score, generated_len, r.p.length_penalty, num_beams, true);
    } else {
      next.push_back(c);
    }
    if (static_cast<int32_t>(next.size()) == num_beams) break;
  }
  r.hyps.done = r.hyps.done ||
                r.hyps.is_done(cands[0].score, generated_len, r.p.length_penalty, num_beams, r.p.early_stopping);
  const bool at_length = generated_len >= r.p.max_new_tokens || r.rows[0]->kv.length >= model_.config().n_positions;
  if (r.hyps.done || at_length) {
    if (!r.hyps.done)
      for (const Cand& c : next) {
        std::vector<int32_t> tokens = r.rows[c.beam]->generated;
        tokens.push_back(c.token);
        r.hyps.add(std::move(tokens), c.score, generated_len, r.p.length_penalty, num_beams, false);
      }
    finish(r, FinishReason::Length);
    return;
  }
  std::vector<std::unique_ptr<GenerationRow>> rows;
  for (const Cand& c : next) {
    auto row = std::make_unique<GenerationRow>();
    const GenerationRow& parent = *r.rows[c.beam];
    kv.fork(parent.kv, row->kv);
    row->generated = parent.generated;
    row->generated.push_back(c.token);
    row->next_input = c.token;
    row->beam_score = c.score;
    rows.push_back(std::move(row));
  }
  for (auto& row : r.rows) kv.release(row->kv);
  r.rows = std::move(rows);
}

void GenerationSource::fail(std::exception_ptr error) {
  // A full cache (blocks taken outside the engine, e.g. by a Sequence, between plan and
  // forward) is retried next step: nothing advanced. Anything else fails the requests
  // that were in the step.
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    if (e.code() == code::kKvCacheFull) {
      for (const Planned& pl : planned_) pl.request->beam_outputs = 0;
      planned_.clear();
      return;
    }
  } catch (...) {
  }
  for (const Planned& pl : planned_) {
    GenerationRequest& r = *pl.request;
    if (r.phase == GenerationRequest::Phase::Done) continue;
    end(r);
    r.rows.clear();
    r.sink->on_error(error);
  }
  planned_.clear();
  std::erase_if(running_, [](auto& r) { return r->phase == GenerationRequest::Phase::Done; });
}

void GenerationSource::stop() {
  take_incoming();
  for (auto& r : running_) finish(*r, FinishReason::Abort);
  for (auto& r : waiting_) finish(*r, FinishReason::Abort);
  running_.clear();
  waiting_.clear();
}

}  // namespace gpt2::engine
