// Module entry point. Only native/addon/ knows about JavaScript.
#include <napi.h>

#include "addon/addon_data.h"

namespace gpt2::addon {
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  InitInfo(env, exports);
  InitTokenizer(env, exports);
  InitModel(env, exports);
  InitIndex(env, exports);
  return exports;
}

}  // namespace
}  // namespace gpt2::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return gpt2::addon::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
