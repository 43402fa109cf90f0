// The native Sequence: a KV-cache state on one model. append() runs a forward step off the
// event loop and continues from the cached tokens (like passing past_key_values); fork()
// shares the blocks copy-on-write; truncate(n) drops positions; dispose() returns blocks.
// One append at a time (lib/sequence.ts queues them); fork/truncate while one runs throw.
#include <napi.h>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "addon/promise_worker.h"
#include "model/gpt2_model.h"

namespace gpt2::addon {

// One queued Sequence.append. Created and destroyed on the JS thread; the batch worker
// only reads ids/kv and writes out/error.
struct PendingAppend {
  std::shared_ptr<SequenceState> seq;
  std::vector<int32_t> ids;
  int32_t mode;  // 0 none, 1 last, 2 all
  Napi::Promise::Deferred deferred;
  InFlight in_flight;
  std::vector<float> out;
  CapturedError error;

  PendingAppend(Napi::Env env, std::shared_ptr<SequenceState> s, std::vector<int32_t> i, int32_t m)
      : seq(std::move(s)), ids(std::move(i)), mode(m), deferred(Napi::Promise::Deferred::New(env)),
        in_flight(seq->owner) {}
  ~PendingAppend() {
    // Runs on the JS thread after the Promise settled, whatever the outcome.
    seq->busy = false;
    if (seq->disposed) seq->release();  // dispose() ran while the append was queued or running
  }
  model::LogitsMode logits() const {
    return mode == 0 ? model::LogitsMode::None : mode == 1 ? model::LogitsMode::Last : model::LogitsMode::All;
  }
};

namespace {

void start_append_batch(Napi::Env env, const std::shared_ptr<ModelState>& owner);

// Runs a batch of appends (one per sequence) as one ragged forward pass. Inputs are all
// validated before the model touches any cache, so when the batch fails (a bad id, a full
// KV cache) each append is retried alone and gets its own outcome.
class AppendBatchWorker : public Napi::AsyncWorker {
 public:
  AppendBatchWorker(Napi::Env env, std::shared_ptr<ModelState> owner, std::vector<std::shared_ptr<PendingAppend>> batch)
      : Napi::AsyncWorker(env, "gpt2-node:append"), owner_(std::move(owner)), batch_(std::move(batch)) {}

  void Execute() override {
    model::GPT2Model& model = *owner_->model;  // alive: every entry holds an InFlight token
    std::vector<model::SequenceInput> inputs;
    for (auto& e : batch_)
      inputs.push_back({e->ids.data(), static_cast<int32_t>(e->ids.size()), &e->seq->kv, e->logits()});
    try {
      auto results = model.forward(inputs, model::ForwardOptions{false, false});
      for (size_t i = 0; i < batch_.size(); i++) batch_[i]->out = std::move(results[i].logits);
      return;
    } catch (...) {
      if (batch_.size() == 1) {
        batch_[0]->error.capture(std::current_exception());
        return;
      }
    }
    for (size_t i = 0; i < batch_.size(); i++) {
      try {
        auto results = model.forward(std::span<const model::SequenceInput>(&inputs[i], 1), model::ForwardOptions{false, false});
        batch_[i]->out = std::move(results[0].logits);
      } catch (...) {
        batch_[i]->error.capture(std::current_exception());
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Napi::AsyncWorker::Env();
    for (auto& e : batch_) {
      if (e->error.set) e->deferred.Reject(e->error.to_js(env).Value());
      else if (e->mode == 0) e->deferred.Resolve(env.Null());
      else e->deferred.Resolve(float32_from(env, e->out));
    }
    batch_.clear();
    owner_->append_batch_running = false;
    start_append_batch(env, owner_);  // appends queued while this batch ran
  }

  void OnError(const Napi::Error& err) override {
    for (auto& e : batch_) e->deferred.Reject(err.Value());
    batch_.clear();
    owner_->append_batch_running = false;
    start_append_batch(Napi::AsyncWorker::Env(), owner_);
  }

 private:
  std::shared_ptr<ModelState> owner_;
  std::vector<std::shared_ptr<PendingAppend>> batch_;
};

void start_append_batch(Napi::Env env, const std::shared_ptr<ModelState>& owner) {
  if (owner->append_batch_running || owner->pending_appends.empty()) return;
  owner->append_batch_running = true;
  auto* worker = new AppendBatchWorker(env, owner, std::move(owner->pending_appends));
  owner->pending_appends.clear();
  worker->Queue();
}

}  // namespace

// Flushes from a microtask, so every append made in the current tick (Promise.all over
// many sequences) joins the same forward pass.
void schedule_append_flush(Napi::Env env, const std::shared_ptr<ModelState>& owner) {
  if (owner->append_flush_scheduled || owner->append_batch_running) return;
  owner->append_flush_scheduled = true;
  Napi::Function flush = Napi::Function::New(env, [owner](const Napi::CallbackInfo& info) {
    owner->append_flush_scheduled = false;
    start_append_batch(info.Env(), owner);
  }, "flushAppends");
  env.Global().Get("queueMicrotask").As<Napi::Function>().Call({flush});
}

namespace {

class SequenceWrap : public Napi::ObjectWrap<SequenceWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSequence",
                       {InstanceMethod<&SequenceWrap::Append>("append"), InstanceMethod<&SequenceWrap::Fork>("fork"),
                        InstanceMethod<&SequenceWrap::Truncate>("truncate"),
                        InstanceMethod<&SequenceWrap::Dispose>("dispose"),
                        InstanceAccessor<&SequenceWrap::Length>("length")});
  }
  explicit SequenceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SequenceWrap>(info) {}

  std::shared_ptr<SequenceState> state_;

 private:
  SequenceState& live(const char* what) {
    if (!state_) throw_type_error("NativeSequence: not created by Model.sequence()");
    if (state_->disposed)
      throw Error(ErrorKind::Error, code::kDisposed, std::string(what) + ": the sequence has been disposed");
    state_->owner->live(what);
    return *state_;
  }
  void not_busy(SequenceState& s, const char* what) {
    if (s.busy)
      throw Error(ErrorKind::Error, code::kInvalidArg, std::string(what) + ": an append() on this sequence is still running");
  }

  // append(ids: Uint32Array, logits: 0 none | 1 last | 2 all) -> Promise<Float32Array | null>
  // Queued on the model and batched with the other sequences' appends of this tick.
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      SequenceState& s = live("Sequence.append");
      not_busy(s, "Sequence.append");
      std::vector<int32_t> ids = ids_from_js(info[0], "Sequence.append");
      const int32_t mode = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 1;
      if (mode < 0 || mode > 2) throw_type_error("Sequence.append: bad logits mode");
      auto entry = std::make_shared<PendingAppend>(env, state_, std::move(ids), mode);
      Napi::Promise promise = entry->deferred.Promise();
      s.busy = true;
      ModelState& owner = *state_->owner;
      owner.pending_appends.push_back(std::move(entry));
      schedule_append_flush(env, state_->owner);
      return promise;
    });
  }

  Napi::Value Fork(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      SequenceState& s = live("Sequence.fork");
      not_busy(s, "Sequence.fork");
      auto child = std::make_shared<SequenceState>(s.owner);
      s.owner->model->kv_cache().fork(s.kv, child->kv);
      return NewSequence(env, child);
    });
  }

  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      SequenceState& s = live("Sequence.truncate");
      not_busy(s, "Sequence.truncate");
      if (!info[0].IsNumber()) throw_type_error("Sequence.truncate: n must be a number");
      const double n = info[0].As<Napi::Number>().DoubleValue();
      if (!(n >= 0) || n != double(int64_t(n)) || n > s.kv.length)
        throw_range_error("Sequence.truncate: n must be an integer in [0, " + std::to_string(s.kv.length) + "] (got " +
                          info[0].ToString().Utf8Value() + ")");
      s.owner->model->kv_cache().truncate(s.kv, static_cast<int32_t>(n));
      return env.Undefined();
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (state_ && !state_->disposed) {
        state_->disposed = true;
        // A running append keeps the state alive; its blocks are returned when it ends.
        if (!state_->busy) state_->release();
      }
      return info.Env().Undefined();
    });
  }

  Napi::Value Length(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), state_ ? state_->kv.length : 0);
    });
  }
};

}  // namespace

Napi::Object NewSequence(Napi::Env env, std::shared_ptr<SequenceState> state) {
  Napi::Object obj = AddonData::of(env).sequence_constructor.New({});
  SequenceWrap::Unwrap(obj)->state_ = std::move(state);
  return obj;
}

void InitSequence(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = SequenceWrap::Define(env);
  AddonData::of(env).sequence_constructor = Napi::Persistent(ctor);
  exports.Set("NativeSequence", ctor);
}

}  // namespace gpt2::addon
