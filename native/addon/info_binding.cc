// info(): what this machine offers (CPU features, threads, CUDA status).
#include <napi.h>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace gpt2::addon {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const CpuFeatures& f = cpu_features();
    Napi::Object cpu = Napi::Object::New(env);
    cpu.Set("brand", f.brand);
    cpu.Set("isa", cpu_isa_name());
    Napi::Object flags = Napi::Object::New(env);
    flags.Set("avx2", f.has_avx2());
    flags.Set("fma", f.fma);
    flags.Set("f16c", f.f16c);
    flags.Set("avx512f", f.avx512f);
    flags.Set("avx512bw", f.avx512bw);
    flags.Set("avx512vl", f.avx512vl);
    flags.Set("avx512dq", f.avx512dq);
    flags.Set("avx512bf16", f.avx512_bf16);
    flags.Set("avx512fp16", f.avx512_fp16);
    flags.Set("avx512vnni", f.avx512_vnni);
    flags.Set("amxTile", f.amx_tile);
    flags.Set("amxBf16", f.amx_bf16);
    flags.Set("amxEnabled", f.amx_enabled);
    cpu.Set("features", flags);
    cpu.Set("defaultThreads", ThreadPool::default_threads());
    Napi::Object out = Napi::Object::New(env);
    out.Set("cpu", cpu);
    return out;
  });
}

}  // namespace

void InitInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
}

}  // namespace gpt2::addon
