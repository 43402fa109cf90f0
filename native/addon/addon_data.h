// Per-environment state. Each Node environment (main thread, every worker_thread)
// loading the addon gets its own copy, so nothing here is shared across isolates.
// Process-wide resources (the compute thread pool, the loaded CUDA plugin) live in
// native/core and are thread-safe.
#pragma once
#include <napi.h>

namespace gpt2::addon {

struct AddonData {
  Napi::FunctionReference tokenizer_constructor;
  Napi::FunctionReference model_constructor;
  Napi::FunctionReference sequence_constructor;

  static AddonData& of(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

// One binding file per class; each registers its exports here.
void InitInfo(Napi::Env env, Napi::Object exports);
void InitTokenizer(Napi::Env env, Napi::Object exports);
void InitModel(Napi::Env env, Napi::Object exports);
void InitIndex(Napi::Env env, Napi::Object exports);

}  // namespace gpt2::addon
