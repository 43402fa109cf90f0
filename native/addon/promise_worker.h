// Runs work on the libuv pool and settles a Promise: execute() off the event loop,
// resolve(env) on it. Exceptions from execute() reject with the typed error.
#pragma once
#include <napi.h>

#include <functional>

#include "addon/js_errors.h"

namespace gpt2::addon {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using ExecuteFn = std::function<void()>;
  using ResolveFn = std::function<Napi::Value(Napi::Env)>;

  // Queues the work and returns its Promise. Keep inputs alive by capturing owned
  // copies or Napi references (Napi::Reference) in the lambdas.
  static Napi::Promise Start(Napi::Env env, ExecuteFn execute, ResolveFn resolve) {
    auto* w = new PromiseWorker(env, std::move(execute), std::move(resolve));
    Napi::Promise promise = w->deferred_.Promise();
    w->Queue();
    return promise;
  }

 protected:
  PromiseWorker(Napi::Env env, ExecuteFn execute, ResolveFn resolve)
      : Napi::AsyncWorker(env, "gpt2-node"), deferred_(Napi::Promise::Deferred::New(env)),
        execute_(std::move(execute)), resolve_(std::move(resolve)) {}

  void Execute() override {
    try {
      execute_();
    } catch (...) {
      error_.capture(std::current_exception());
    }
  }

  void OnOK() override {
    Napi::Env env = Napi::AsyncWorker::Env();
    if (error_.set) {
      deferred_.Reject(error_.to_js(env).Value());
      return;
    }
    try {
      deferred_.Resolve(resolve_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      CapturedError e;
      e.capture(std::current_exception());
      deferred_.Reject(e.to_js(env).Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  ExecuteFn execute_;
  ResolveFn resolve_;
  CapturedError error_;
};

}  // namespace gpt2::addon
