// Placeholder until the native tokenizer lands (issue 2).
#include "addon/addon_data.h"
namespace gpt2::addon {
void InitTokenizer(Napi::Env, Napi::Object) {}
}  // namespace gpt2::addon
