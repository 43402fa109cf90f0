// The native Sequence: a KV-cache state on one model. append() queues its tokens on the
// model's engine loop (engine/sequence_append.h), which runs them in one of its steps and
// continues from the cached tokens (like passing past_key_values); fork()
// shares the blocks copy-on-write; truncate(n) drops positions; dispose() returns blocks.
// One append at a time (lib/sequence.ts queues them); fork/truncate while one runs throw.
#include <napi.h>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "addon/request_events.h"
#include "engine/sequence_append.h"
#include "model/gpt2_model.h"

namespace gpt2::addon {

namespace {

// The one event of an append: the sequence's KV state back, and its logits or error.
struct AppendResult {
  KvSequence kv;
  std::vector<float> logits;
  std::exception_ptr error;
};
using Events = RequestEvents<AppendResult>;

// The JS side of one append: gives the KV state back to the sequence, then settles the
// Promise; holds the model's InFlight token until the channel is finalized.
class AppendReceiver : public Events::Receiver {
 public:
  AppendReceiver(Napi::Env env, std::shared_ptr<SequenceState> seq, int32_t mode)
      : seq_(std::move(seq)), mode_(mode), deferred_(Napi::Promise::Deferred::New(env)), in_flight_(seq_->owner) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

  void deliver(Napi::Env env, AppendResult& result) override {
    // Before settling: the Promise's continuation may append, fork or truncate at once.
    seq_->kv = std::move(result.kv);
    seq_->busy = false;
    if (seq_->disposed) seq_->release();  // dispose() ran while the append was queued or running
    if (result.error) {
      CapturedError e;
      e.capture(result.error);
      deferred_.Reject(e.to_js(env).Value());
    } else if (mode_ == 0) {
      deferred_.Resolve(env.Null());
    } else {
      deferred_.Resolve(float32_from(env, result.logits));
    }
  }

 private:
  std::shared_ptr<SequenceState> seq_;
  int32_t mode_;  // 0 none, 1 last, 2 all
  Napi::Promise::Deferred deferred_;
  InFlight in_flight_;
};

// Appends made in the same tick are queued at once and wake the engine together, from a
// microtask, so they share one step (a ragged forward pass) unless the engine is already
// stepping and takes them as they come.
void schedule_engine_notify(Napi::Env env, const std::shared_ptr<ModelState>& owner) {
  if (owner->append_notify_scheduled) return;
  owner->append_notify_scheduled = true;
  Napi::Function notify = Napi::Function::New(env, [owner](const Napi::CallbackInfo&) {
    owner->append_notify_scheduled = false;
    if (owner->scheduler) owner->scheduler->notify();
  }, "notifyEngine");
  env.Global().Get("queueMicrotask").As<Napi::Function>().Call({notify});
}

}  // namespace

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
      ModelState& owner = *s.owner;
      if (!owner.appends) throw Error(ErrorKind::Error, code::kInternal, "Sequence.append: this model has no engine");
      auto receiver = std::make_unique<AppendReceiver>(env, state_, mode);
      Napi::Promise promise = receiver->promise();
      // The channel and the job are complete before the job is queued: a stepping engine may
      // take it at once. A failed submit drops the job and with it the channel.
      auto events = Events::open(env, "gpt2-node:append", std::move(receiver));
      auto job = std::make_shared<engine::AppendJob>();
      job->ids = std::move(ids);
      job->logits = mode == 0 ? model::LogitsMode::None : mode == 1 ? model::LogitsMode::Last : model::LogitsMode::All;
      job->done = [events](engine::AppendJob& done) {
        events->send(AppendResult{std::move(done.kv), std::move(done.out), done.error});
        events->close();
      };
      job->kv = std::move(s.kv);
      s.kv.length = job->kv.length;  // Sequence.length while the engine holds the blocks
      try {
        owner.appends->submit(job);  // validates before queueing
      } catch (...) {
        s.kv = std::move(job->kv);
        throw;
      }
      s.busy = true;
      schedule_engine_notify(env, s.owner);
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
