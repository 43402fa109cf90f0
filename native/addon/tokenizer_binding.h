// JS <-> native tokenizer. Other bindings (the Model) use these two functions to share
// the immutable native tokenizer: lib/tokenizer.ts exposes the wrapped object of a
// Tokenizer as `tokenizer[nativeTokenizer]` (see lib/tokenizer.ts).
#pragma once
#include <napi.h>

#include <memory>

#include "tokenizer/tokenizer.h"

namespace gpt2::addon {

// The native tokenizer of a wrapped object (the NativeTokenizer class); throws a
// TypeError when value is something else.
std::shared_ptr<const tokenizer::Tokenizer> UnwrapTokenizer(Napi::Env env, Napi::Value value);

// A new NativeTokenizer object sharing t.
Napi::Object WrapTokenizer(Napi::Env env, std::shared_ptr<const tokenizer::Tokenizer> t);

}  // namespace gpt2::addon
