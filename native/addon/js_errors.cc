#include "addon/js_errors.h"

namespace gpt2::addon {

void CapturedError::capture(std::exception_ptr ep) {
  set = true;
  try {
    std::rethrow_exception(ep);
  } catch (const gpt2::Error& e) {
    kind = e.kind();
    code = e.code();
    message = e.what();
  } catch (const std::bad_alloc&) {
    kind = ErrorKind::Error;
    code = code::kOutOfMemory;
    message = "out of memory";
  } catch (const std::exception& e) {
    kind = ErrorKind::Error;
    code = code::kInternal;
    message = std::string("internal error: ") + e.what();
  } catch (...) {
    kind = ErrorKind::Error;
    code = code::kInternal;
    message = "internal error: unknown exception";
  }
}

Napi::Error CapturedError::to_js(Napi::Env env) const { return make_error(env, kind, code, message); }

Napi::Error make_error(Napi::Env env, ErrorKind kind, const std::string& code, const std::string& message) {
  Napi::Error err = kind == ErrorKind::TypeError    ? Napi::TypeError::New(env, message)
                    : kind == ErrorKind::RangeError ? Napi::RangeError::New(env, message)
                                                    : Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

}  // namespace gpt2::addon
