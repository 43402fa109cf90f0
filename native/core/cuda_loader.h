// Finds, loads and initialises the optional CUDA plugin (libgpt2_cuda.so, cuda/) once per
// process. Thread-safe and never throws: every failure becomes CudaStatus::reason, and the
// CPU backend is used. The addon itself never links CUDA.
//
// Search order (the first file that exists is used; a failing explicit path is not skipped):
//   1. $GPT2_CUDA_PLUGIN (a path to the .so)
//   2. next to the addon's .node file (prebuilds ship it there; see scripts/build-cuda.mjs --into)
//   3. <package root>/build-cuda/Release, then <package root>/build-cuda (a source build)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda_plugin_abi.h"

namespace gpt2 {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  uint64_t total_memory = 0;
  int multiprocessors = 0;
};

struct CudaStatus {
  bool available = false;       // a plugin loaded, initialised and found a usable device
  std::string reason;           // why not, when !available ("CUDA plugin not installed", ...)
  std::string plugin_path;      // the plugin that was loaded (or tried), empty when none
  std::vector<std::string> searched;  // candidate paths, in search order
  int driver_version = -1;      // CUDA encoding (12040 = 12.4); 0 = no driver; -1 = unknown
  int runtime_version = -1;     // the plugin's cudart version; -1 = unknown
  std::vector<CudaDeviceInfo> devices;
};

// Oldest compute capability the plugin is built for (sm_80).
inline constexpr int kCudaMinComputeMajor = 8;

// The Backend entry points (ABI 1.1), as X(name) for gpt2_cuda_<name>.
#define GPT2_CUDA_BACKEND_ENTRIES(X)                                                                  \
  X(backend_create) X(backend_destroy) X(alloc) X(free) X(upload) X(download) X(copy_kv_blocks) \
  X(pack_weight) X(free_weight) X(weight_bytes) X(matmul) X(layernorm) X(embed) X(kv_append)        \
  X(attention) X(gather_rows) X(sample)

// Optional entry points: null when the plugin lacks them (then the backend has no graphs).
#define GPT2_CUDA_GRAPH_ENTRIES(X) X(graph_begin) X(graph_end) X(graph_launch) X(graph_forget)

// The entry points of a loaded plugin (cuda_plugin_abi.h). Grows with the ABI's minor
// version: entries added later may be null when the plugin predates them.
struct CudaPluginApi {
  uint32_t abi_version = 0;
  uint32_t (*abi_version_fn)(void) = nullptr;
  const char* (*last_error)(void) = nullptr;
  gpt2_cuda_status (*runtime_version)(int32_t*) = nullptr;
  gpt2_cuda_status (*driver_version)(int32_t*) = nullptr;
  gpt2_cuda_status (*init)(void) = nullptr;
  gpt2_cuda_status (*device_count)(int32_t*) = nullptr;
  gpt2_cuda_status (*device_info_get)(int32_t, gpt2_cuda_device_info*) = nullptr;
  gpt2_cuda_status (*self_test)(int32_t) = nullptr;
#define GPT2_CUDA_API_FIELD(name) decltype(&gpt2_cuda_##name) name = nullptr;
  GPT2_CUDA_BACKEND_ENTRIES(GPT2_CUDA_API_FIELD)
  GPT2_CUDA_GRAPH_ENTRIES(GPT2_CUDA_API_FIELD)
#undef GPT2_CUDA_API_FIELD
};

// Loads the plugin on first use (later calls return the same result).
const CudaStatus& cuda_status() noexcept;

// The loaded, initialised plugin's entry points, or null when CUDA is not available.
const CudaPluginApi* cuda_plugin() noexcept;

// Runs the plugin's self-test kernel on `device`. Returns an empty string on success, else
// what failed (including "CUDA is not available: <reason>").
std::string cuda_self_test(int device) noexcept;

}  // namespace gpt2
