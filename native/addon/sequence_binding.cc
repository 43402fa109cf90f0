// The native Sequence: a KV-cache state on one model. append() runs a forward step off the
// event loop and continues from the cached tokens (like passing past_key_values); fork()
// shares the blocks copy-on-write; truncate(n) drops positions; dispose() returns blocks.
// One append at a time (lib/sequence.ts queues them); fork/truncate while one runs throw.
#include <napi.h>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "addon/promise_worker.h"

namespace gpt2::addon {
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
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      SequenceState& s = live("Sequence.append");
      not_busy(s, "Sequence.append");
      auto ids = std::make_shared<std::vector<int32_t>>(ids_from_js(info[0], "Sequence.append"));
      const int32_t mode = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 1;
      if (mode < 0 || mode > 2) throw_type_error("Sequence.append: bad logits mode");
      const auto logits = mode == 0 ? model::LogitsMode::None : mode == 1 ? model::LogitsMode::Last : model::LogitsMode::All;
      auto state = state_;
      auto guard = std::make_shared<InFlight>(state->owner);
      auto out = std::make_shared<std::vector<float>>();
      s.busy = true;
      // Clears busy when the worker is deleted (JS thread), whatever the outcome.
      struct BusyGuard {
        std::shared_ptr<SequenceState> s;
        ~BusyGuard() {
          s->busy = false;
          if (s->disposed) s->release();  // dispose() ran while the append was running
        }
      };
      auto busy = std::make_shared<BusyGuard>(BusyGuard{state});
      return PromiseWorker::Start(
          env,
          [state, guard, busy, ids, logits, out] {
            model::SequenceInput in{ids->data(), static_cast<int32_t>(ids->size()), &state->kv, logits};
            auto result = state->owner->model->forward(std::span<const model::SequenceInput>(&in, 1), model::ForwardOptions{false, false});
            *out = std::move(result[0].logits);
          },
          [out, mode](Napi::Env env) -> Napi::Value {
            if (mode == 0) return env.Null();
            return float32_from(env, *out);
          });
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
