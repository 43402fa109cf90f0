// generate(nativeModel, prompt, options, onEvent) -> { abort(), stopRow(row) }
//
// Queues one request on the model's GenerationSource (engine/generation.h) and streams its
// results back through the request's RequestEvents channel (request_events.h):
// onEvent('tokens', {...}) once per step with new tokens, then exactly one of
// onEvent('finish', rows) or onEvent('error', err). The request holds the model's InFlight
// token until its channel is finalized (after the last event), so dispose() frees the model
// only when every generation has ended; dispose() itself aborts them (model_state.h).
// The channel keeps Node alive while the request runs, and only then.
#include <napi.h>

#include <cmath>
#include <cstring>

#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "addon/request_events.h"
#include "engine/generation.h"

namespace gpt2::addon {
namespace {

using engine::FinishedRow;
using engine::FinishReason;
using engine::GenerationParams;
using engine::GenerationSource;
using engine::TokenEvent;

// One event of a request, carried to the JS thread by its RequestEvents channel.
struct Delivery {
  enum class Kind { Tokens, Finish, Error } kind;
  std::vector<TokenEvent> tokens;
  std::vector<FinishedRow> rows;
  CapturedError error;
};
using Events = RequestEvents<Delivery>;

// The engine side: each result becomes an event; the last one closes the channel.
class EventsSink : public engine::GenerationSink {
 public:
  explicit EventsSink(std::shared_ptr<Events> events) : events_(std::move(events)) {}
  void on_tokens(std::vector<TokenEvent>&& events) override {
    events_->send(Delivery{Delivery::Kind::Tokens, std::move(events), {}, {}});
  }
  void on_finish(std::vector<FinishedRow>&& rows) override {
    events_->send(Delivery{Delivery::Kind::Finish, {}, std::move(rows), {}});
    events_->close();
  }
  void on_error(std::exception_ptr error) override {
    Delivery d{Delivery::Kind::Error, {}, {}, {}};
    d.error.capture(error);
    events_->send(std::move(d));
    events_->close();
  }

 private:
  std::shared_ptr<Events> events_;
};

// The JS side: calls onEvent(kind, payload); holds the model's InFlight token until the
// channel is finalized (after the last event).
class EventsReceiver : public Events::Receiver {
 public:
  EventsReceiver(Napi::Function on_event, std::shared_ptr<ModelState> state)
      : on_event_(Napi::Persistent(on_event)), in_flight_(std::move(state)) {}

  void deliver(Napi::Env env, Delivery& d) override {
    Napi::Function callback = on_event_.Value();
    if (d.kind == Delivery::Kind::Error) {
      callback.Call({Napi::String::New(env, "error"), d.error.to_js(env).Value()});
      return;
    }
    if (d.kind == Delivery::Kind::Finish) {
      callback.Call({Napi::String::New(env, "finish"), finish_rows(env, d.rows)});
      return;
    }
    callback.Call({Napi::String::New(env, "tokens"), token_batch(env, d.tokens)});
  }

 private:
  static Napi::Array finish_rows(Napi::Env env, const std::vector<FinishedRow>& finished) {
    Napi::Array rows = Napi::Array::New(env, finished.size());
    for (uint32_t i = 0; i < finished.size(); i++) {
      const FinishedRow& r = finished[i];
      Napi::Object o = Napi::Object::New(env);
      Napi::Uint32Array ids = Napi::Uint32Array::New(env, r.tokens.size());
      for (size_t j = 0; j < r.tokens.size(); j++) ids[j] = static_cast<uint32_t>(r.tokens[j]);
      o.Set("tokenIds", ids);
      o.Set("score", r.score);
      o.Set("finishReason", r.reason == FinishReason::Stop ? "stop" : r.reason == FinishReason::Abort ? "abort" : "length");
      rows.Set(i, o);
    }
    return rows;
  }
  static Napi::Object token_batch(Napi::Env env, const std::vector<TokenEvent>& events) {
    const size_t n = events.size();
    const size_t top = n ? events[0].top.size() : 0;
    Napi::Int32Array rows = Napi::Int32Array::New(env, n);
    Napi::Uint32Array tokens = Napi::Uint32Array::New(env, n);
    Napi::Float32Array logprobs = Napi::Float32Array::New(env, n);
    Napi::Uint32Array top_ids = Napi::Uint32Array::New(env, n * top);
    Napi::Float32Array top_logprobs = Napi::Float32Array::New(env, n * top);
    for (size_t i = 0; i < n; i++) {
      const TokenEvent& e = events[i];
      rows[i] = e.row;
      tokens[i] = static_cast<uint32_t>(e.token);
      logprobs[i] = e.logprob;
      for (size_t j = 0; j < top && j < e.top.size(); j++) {
        top_ids[i * top + j] = static_cast<uint32_t>(e.top[j].first);
        top_logprobs[i * top + j] = e.top[j].second;
      }
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("rows", rows);
    o.Set("tokens", tokens);
    o.Set("logprobs", logprobs);
    o.Set("topN", double(top));
    o.Set("topIds", top_ids);
    o.Set("topLogprobs", top_logprobs);
    return o;
  }

  Napi::FunctionReference on_event_;
  InFlight in_flight_;
};

double number_or(const Napi::Object& o, const char* key, double fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw_type_error(std::string("generate: ") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw_range_error(std::string("generate: ") + key + " must be finite");
  return d;
}

int32_t int_or(const Napi::Object& o, const char* key, int32_t fallback, int32_t lo, int32_t hi) {
  const double d = number_or(o, key, fallback);
  if (d != std::floor(d) || d < lo || d > hi)
    throw_range_error(std::string("generate: ") + key + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int32_t>(d);
}

// Options arrive checked by lib/generation.ts; types are checked again so a raw call cannot crash.
GenerationParams params_from(const Napi::Value& v) {
  GenerationParams p;
  if (!v.IsObject()) throw_type_error("generate: options must be an object");
  Napi::Object o = v.As<Napi::Object>();
  p.max_new_tokens = int_or(o, "maxNewTokens", 16, 1, 1 << 30);
  p.num_beams = int_or(o, "numBeams", 1, 1, 1024);
  p.num_return = int_or(o, "numReturnSequences", 1, 1, 1024);
  p.length_penalty = static_cast<float>(number_or(o, "lengthPenalty", 1.0));
  p.early_stopping = o.Has("earlyStopping") && o.Get("earlyStopping").ToBoolean().Value();
  p.logprobs = int_or(o, "logprobs", -1, -1, 1000);
  const double seed = number_or(o, "seed", 0);
  if (seed < 0) throw_range_error("generate: seed must be non-negative");
  p.seed = static_cast<uint64_t>(seed);
  if (o.Has("stopTokenIds") && !o.Get("stopTokenIds").IsUndefined())
    p.stop_token_ids = ids_from_js(o.Get("stopTokenIds"), "generate: stopTokenIds");
  engine::SamplerConfig& s = p.sampler;
  s.temperature = static_cast<float>(number_or(o, "temperature", 0));
  s.top_k = int_or(o, "topK", 0, 0, INT32_MAX);
  s.top_p = static_cast<float>(number_or(o, "topP", 1));
  s.min_p = static_cast<float>(number_or(o, "minP", 0));
  s.typical_p = static_cast<float>(number_or(o, "typicalP", 1));
  s.repetition_penalty = static_cast<float>(number_or(o, "repetitionPenalty", 1));
  s.presence_penalty = static_cast<float>(number_or(o, "presencePenalty", 0));
  s.frequency_penalty = static_cast<float>(number_or(o, "frequencyPenalty", 0));
  s.no_repeat_ngram_size = int_or(o, "noRepeatNgramSize", 0, 0, 1 << 20);
  if (s.temperature < 0 || !(s.top_p > 0 && s.top_p <= 1) || s.min_p < 0 || s.min_p > 1 || !(s.typical_p > 0 && s.typical_p <= 1) ||
      !(s.repetition_penalty > 0))
    throw_range_error("generate: sampler value out of range");
  if (o.Has("logitBias") && o.Get("logitBias").IsArray()) {
    Napi::Array a = o.Get("logitBias").As<Napi::Array>();  // [[id, bias], ...]
    for (uint32_t i = 0; i < a.Length(); i++) {
      if (!a.Get(i).IsArray()) throw_type_error("generate: logitBias entries must be [id, bias] pairs");
      Napi::Array pair = a.Get(i).As<Napi::Array>();
      if (!pair.Get(0u).IsNumber() || !pair.Get(1u).IsNumber()) throw_type_error("generate: logitBias entries must be [id, bias] pairs");
      s.logit_bias.emplace_back(pair.Get(0u).As<Napi::Number>().Int32Value(),
                                static_cast<float>(pair.Get(1u).As<Napi::Number>().DoubleValue()));
    }
  }
  return p;
}

Napi::Value Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<ModelState> state = model_state_of(info[0]);
    state->live("Model.generate");
    auto* source = state->generation.get();
    if (!source) throw Error(ErrorKind::Error, code::kInternal, "Model.generate: this model has no generation engine");
    GenerationParams params = params_from(info[2]);
    params.prompt = ids_from_js(info[1], "Model.generate: prompt");
    if (!info[3].IsFunction()) throw_type_error("generate: onEvent must be a function");
    auto events = Events::open(env, "gpt2-node:generate",
                               std::make_unique<EventsReceiver>(info[3].As<Napi::Function>(), state));
    // A failed submit drops the sink, which closes the channel (and drops the InFlight).
    std::shared_ptr<engine::GenerationRequest> request = source->submit(std::move(params), std::make_shared<EventsSink>(events));
    Napi::Object handle = Napi::Object::New(env);
    handle.Set("abort", Napi::Function::New(env, [state, request](const Napi::CallbackInfo& i) -> Napi::Value {
                 if (auto* g = state->generation.get()) g->abort(request);
                 return i.Env().Undefined();
               }));
    handle.Set("stopRow", Napi::Function::New(env, [state, request](const Napi::CallbackInfo& i) -> Napi::Value {
                 if (!i[0].IsNumber()) return i.Env().Undefined();
                 if (auto* g = state->generation.get())
                   g->stop_row(request, i[0].As<Napi::Number>().Int32Value());
                 return i.Env().Undefined();
               }));
    return handle;
  });
}

}  // namespace

void InitGeneration(Napi::Env env, Napi::Object exports) {
  exports.Set("generate", Napi::Function::New(env, Generate, "generate"));
}

}  // namespace gpt2::addon
