// Model.embed: one Promise per call, run by the model's engine loop (engine/embedding.h).
// The texts are validated and queued on the JS thread; the engine thread finishes the job
// and settles its Promise back on the JS thread through the call's RequestEvents channel
// (request_events.h), which keeps the event loop alive only while the call is pending and
// drops the result when the environment is torn down first (a terminated worker).
#include <napi.h>

#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "addon/request_events.h"
#include "engine/embedding.h"

namespace gpt2::addon {
namespace {

// The one event of an embed() call: its vectors or its error.
struct EmbedResult {
  std::vector<std::vector<float>> vectors;
  std::exception_ptr error;
};
using Events = RequestEvents<EmbedResult>;

// The JS side of one call: settles its Promise; holds the model's InFlight token until the
// channel is finalized.
class EmbedReceiver : public Events::Receiver {
 public:
  EmbedReceiver(Napi::Env env, std::shared_ptr<ModelState> state)
      : deferred_(Napi::Promise::Deferred::New(env)), in_flight_(std::move(state)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

  void deliver(Napi::Env env, EmbedResult& result) override {
    if (result.error) {
      CapturedError e;
      e.capture(result.error);
      deferred_.Reject(e.to_js(env).Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, result.vectors.size());
    for (uint32_t i = 0; i < result.vectors.size(); i++) out.Set(i, float32_from(env, result.vectors[i]));
    deferred_.Resolve(out);
  }

 private:
  Napi::Promise::Deferred deferred_;
  InFlight in_flight_;
};

model::Pooling pooling_from(int32_t code) {
  switch (code) {
    case 0: return model::Pooling::Rows;
    case 1: return model::Pooling::Mean;
    case 2: return model::Pooling::Last;
    case 3: return model::Pooling::First;
  }
  throw_type_error("embed: bad pooling code");
}

}  // namespace

std::shared_ptr<engine::WorkSource> make_embedding_source(model::GPT2Model& model) {
  return std::make_shared<engine::EmbeddingSource>(model);
}

// embed(ids: Uint32Array[], pooling: 0 rows | 1 mean | 2 last | 3 first, layer: number
// (-1 = last), finalNorm: boolean, normalize: boolean, handle?: object) -> Promise<Float32Array[]>
// With `handle`, handle.cancel() ends the call early: its Promise rejects with ERR_GPT2_ABORTED
// and its queued texts never run (engine/embedding.h EmbeddingSource::cancel).
Napi::Value ModelEmbed(const Napi::CallbackInfo& info, const std::shared_ptr<ModelState>& state) {
  Napi::Env env = info.Env();
  state->live("Model.embed");
  if (!state->scheduler || !state->embedding) throw_type_error("Model.embed: this model has no engine");
  if (!info[0].IsArray()) throw_type_error("embed: ids must be an array of Uint32Array");
  Napi::Array arr = info[0].As<Napi::Array>();
  auto job = std::make_shared<engine::EmbedJob>();
  for (uint32_t i = 0; i < arr.Length(); i++) job->texts.push_back(ids_from_js(arr.Get(i), "embed: text " + std::to_string(i)));
  if (!info[1].IsNumber() || !info[2].IsNumber()) throw_type_error("embed: pooling and layer must be numbers");
  job->options.capture.pooling = pooling_from(info[1].As<Napi::Number>().Int32Value());
  job->options.capture.layer = info[2].As<Napi::Number>().Int32Value();
  job->options.capture.final_norm = info[3].ToBoolean().Value();
  job->options.normalize = info[4].ToBoolean().Value();
  auto& source = static_cast<engine::EmbeddingSource&>(*state->embedding);

  auto receiver = std::make_unique<EmbedReceiver>(env, state);
  Napi::Promise promise = receiver->promise();
  // The channel exists before the job is queued: a running engine may finish it at once.
  // A failed submit drops the job and with it the channel (the Promise is never handed out).
  auto events = Events::open(env, "gpt2-node:embed", std::move(receiver));
  job->done = [events](engine::EmbedJob& done) {
    events->send(EmbedResult{std::move(done.vectors), done.error});
    events->close();
  };
  source.submit(job);  // validates (typed errors naming the text) before anything is queued
  if (info.Length() > 5 && info[5].IsObject()) {
    std::weak_ptr<engine::EmbedJob> weak_job = job;  // the handle does not keep the texts alive
    info[5].As<Napi::Object>().Set("cancel", Napi::Function::New(env, [state, weak_job](const Napi::CallbackInfo& i) -> Napi::Value {
      auto pending = weak_job.lock();
      auto* source = static_cast<engine::EmbeddingSource*>(state->embedding.get());
      return Napi::Boolean::New(i.Env(), pending && source && source->cancel(pending));
    }));
  }
  state->scheduler->notify();
  return promise;
}

}  // namespace gpt2::addon
