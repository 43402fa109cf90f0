// Model.embed: one Promise per call, run by the model's engine loop (engine/embedding.h).
// The texts are validated and queued on the JS thread; the engine thread finishes the job
// and settles its Promise back on the JS thread through a per-call ThreadSafeFunction,
// which keeps the event loop alive only while the call is pending (an idle Node exits).
// When the environment is torn down first (a terminated worker), the job's result is
// dropped: `open` tells the engine thread the ThreadSafeFunction is gone.
#include <napi.h>

#include <cstring>
#include <mutex>

#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "engine/embedding.h"

namespace gpt2::addon {
namespace {

struct EmbedCall;
void settle(Napi::Env env, Napi::Function, EmbedCall* call, void*);
using EmbedTsfn = Napi::TypedThreadSafeFunction<EmbedCall, void, settle>;

// What the engine thread may touch after the JS side is gone.
struct Channel {
  std::mutex mutex;
  bool open = true;
  EmbedTsfn tsfn;
};

// The JS-thread side of one embed() call; deleted by the ThreadSafeFunction's finalizer.
struct EmbedCall {
  Napi::Promise::Deferred deferred;
  InFlight in_flight;
  std::shared_ptr<engine::EmbedJob> job;
  EmbedCall(Napi::Env env, std::shared_ptr<ModelState> state)
      : deferred(Napi::Promise::Deferred::New(env)), in_flight(std::move(state)) {}
};

void settle(Napi::Env env, Napi::Function, EmbedCall* call, void*) {
  if (env == nullptr) return;  // environment teardown
  engine::EmbedJob& job = *call->job;
  if (job.error) {
    CapturedError e;
    e.capture(job.error);
    call->deferred.Reject(e.to_js(env).Value());
    return;
  }
  Napi::Array out = Napi::Array::New(env, job.vectors.size());
  for (uint32_t i = 0; i < job.vectors.size(); i++) out.Set(i, float32_from(env, job.vectors[i]));
  job.vectors.clear();
  call->deferred.Resolve(out);
}

void finalize(Napi::Env, std::shared_ptr<Channel>* channel, EmbedCall* call) {
  {
    std::lock_guard<std::mutex> lock((*channel)->mutex);
    (*channel)->open = false;
  }
  delete channel;
  delete call;  // drops the InFlight token (may free a disposed model: stops its engine)
}

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

  auto channel = std::make_shared<Channel>();
  auto* call = new EmbedCall(env, state);
  call->job = job;
  Napi::Promise promise = call->deferred.Promise();
  job->done = [channel](engine::EmbedJob&) {
    std::lock_guard<std::mutex> lock(channel->mutex);
    if (!channel->open) return;
    channel->open = false;
    channel->tsfn.NonBlockingCall();
    channel->tsfn.Release();
  };
  // The channel exists before the job is queued: a running engine may finish it at once.
  channel->tsfn = EmbedTsfn::New(env, "gpt2-node:embed", 0, 1, call, finalize, new std::shared_ptr<Channel>(channel));
  try {
    source.submit(job);  // validates (typed errors naming the text) before anything is queued
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(channel->mutex);
      channel->open = false;
    }
    channel->tsfn.Release();  // the finalizer deletes `call`; its Promise is never handed out
    throw;
  }
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
