// The native Model: load/random (off the event loop), config, forward, sequence(), dispose.
// lib/model.ts validates options and shapes results; this layer validates again what
// could crash (types, ids) and runs every forward on the libuv pool.
#include <napi.h>

#include <cstring>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "addon/model_state.h"
#include "addon/promise_worker.h"
#include "core/cuda_backend.h"
#include "core/json.h"
#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"

namespace gpt2::addon {
namespace {

using model::GPT2Config;
using model::GPT2Model;

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod<&ModelWrap::Config>("config"), InstanceMethod<&ModelWrap::Info>("info"),
                        InstanceMethod<&ModelWrap::Forward>("forward"), InstanceMethod<&ModelWrap::Embed>("embed"),
                        InstanceMethod<&ModelWrap::Sequence>("sequence"),
                        InstanceMethod<&ModelWrap::Dispose>("dispose")});
  }
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}
  ~ModelWrap() override {
    // Garbage-collected without dispose(): free now (or when in-flight work ends).
    if (state_) state_->dispose();
  }

  std::shared_ptr<ModelState> state_;

 private:
  ModelState& st() {
    if (!state_) throw_type_error("NativeModel: not a loaded model (use Model.load or Model.random)");
    return *state_;
  }

  Napi::Value Config(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), model::config_to_json(st().config)); });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      ModelState& s = st();
      Napi::Object o = Napi::Object::New(env);
      o.Set("device", s.device);
      o.Set("deviceReason", s.device_reason);
      o.Set("dtype", s.dtype);
      o.Set("disposed", s.disposed);
      if (s.model && !s.disposed) {
        o.Set("weightBytes", double(s.model->weight_bytes()));
        o.Set("kvCacheTokens", double(s.model->kv_cache().capacity_tokens()));
        o.Set("kvCacheBytes", double(s.model->kv_cache().bytes()));
        o.Set("kvBlockSize", s.model->kv_cache().shape().block_size);
        o.Set("kvFreeBlocks", s.model->kv_cache().free_blocks());
        if (s.scheduler) {
          const engine::SchedulerStats es = s.scheduler->stats();
          o.Set("engineSteps", double(es.steps));
          o.Set("engineMaxStepSequences", es.max_step_sequences);
          o.Set("engineTokens", double(es.tokens));
          o.Set("engineSequences", double(es.sequences));
          o.Set("engineFailedSteps", double(es.failed_steps));
          auto buckets = [&](const auto& counts) {
            Napi::Array a = Napi::Array::New(env, counts.size());
            for (uint32_t i = 0; i < counts.size(); i++) a.Set(i, double(counts[i]));
            return a;
          };
          o.Set("engineStepSequenceBuckets", buckets(es.step_sequences_buckets));
          o.Set("engineStepTokenBuckets", buckets(es.step_tokens_buckets));
        }
      }
      return o;
    });
  }

  // forward(ids: Uint32Array[], logits: Int32Array (0 none, 1 last, 2 all per sequence),
  //         hiddenStates: boolean) -> Promise<{ logits: (Float32Array|null)[], hiddenStates?, lastHiddenState }>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      ModelState& s = st();
      s.live("Model.forward");
      if (!info[0].IsArray()) throw_type_error("forward: ids must be an array of Uint32Array");
      Napi::Array arr = info[0].As<Napi::Array>();
      const uint32_t n = arr.Length();
      if (n == 0) throw_range_error("Model.forward: no sequences given");
      if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
          info[1].As<Napi::Int32Array>().ElementLength() != n)
        throw_type_error("forward: logits modes must be an Int32Array with one entry per sequence");
      Napi::Int32Array modes = info[1].As<Napi::Int32Array>();
      struct Job {
        std::vector<std::vector<int32_t>> ids;
        std::vector<model::LogitsMode> modes;
        model::ForwardOptions options;
        std::vector<model::SequenceOutput> out;
      };
      auto job = std::make_shared<Job>();
      for (uint32_t i = 0; i < n; i++) {
        job->ids.push_back(ids_from_js(arr.Get(i), "sequence " + std::to_string(i)));
        const int32_t m = modes[i];
        if (m < 0 || m > 2) throw_type_error("forward: bad logits mode");
        job->modes.push_back(m == 0 ? model::LogitsMode::None : m == 1 ? model::LogitsMode::Last : model::LogitsMode::All);
      }
      job->options.hidden_states = info[2].ToBoolean().Value();
      auto state = state_;
      auto guard = std::make_shared<InFlight>(state);
      return PromiseWorker::Start(
          env,
          [job, state, guard] {
            GPT2Model& m = *state->model;  // alive: in_flight > 0 keeps it
            std::vector<KvSequence> kv(job->ids.size());
            std::vector<model::SequenceInput> inputs(job->ids.size());
            for (size_t i = 0; i < inputs.size(); i++)
              inputs[i] = {job->ids[i].data(), static_cast<int32_t>(job->ids[i].size()), &kv[i], job->modes[i]};
            try {
              job->out = m.forward(inputs, job->options);
            } catch (...) {
              for (auto& k : kv) m.kv_cache().release(k);
              throw;
            }
            for (auto& k : kv) m.kv_cache().release(k);
          },
          [job](Napi::Env env) -> Napi::Value {
            Napi::Object result = Napi::Object::New(env);
            Napi::Array logits = Napi::Array::New(env), last = Napi::Array::New(env), hidden = Napi::Array::New(env);
            for (uint32_t i = 0; i < job->out.size(); i++) {
              const model::SequenceOutput& o = job->out[i];
              logits.Set(i, o.logits.empty() ? env.Null() : Napi::Value(float32_from(env, o.logits)));
              last.Set(i, float32_from(env, o.last_hidden_state));
              if (job->options.hidden_states) {
                Napi::Array layers = Napi::Array::New(env);
                for (uint32_t l = 0; l < o.hidden_states.size(); l++) layers.Set(l, float32_from(env, o.hidden_states[l]));
                hidden.Set(i, layers);
              }
            }
            result.Set("logits", logits);
            result.Set("lastHiddenState", last);
            if (job->options.hidden_states) result.Set("hiddenStates", hidden);
            return result;
          });
    });
  }

  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      st();
      return ModelEmbed(info, state_);
    });
  }

  Napi::Value Sequence(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      st().live("Model.sequence");
      return NewSequence(env, std::make_shared<SequenceState>(state_));
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (state_) state_->dispose();
      return info.Env().Undefined();
    });
  }
};

struct LoadArgs {
  std::string device = "auto";
  std::string dtype = "float32";
  int threads = 0;
  int64_t kv_cache_tokens = 0;
};

// Options arrive validated by lib/model.ts; still check types so a raw call cannot crash.
LoadArgs load_args(const Napi::Value& v) {
  LoadArgs a;
  if (!v.IsObject()) return a;
  Napi::Object o = v.As<Napi::Object>();
  if (o.Has("device") && o.Get("device").IsString()) a.device = o.Get("device").As<Napi::String>().Utf8Value();
  if (o.Has("dtype") && o.Get("dtype").IsString()) a.dtype = o.Get("dtype").As<Napi::String>().Utf8Value();
  if (o.Has("threads") && o.Get("threads").IsNumber()) a.threads = o.Get("threads").As<Napi::Number>().Int32Value();
  if (o.Has("kvCacheTokens") && o.Get("kvCacheTokens").IsNumber())
    a.kv_cache_tokens = o.Get("kvCacheTokens").As<Napi::Number>().Int64Value();
  return a;
}

// Picks the backend for the requested device: 'auto' is CUDA device 0 when the plugin is
// loaded and the device usable, else the CPU with the reason in Model.deviceReason;
// 'cuda' / 'cuda:N' is that device or an ERR_GPT2_CUDA error saying why not.
std::unique_ptr<Backend> make_backend(const LoadArgs& a, ModelState& s) {
  const bool want_cuda = a.device == "cuda" || a.device.rfind("cuda:", 0) == 0;
  if (!want_cuda && a.device != "cpu" && a.device != "auto")
    throw_type_error("device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got '" + a.device + "')");
  if (want_cuda || a.device == "auto") {
    int device = 0;
    if (a.device.size() > 5) {
      const std::string n = a.device.substr(5);
      if (n.size() > 4 || n.find_first_not_of("0123456789") != std::string::npos)
        throw_type_error("device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got '" + a.device + "')");
      device = std::stoi(n);
    }
    std::string reason;
    if (std::unique_ptr<CudaBackend> cuda = CudaBackend::create(device, &reason)) {
      s.device = cuda->name();
      return cuda;
    }
    if (want_cuda) throw Error(ErrorKind::Error, code::kCuda, "device '" + a.device + "' requested, but " + reason);
    s.device_reason = reason;
  }
  s.device = "cpu";
  // The process-wide pool: the first model fixes its size; `threads` then caps how many
  // of its threads this model's kernels use.
  ThreadPool& pool = ThreadPool::shared(a.threads > 0 ? a.threads : 0);
  s.threads = a.threads > 0 ? std::min(a.threads, pool.size()) : pool.size();
  return std::make_unique<cpu::CpuBackend>(pool, s.threads);
}

model::ModelOptions model_options(const LoadArgs& a, ModelState& s) {
  model::ModelOptions o;
  // bfloat16: GEMM weights stored as bf16 (AMX / AVX512-BF16 where present, else widened
  // to f32 inside the kernel); embeddings, norms, biases and all activations stay f32.
  if (a.dtype == "float32")
    o.weights = WeightFormat::F32;
  else if (a.dtype == "bfloat16")
    o.weights = WeightFormat::BF16;
  else if (a.dtype == "float16" && s.device.rfind("cuda", 0) == 0)
    o.weights = WeightFormat::F16;  // CUDA: fp16 tensor cores (see cuda/gemm.cu)
  else if (a.dtype == "float16")
    throw_type_error("dtype 'float16' needs device 'cuda'; the CPU backend supports 'float32' and 'bfloat16'");
  else
    throw_type_error("dtype must be 'float32', 'bfloat16' or 'float16' (got '" + a.dtype + "')");
  s.dtype = a.dtype;
  if (a.kv_cache_tokens < 0) throw_range_error("kvCacheTokens must be a positive integer");
  o.kv_cache_tokens = a.kv_cache_tokens;
  return o;
}

// Creates the model's engine loop and registers its work sources, in priority order:
// generation first (decode steps keep streams flowing), then embedding.
void start_engine(ModelState& s) {
  s.scheduler = std::make_unique<engine::Scheduler>(*s.model, engine::SchedulerOptions{});
  s.generation = std::make_shared<engine::GenerationSource>(*s.model, *s.scheduler);
  if (!s.embedding) s.embedding = make_embedding_source(*s.model);
  s.appends = std::make_shared<engine::SequenceAppendSource>(*s.model);
  if (s.generation) s.scheduler->add_source(s.generation.get());
  s.scheduler->add_source(s.appends.get());
  if (s.embedding) s.scheduler->add_source(s.embedding.get());
}

Napi::Value WrapLoaded(Napi::Env env, std::shared_ptr<ModelState> state) {
  start_engine(*state);
  Napi::Object obj = AddonData::of(env).model_constructor.New({});
  ModelWrap::Unwrap(obj)->state_ = std::move(state);
  return obj;
}

// modelLoad(dir, opts) -> Promise<NativeModel>
Napi::Value ModelLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw_type_error("Model.load: dir must be a string");
    const std::string dir = info[0].As<Napi::String>().Utf8Value();
    auto state = std::make_shared<ModelState>();
    const LoadArgs args = load_args(info[1]);
    auto backend = std::make_shared<std::unique_ptr<Backend>>(make_backend(args, *state));
    const model::ModelOptions options = model_options(args, *state);
    return PromiseWorker::Start(
        env,
        [state, backend, dir, options] {
          state->model = GPT2Model::load(dir, std::move(*backend), options);
          state->config = state->model->config();
        },
        [state](Napi::Env env) { return WrapLoaded(env, state); });
  });
}

// modelRandom(presetName | configOverridesJson, isJson, seed, opts) -> Promise<NativeModel>
Napi::Value ModelRandom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw_type_error("Model.random: config must be a preset name or an object");
    const std::string spec = info[0].As<Napi::String>().Utf8Value();
    const bool is_json = info[1].ToBoolean().Value();
    const double seed = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
    auto state = std::make_shared<ModelState>();
    if (is_json) {
      const JsonValue overrides = parse_json(spec, "Model.random config");
      state->config = model::config_with_overrides(model::preset_config("gpt2"), overrides, "Model.random config");
    } else {
      state->config = model::preset_config(spec);
    }
    const LoadArgs args = load_args(info[3]);
    auto backend = std::make_shared<std::unique_ptr<Backend>>(make_backend(args, *state));
    const model::ModelOptions options = model_options(args, *state);
    const uint64_t s = static_cast<uint64_t>(seed);
    return PromiseWorker::Start(
        env,
        [state, backend, options, s] {
          state->model = std::make_unique<GPT2Model>(state->config, std::move(*backend),
                                                     GPT2Model::random_reader(s, state->config), options);
        },
        [state](Napi::Env env) { return WrapLoaded(env, state); });
  });
}

// engineStats() -> { liveModels, liveBytes }: process-wide (all environments).
Napi::Value EngineStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("liveModels", double(GPT2Model::live_models()));
  o.Set("liveBytes", double(GPT2Model::live_bytes()));
  return o;
}

}  // namespace

std::vector<int32_t> ids_from_js(const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw_type_error(what + ": token ids must be a Uint32Array");
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  std::vector<int32_t> out(a.ElementLength());
  for (size_t i = 0; i < out.size(); i++) {
    const uint32_t id = a[i];
    // Ids past int32 are out of every vocabulary; keep them detectable as out of range.
    out[i] = id > uint32_t(INT32_MAX) ? INT32_MAX : static_cast<int32_t>(id);
  }
  return out;
}

Napi::Float32Array float32_from(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

void InitModel(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ModelWrap::Define(env);
  AddonData::of(env).model_constructor = Napi::Persistent(ctor);
  exports.Set("NativeModel", ctor);
  exports.Set("modelLoad", Napi::Function::New(env, ModelLoad, "modelLoad"));
  exports.Set("modelRandom", Napi::Function::New(env, ModelRandom, "modelRandom"));
  exports.Set("engineStats", Napi::Function::New(env, EngineStats, "engineStats"));
  InitSequence(env, exports);
  InitGeneration(env, exports);
}

std::shared_ptr<ModelState> model_state_of(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(AddonData::of(v.Env()).model_constructor.Value()))
    throw_type_error("expected a NativeModel");
  ModelWrap* w = ModelWrap::Unwrap(v.As<Napi::Object>());
  if (!w->state_) throw_type_error("NativeModel: not a loaded model (use Model.load or Model.random)");
  return w->state_;
}

}  // namespace gpt2::addon
