// What the Model and Sequence bindings share: the loaded model behind a small state
// object that outlives dispose(), and the sequences' KV state.
//
// Lifetime rules (all state changes happen on the JS thread, so no locks are needed here):
//   - every async call takes an InFlight token before queueing its work and drops it when
//     the worker is deleted (on the JS thread, after the Promise settles);
//   - dispose() marks the model disposed (later calls throw ERR_GPT2_DISPOSED) and frees it
//     at once when nothing is in flight, otherwise when the last in-flight call finishes;
//   - a sequence's blocks go back to the cache when its state dies (dispose() or GC), unless
//     the model is already gone (the cache went with it).
#pragma once
#include <napi.h>

#include <memory>
#include <vector>
#include <string>

#include "core/error.h"
#include "core/kv_cache.h"
#include "engine/generation.h"
#include "engine/scheduler.h"
#include "engine/sequence_append.h"
#include "model/config.h"
#include "model/gpt2_model.h"

namespace gpt2::addon {

struct ModelState {
  std::unique_ptr<model::GPT2Model> model;
  model::GPT2Config config;
  std::string device = "cpu";
  std::string device_reason;
  std::string dtype = "float32";
  int threads = 0;
  bool disposed = false;
  int in_flight = 0;
  // Sequence.append calls made in the same tick wake the engine once, from a microtask, so
  // they share a step (sequence_binding.cc).
  bool append_notify_scheduled = false;
  // The engine loop (engine/scheduler.h) and its work sources, created with the model by
  // start_engine() (model_binding.cc); the thread starts on the first request. Sources are
  // held type-erased here and cast back by the binding that owns them.
  std::unique_ptr<engine::Scheduler> scheduler;
  std::shared_ptr<engine::GenerationSource> generation;  // engine/generation.h, generation_binding.cc
  std::shared_ptr<engine::WorkSource> embedding;   // embed_binding.cc
  std::shared_ptr<engine::SequenceAppendSource> appends;  // engine/sequence_append.h, sequence_binding.cc

  ~ModelState() { release_model(); }

  model::GPT2Model& live(const char* what) {
    if (disposed || !model)
      throw Error(ErrorKind::Error, code::kDisposed, std::string(what) + ": the model has been disposed");
    return *model;
  }
  void dispose() {
    disposed = true;
    // Running generations end with finishReason 'abort'; each holds an InFlight token, so
    // the model is freed once the last one has delivered its result.
    if (generation) generation->abort_all();
    if (in_flight == 0) release_model();
  }
  // The engine stops (its sources reject what is queued) before the model goes.
  void release_model() {
    if (scheduler) scheduler->stop();
    scheduler.reset();
    generation.reset();
    embedding.reset();
    appends.reset();
    model.reset();
  }
};

// Held by an async call from queueing until its worker is deleted (JS thread).
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<ModelState> state) : state_(std::move(state)) { state_->in_flight++; }
  ~InFlight() {
    if (--state_->in_flight == 0 && state_->disposed) state_->release_model();
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::shared_ptr<ModelState> state_;
};

struct SequenceState {
  std::shared_ptr<ModelState> owner;
  KvSequence kv;
  bool disposed = false;
  // An append is queued or running: its KvSequence is with the engine (kv keeps only the
  // length) and comes back when the append ends.
  bool busy = false;

  explicit SequenceState(std::shared_ptr<ModelState> o) : owner(std::move(o)) {}
  ~SequenceState() { release(); }
  void release() {
    if (owner->model && !owner->disposed) owner->model->kv_cache().release(kv);
    kv.blocks.clear();
    kv.length = 0;
  }
};

}  // namespace gpt2::addon

namespace gpt2::addon {
// model_binding.cc: the state behind a NativeModel object (TypeError otherwise).
std::shared_ptr<ModelState> model_state_of(const Napi::Value& v);
// generation_binding.cc
void InitGeneration(Napi::Env env, Napi::Object exports);
// sequence_binding.cc
void InitSequence(Napi::Env env, Napi::Object exports);
Napi::Object NewSequence(Napi::Env env, std::shared_ptr<SequenceState> state);
// Copies a Uint32Array of token ids (validated by lib/ and again by the model).
std::vector<int32_t> ids_from_js(const Napi::Value& v, const std::string& what);
Napi::Float32Array float32_from(Napi::Env env, const std::vector<float>& v);
// embed_binding.cc: the model's embedding work source, and NativeModel.embed.
std::shared_ptr<engine::WorkSource> make_embedding_source(model::GPT2Model& model);
Napi::Value ModelEmbed(const Napi::CallbackInfo& info, const std::shared_ptr<ModelState>& state);
}  // namespace gpt2::addon
