// Helpers shared by the plugin's .cu files: the per-thread last-error message and the
// wrapper that keeps C++ exceptions from crossing the C ABI.
#pragma once
#include <cuda_runtime.h>

#include <new>
#include <string>

#include "cuda_plugin_abi.h"

namespace gpt2_cuda {

// Message of the last failure on this host thread (what gpt2_cuda_last_error returns).
std::string& last_error();

inline gpt2_cuda_status fail(gpt2_cuda_status status, const std::string& message) {
  last_error() = message;
  return status;
}

// "cudaMalloc: out of memory (cudaErrorMemoryAllocation)"
// `call` may be the call's source text; only the function name is kept.
inline gpt2_cuda_status fail_cuda(const char* call, cudaError_t err) {
  std::string name(call);
  name = name.substr(0, name.find('('));
  std::string msg = name + ": " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")";
  return fail(err == cudaErrorMemoryAllocation ? GPT2_CUDA_ERROR_OUT_OF_MEMORY : GPT2_CUDA_ERROR_CUDA, msg);
}

// Fail unless gpt2_cuda_init() has succeeded / unless `device` is a valid ordinal too.
gpt2_cuda_status require_init(const char* entry);
gpt2_cuda_status check_device(const char* entry, int32_t device);

// Runs `body` (returning gpt2_cuda_status) and turns any escaping exception into a status.
template <typename Body>
gpt2_cuda_status guarded(const char* entry, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(GPT2_CUDA_ERROR_OUT_OF_MEMORY, std::string(entry) + ": out of host memory");
  } catch (const std::exception& e) {
    return fail(GPT2_CUDA_ERROR_INTERNAL, std::string(entry) + ": " + e.what());
  } catch (...) {
    return fail(GPT2_CUDA_ERROR_INTERNAL, std::string(entry) + ": unknown exception");
  }
}

#define GPT2_CUDA_CHECK(call)                                      \
  do {                                                             \
    cudaError_t gpt2_cuda_err_ = (call);                           \
    if (gpt2_cuda_err_ != cudaSuccess) {                           \
      cudaGetLastError(); /* clear a non-sticky error */           \
      return ::gpt2_cuda::fail_cuda(#call, gpt2_cuda_err_);        \
    }                                                              \
  } while (0)

}  // namespace gpt2_cuda
