// info(): what this machine offers (CPU features, threads, CUDA status).
#include <napi.h>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "core/cpu_features.h"
#include "core/cuda_loader.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace gpt2::addon {
namespace {

Napi::Value OptionalNumber(Napi::Env env, int v) {
  return v < 0 ? env.Null() : Napi::Value(Napi::Number::New(env, v));
}

Napi::Value OptionalString(Napi::Env env, const std::string& s) {
  return s.empty() ? env.Null() : Napi::Value(Napi::String::New(env, s));
}

// info().cuda: whether the CUDA plugin is usable, why not, and what it found.
Napi::Object CudaInfo(Napi::Env env) {
  const CudaStatus& st = cuda_status();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("available", st.available);
  cuda.Set("reason", st.available ? env.Null() : Napi::Value(Napi::String::New(env, st.reason)));
  cuda.Set("pluginPath", OptionalString(env, st.plugin_path));
  cuda.Set("driverVersion", OptionalNumber(env, st.driver_version));
  cuda.Set("runtimeVersion", OptionalNumber(env, st.runtime_version));
  Napi::Array devices = Napi::Array::New(env, st.devices.size());
  for (size_t i = 0; i < st.devices.size(); i++) {
    const CudaDeviceInfo& d = st.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", d.index);
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor));
    o.Set("totalMemory", static_cast<double>(d.total_memory));
    o.Set("multiprocessors", d.multiprocessors);
    devices.Set(static_cast<uint32_t>(i), o);
  }
  cuda.Set("devices", devices);
  return cuda;
}

// cudaSelfTest(device = 0): runs the plugin's round-trip kernel; throws (code
// ERR_GPT2_CUDA) with what went wrong, including when CUDA is not available.
Napi::Value CudaSelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int device = 0;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsNumber()) throw_type_error("cudaSelfTest: device must be a number");
      double d = info[0].As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d < 1024) || d != static_cast<int>(d)) {
        throw_range_error("cudaSelfTest: device must be an integer in [0, 1024)");
      }
      device = static_cast<int>(d);
    }
    std::string err = cuda_self_test(device);
    if (!err.empty()) throw Error(ErrorKind::Error, code::kCuda, err);
    return Napi::Boolean::New(env, true);
  });
}

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
    out.Set("cuda", CudaInfo(env));
    return out;
  });
}

}  // namespace

void InitInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("cudaSelfTest", Napi::Function::New(env, CudaSelfTest, "cudaSelfTest"));
}

}  // namespace gpt2::addon
