// NativeTokenizer: the N-API face of gpt2::tokenizer::Tokenizer. lib/tokenizer.ts wraps
// it in the public Tokenizer class; argument shapes that are cheap to check in
// JavaScript (ids arrays) are checked there, everything else here.
#include "addon/tokenizer_binding.h"

#include <algorithm>
#include <string>
#include <vector>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "addon/promise_worker.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace gpt2::addon {
namespace {

using tokenizer::Tokenizer;
using TokenizerPtr = std::shared_ptr<const Tokenizer>;

// UTF-8 bytes of a JS string in buf, in one V8 call: a UTF-16 unit never needs more
// than 3 bytes. Lone surrogates become U+FFFD (EF BF BD), as with TextEncoder.
std::string_view utf8_of(Napi::Env env, napi_value value, std::string& buf) {
  size_t units = 0;
  napi_status st = napi_get_value_string_utf16(env, value, nullptr, 0, &units);
  if (st == napi_string_expected) throw_type_error("text must be a string");
  NAPI_THROW_IF_FAILED(env, st, std::string_view());
  if (buf.size() < units * 3 + 1) buf.resize(units * 3 + 1);
  size_t written = 0;
  st = napi_get_value_string_utf8(env, value, buf.data(), buf.size(), &written);
  NAPI_THROW_IF_FAILED(env, st, std::string_view());
  return std::string_view(buf.data(), written);
}

Napi::Uint32Array to_uint32_array(Napi::Env env, const std::vector<uint32_t>& ids) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, ids.size() * sizeof(uint32_t));
  if (!ids.empty()) std::memcpy(ab.Data(), ids.data(), ids.size() * sizeof(uint32_t));
  return Napi::Uint32Array::New(env, ids.size(), ab, 0);
}

class NativeTokenizer : public Napi::ObjectWrap<NativeTokenizer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTokenizer",
                       {
                           InstanceMethod<&NativeTokenizer::Encode>("encode"),
                           InstanceMethod<&NativeTokenizer::EncodeInto>("encodeInto"),
                           InstanceMethod<&NativeTokenizer::Count>("count"),
                           InstanceMethod<&NativeTokenizer::EncodeBatch>("encodeBatch"),
                           InstanceMethod<&NativeTokenizer::Decode>("decode"),
                           InstanceMethod<&NativeTokenizer::DecodeBytes>("decodeBytes"),
                           InstanceMethod<&NativeTokenizer::SpecialTokens>("specialTokens"),
                           InstanceAccessor<&NativeTokenizer::VocabSize>("vocabSize"),
                           InstanceAccessor<&NativeTokenizer::EosTokenId>("eosTokenId"),
                       });
  }

  // Only native code constructs these (WrapTokenizer passes the tokenizer in an External).
  explicit NativeTokenizer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTokenizer>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw make_error(info.Env(), ErrorKind::TypeError, code::kInvalidArg,
                       "NativeTokenizer cannot be constructed directly; use Tokenizer.gpt2() or Tokenizer.fromPretrained()");
    tok_ = *info[0].As<Napi::External<TokenizerPtr>>().Data();
  }

  const TokenizerPtr& tokenizer() const { return tok_; }

 private:
  // allowedSpecial: undefined/null (none), 'all', or an array of special token texts.
  Tokenizer::AllowedSpecial allowed_of(Napi::Value v) const {
    Tokenizer::AllowedSpecial allowed;
    if (v.IsUndefined() || v.IsNull()) return allowed;
    if (v.IsString()) {
      std::string s = v.As<Napi::String>().Utf8Value();
      if (s != "all") throw_type_error("allowedSpecial must be 'all' or an array of special tokens, got '" + s + "'");
      for (uint32_t i = 0; i < tok_->specials().size(); i++) allowed.push_back(i);
      return allowed;
    }
    if (!v.IsArray()) throw_type_error("allowedSpecial must be 'all' or an array of special tokens");
    Napi::Array arr = v.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value item = arr.Get(i);
      if (!item.IsString()) throw_type_error("allowedSpecial[" + std::to_string(i) + "] must be a string");
      std::string s = item.As<Napi::String>().Utf8Value();
      int idx = tok_->special_index(s);
      if (idx < 0) throw_type_error("allowedSpecial[" + std::to_string(i) + "]: '" + s + "' is not a special token of this tokenizer");
      if (std::find(allowed.begin(), allowed.end(), uint32_t(idx)) == allowed.end()) allowed.push_back(idx);
    }
    return allowed;
  }

  void encode_into(const Napi::CallbackInfo& info, std::vector<uint32_t>& ids) {
    static thread_local std::string buf;
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_type_error("text must be a string");
    std::string_view text = utf8_of(env, info[0], buf);
    ids.clear();
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      tok_->encode(text, allowed_of(info[1]), ids);
    } else {
      tok_->encode_ordinary(text, ids);
    }
  }

  Napi::Value Encode(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      static thread_local std::vector<uint32_t> ids;
      encode_into(info, ids);
      Napi::Value out = to_uint32_array(info.Env(), ids);
      if (ids.capacity() > (1u << 20)) std::vector<uint32_t>().swap(ids);  // don't pin huge buffers
      return out;
    });
  }

  // encodeInto(text, scratch: Uint32Array, allowedSpecial?): writes the ids into scratch
  // and returns their count when they fit, else returns a new Uint32Array. Short texts
  // then cost no ArrayBuffer creation here: JS copies scratch.slice(0, n), which V8
  // allocates much faster than an N-API ArrayBuffer.
  Napi::Value EncodeInto(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      static thread_local std::vector<uint32_t> ids;
      if (info.Length() < 2 || !info[1].IsTypedArray() ||
          info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
        throw_type_error("scratch must be a Uint32Array");
      Napi::Uint32Array scratch = info[1].As<Napi::Uint32Array>();
      static thread_local std::string buf;
      Napi::Env env = info.Env();
      if (!info[0].IsString()) throw_type_error("text must be a string");
      std::string_view text = utf8_of(env, info[0], buf);
      ids.clear();
      if (info.Length() >= 3 && !info[2].IsUndefined()) {
        tok_->encode(text, allowed_of(info[2]), ids);
      } else {
        tok_->encode_ordinary(text, ids);
      }
      if (ids.size() <= scratch.ElementLength()) {
        if (!ids.empty()) std::memcpy(scratch.Data(), ids.data(), ids.size() * sizeof(uint32_t));
        return Napi::Number::New(env, static_cast<double>(ids.size()));
      }
      Napi::Value out = to_uint32_array(env, ids);
      if (ids.capacity() > (1u << 20)) std::vector<uint32_t>().swap(ids);
      return out;
    });
  }

  Napi::Value Count(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      static thread_local std::vector<uint32_t> ids;
      encode_into(info, ids);
      size_t n = ids.size();
      if (ids.capacity() > (1u << 20)) std::vector<uint32_t>().swap(ids);
      return Napi::Number::New(info.Env(), static_cast<double>(n));
    });
  }

  // Strings are copied to UTF-8 here (V8 only on this thread), encoded on the shared
  // pool off the event loop, and returned as views into one ArrayBuffer.
  Napi::Value EncodeBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsArray()) throw_type_error("texts must be an array of strings");
      Napi::Array arr = info[0].As<Napi::Array>();
      struct Job {
        TokenizerPtr tok;
        Tokenizer::AllowedSpecial allowed;
        std::string text;             // all texts back to back
        std::vector<size_t> offsets;  // n + 1
        std::vector<std::vector<uint32_t>> chunk_ids;
        std::vector<std::vector<uint32_t>> chunk_lengths;
        size_t per_chunk = 0;
      };
      auto job = std::make_shared<Job>();
      job->tok = tok_;
      job->allowed = allowed_of(info.Length() >= 2 ? info[1] : env.Undefined());
      uint32_t n = arr.Length();
      job->offsets.reserve(n + 1);
      job->offsets.push_back(0);
      std::string buf;
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value item = arr.Get(i);
        if (!item.IsString()) throw_type_error("texts[" + std::to_string(i) + "] must be a string");
        std::string_view s = utf8_of(env, item, buf);
        job->text.append(s);
        job->offsets.push_back(job->text.size());
      }
      // Chunks of about 16 KB of text, or at least one per text for few long texts.
      size_t target = std::max<size_t>(1, job->text.size() / 16384);
      job->per_chunk = std::max<size_t>(1, (n + target - 1) / target);
      size_t chunks = n == 0 ? 0 : (n + job->per_chunk - 1) / job->per_chunk;
      job->chunk_ids.resize(chunks);
      job->chunk_lengths.resize(chunks);
      return PromiseWorker::Start(
          env,
          [job, chunks, n] {
            ThreadPool::shared().run(static_cast<int64_t>(chunks), [&](int64_t c, int) {
              size_t begin = c * job->per_chunk, end = std::min<size_t>(n, begin + job->per_chunk);
              auto& ids = job->chunk_ids[c];
              auto& lengths = job->chunk_lengths[c];
              for (size_t i = begin; i < end; i++) {
                size_t before = ids.size();
                std::string_view text(job->text.data() + job->offsets[i], job->offsets[i + 1] - job->offsets[i]);
                job->tok->encode(text, job->allowed, ids);
                lengths.push_back(static_cast<uint32_t>(ids.size() - before));
              }
            });
          },
          [job, n](Napi::Env env) -> Napi::Value {
            size_t total = 0;
            for (const auto& ids : job->chunk_ids) total += ids.size();
            Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, total * sizeof(uint32_t));
            auto* dst = static_cast<uint32_t*>(ab.Data());
            Napi::Array out = Napi::Array::New(env, n);
            size_t at = 0;
            uint32_t index = 0;
            for (size_t c = 0; c < job->chunk_ids.size(); c++) {
              const auto& ids = job->chunk_ids[c];
              if (!ids.empty()) std::memcpy(dst + at, ids.data(), ids.size() * sizeof(uint32_t));
              for (uint32_t len : job->chunk_lengths[c]) {
                out.Set(index++, Napi::Uint32Array::New(env, len, ab, at * sizeof(uint32_t)));
                at += len;
              }
            }
            return out;
          });
    });
  }

  // ids: a Uint32Array (lib/tokenizer.ts converts and checks other array-likes).
  void bytes_of(const Napi::CallbackInfo& info, std::string& out) {
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      throw_type_error("ids must be a Uint32Array");
    Napi::Uint32Array ids = info[0].As<Napi::Uint32Array>();
    out.clear();
    tok_->decode_bytes(ids.Data(), ids.ElementLength(), out);
  }

  Napi::Value Decode(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      static thread_local std::string bytes;
      bytes_of(info, bytes);
      return Napi::String::New(info.Env(), bytes.data(), bytes.size());
    });
  }

  Napi::Value DecodeBytes(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      static thread_local std::string bytes;
      bytes_of(info, bytes);
      Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), bytes.size());
      if (!bytes.empty()) std::memcpy(out.Data(), bytes.data(), bytes.size());
      return out;
    });
  }

  Napi::Value SpecialTokens(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    for (const auto& s : tok_->specials()) out.Set(s.content, Napi::Number::New(env, s.id));
    return out;
  }

  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tok_->vocab_size()); }
  Napi::Value EosTokenId(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(tok_->eos_token_id()));
  }

  TokenizerPtr tok_;
};

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw_type_error(std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// tokenizerGpt2(assetDir): the bundled vocabulary, cached per process.
Napi::Value TokenizerGpt2(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return WrapTokenizer(info.Env(), Tokenizer::gpt2(string_arg(info, 0, "assetDir")));
  });
}

// tokenizerFromDir(dir): Promise<NativeTokenizer>, loaded on the libuv pool.
Napi::Value TokenizerFromDir(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    std::string dir = string_arg(info, 0, "dir");
    auto result = std::make_shared<TokenizerPtr>();
    return PromiseWorker::Start(
        info.Env(), [dir, result] { *result = Tokenizer::from_dir(dir); },
        [result](Napi::Env env) -> Napi::Value { return WrapTokenizer(env, *result); });
  });
}

// tokenizerDirHasFiles(dir): whether dir holds tokenizer files.
Napi::Value TokenizerDirHasFiles(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), Tokenizer::dir_has_tokenizer(string_arg(info, 0, "dir")));
  });
}

}  // namespace

std::shared_ptr<const tokenizer::Tokenizer> UnwrapTokenizer(Napi::Env env, Napi::Value value) {
  Napi::FunctionReference& ctor = AddonData::of(env).tokenizer_constructor;
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value()))
    throw_type_error("expected a native tokenizer");
  return NativeTokenizer::Unwrap(value.As<Napi::Object>())->tokenizer();
}

Napi::Object WrapTokenizer(Napi::Env env, std::shared_ptr<const tokenizer::Tokenizer> t) {
  TokenizerPtr holder = std::move(t);
  // The External only lives during the constructor call, which copies the shared_ptr.
  return AddonData::of(env).tokenizer_constructor.New({Napi::External<TokenizerPtr>::New(env, &holder)});
}

void InitTokenizer(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeTokenizer::Define(env);
  AddonData::of(env).tokenizer_constructor = Napi::Persistent(ctor);
  exports.Set("NativeTokenizer", ctor);
  exports.Set("tokenizerGpt2", Napi::Function::New<TokenizerGpt2>(env, "tokenizerGpt2"));
  exports.Set("tokenizerFromDir", Napi::Function::New<TokenizerFromDir>(env, "tokenizerFromDir"));
  exports.Set("tokenizerDirHasFiles", Napi::Function::New<TokenizerDirHasFiles>(env, "tokenizerDirHasFiles"));
}

}  // namespace gpt2::addon
