// Errors thrown by the C++ core. The addon turns them into JavaScript errors of the
// same kind (TypeError, RangeError, Error) with `code` set, so callers can branch on
// the code and read what went wrong and where in the message. The core never aborts.
#pragma once
#include <stdexcept>
#include <string>

namespace gpt2 {

enum class ErrorKind { Error, TypeError, RangeError };

// Stable codes, mirrored in lib/errors.ts.
namespace code {
inline constexpr const char* kInvalidArg = "ERR_GPT2_INVALID_ARG";    // wrong type or value of an option
inline constexpr const char* kOutOfRange = "ERR_GPT2_OUT_OF_RANGE";   // token id, index, length out of range
inline constexpr const char* kFileFormat = "ERR_GPT2_FILE_FORMAT";    // malformed model/tokenizer file
inline constexpr const char* kFileIO = "ERR_GPT2_FILE_IO";            // cannot open/read/map a file
inline constexpr const char* kDisposed = "ERR_GPT2_DISPOSED";         // object used after dispose()
inline constexpr const char* kCuda = "ERR_GPT2_CUDA";                 // CUDA plugin/device failure
inline constexpr const char* kOutOfMemory = "ERR_GPT2_OUT_OF_MEMORY";
inline constexpr const char* kKvCacheFull = "ERR_GPT2_KV_CACHE_FULL";  // no free KV-cache blocks
inline constexpr const char* kAborted = "ERR_GPT2_ABORTED";
inline constexpr const char* kInternal = "ERR_GPT2_INTERNAL";
}  // namespace code

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string code, const std::string& message)
      : std::runtime_error(message), kind_(kind), code_(std::move(code)) {}
  ErrorKind kind() const { return kind_; }
  const std::string& code() const { return code_; }

 private:
  ErrorKind kind_;
  std::string code_;
};

[[noreturn]] inline void throw_type_error(const std::string& msg) {
  throw Error(ErrorKind::TypeError, code::kInvalidArg, msg);
}
[[noreturn]] inline void throw_range_error(const std::string& msg) {
  throw Error(ErrorKind::RangeError, code::kOutOfRange, msg);
}
[[noreturn]] inline void throw_format_error(const std::string& msg) {
  throw Error(ErrorKind::Error, code::kFileFormat, msg);
}
[[noreturn]] inline void throw_io_error(const std::string& msg) {
  throw Error(ErrorKind::Error, code::kFileIO, msg);
}

}  // namespace gpt2
