// The one place C++ failures become JavaScript errors: gpt2::Error keeps its kind
// (TypeError/RangeError/Error) and gets `code`; std::bad_alloc becomes
// ERR_GPT2_OUT_OF_MEMORY; anything else ERR_GPT2_INTERNAL. No exception escapes into V8.
#pragma once
#include <napi.h>

#include <exception>
#include <new>
#include <string>

#include "core/error.h"

namespace gpt2::addon {

// A failure captured on a worker thread, turned into a JS error later on the JS thread.
struct CapturedError {
  ErrorKind kind = ErrorKind::Error;
  std::string code;
  std::string message;
  bool set = false;

  void capture(std::exception_ptr ep);
  Napi::Error to_js(Napi::Env env) const;
};

Napi::Error make_error(Napi::Env env, ErrorKind kind, const std::string& code, const std::string& message);

// Runs fn (which returns a Napi::Value) and converts any C++ exception into a pending
// JS exception. Use at the top of every binding method.
template <class F>
Napi::Value guarded(Napi::Env env, F&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;  // already a JS error
  } catch (...) {
    CapturedError e;
    e.capture(std::current_exception());
    throw e.to_js(env);
  }
}

}  // namespace gpt2::addon
