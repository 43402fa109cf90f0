// Placeholder until the CPU engine lands (issue 3).
#include "addon/addon_data.h"
namespace gpt2::addon {
void InitModel(Napi::Env, Napi::Object) {}
}  // namespace gpt2::addon
