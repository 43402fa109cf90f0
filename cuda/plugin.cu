// The plugin's entry points for versions, errors, initialisation and device queries
// (native/core/cuda_plugin_abi.h). Kernels and their entry points live in their own files.
#include <cuda_runtime.h>

#include <cstring>
#include <mutex>
#include <string>

#include "plugin_internal.h"

namespace gpt2_cuda {

std::string& last_error() {
  thread_local std::string message;
  return message;
}

namespace {

std::mutex init_mutex;
bool initialised = false;

// cudaGetDeviceCount initialises the runtime and is the first call to report a missing
// driver (cudaErrorInsufficientDriver / cudaErrorNoDevice), so its message is the reason
// users see.
gpt2_cuda_status init_locked() {
  if (initialised) return GPT2_CUDA_OK;
  int count = 0;
  GPT2_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (count <= 0) return fail(GPT2_CUDA_ERROR_CUDA, "cudaGetDeviceCount: no CUDA device found");
  initialised = true;
  return GPT2_CUDA_OK;
}

}  // namespace

gpt2_cuda_status require_init(const char* entry) {
  std::lock_guard<std::mutex> lock(init_mutex);
  if (!initialised) return fail(GPT2_CUDA_ERROR_NOT_INITIALIZED, std::string(entry) + ": gpt2_cuda_init() has not succeeded");
  return GPT2_CUDA_OK;
}

gpt2_cuda_status check_device(const char* entry, int32_t device) {
  gpt2_cuda_status s = require_init(entry);
  if (s != GPT2_CUDA_OK) return s;
  int count = 0;
  GPT2_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count) {
    return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT,
                std::string(entry) + ": device " + std::to_string(device) + " out of range (" + std::to_string(count) +
                    " device(s))");
  }
  return GPT2_CUDA_OK;
}

}  // namespace gpt2_cuda

using namespace gpt2_cuda;

extern "C" {

GPT2_CUDA_API uint32_t gpt2_cuda_abi_version(void) { return GPT2_CUDA_ABI_VERSION; }

GPT2_CUDA_API const char* gpt2_cuda_last_error(void) { return last_error().c_str(); }

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_runtime_version(int32_t* version) {
  return guarded("gpt2_cuda_runtime_version", [&] {
    if (!version) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_runtime_version: null pointer");
    int v = 0;
    GPT2_CUDA_CHECK(cudaRuntimeGetVersion(&v));
    *version = v;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_driver_version(int32_t* version) {
  return guarded("gpt2_cuda_driver_version", [&] {
    if (!version) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_driver_version: null pointer");
    int v = 0;
    GPT2_CUDA_CHECK(cudaDriverGetVersion(&v));
    *version = v;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_init(void) {
  return guarded("gpt2_cuda_init", [&] {
    std::lock_guard<std::mutex> lock(init_mutex);
    return init_locked();
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_device_count(int32_t* count) {
  return guarded("gpt2_cuda_device_count", [&] {
    if (!count) return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_device_count: null pointer");
    gpt2_cuda_status s = require_init("gpt2_cuda_device_count");
    if (s != GPT2_CUDA_OK) return s;
    int n = 0;
    GPT2_CUDA_CHECK(cudaGetDeviceCount(&n));
    *count = n;
    return GPT2_CUDA_OK;
  });
}

GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_device_info_get(int32_t device, gpt2_cuda_device_info* info) {
  return guarded("gpt2_cuda_device_info_get", [&] {
    if (!info || info->size < offsetof(gpt2_cuda_device_info, name)) {
      return fail(GPT2_CUDA_ERROR_INVALID_ARGUMENT, "gpt2_cuda_device_info_get: null pointer or bad size");
    }
    gpt2_cuda_status s = check_device("gpt2_cuda_device_info_get", device);
    if (s != GPT2_CUDA_OK) return s;
    cudaDeviceProp prop;
    GPT2_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));

    // Fill a full local copy, then copy only the prefix the caller's struct has room for.
    gpt2_cuda_device_info out;
    std::memset(&out, 0, sizeof out);
    out.size = sizeof out;
    out.index = device;
    size_t name_len = strnlen(prop.name, sizeof prop.name);
    if (name_len > sizeof out.name - 1) name_len = sizeof out.name - 1;
    std::memcpy(out.name, prop.name, name_len);  // out was zeroed: stays NUL-terminated
    out.compute_major = prop.major;
    out.compute_minor = prop.minor;
    out.total_memory = static_cast<uint64_t>(prop.totalGlobalMem);
    out.multiprocessors = prop.multiProcessorCount;
    out.max_shared_memory_per_block_optin = static_cast<int32_t>(prop.sharedMemPerBlockOptin);
    out.l2_cache_bytes = prop.l2CacheSize;
    out.memory_bus_width_bits = prop.memoryBusWidth;
    out.pci_bus_id = prop.pciBusID;
    out.pci_device_id = prop.pciDeviceID;
    uint32_t n = info->size < sizeof out ? info->size : static_cast<uint32_t>(sizeof out);
    std::memcpy(reinterpret_cast<char*>(info) + sizeof(uint32_t), reinterpret_cast<const char*>(&out) + sizeof(uint32_t),
                n - sizeof(uint32_t));
    return GPT2_CUDA_OK;
  });
}

}  // extern "C"
