// See cuda_loader.h. Everything here runs once, under a function-local static (thread-safe
// initialisation), and reports failures as strings instead of throwing.
#include "core/cuda_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace gpt2 {
namespace {

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string dirname_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf)) return buf;
  return path;
}

// Path of the shared object this code is linked into (the addon's .node), found with dladdr
// on one of its own functions.
std::string this_module_path() {
  Dl_info info;
  std::memset(&info, 0, sizeof info);
  if (::dladdr(reinterpret_cast<void*>(&this_module_path), &info) == 0 || !info.dli_fname) return "";
  return absolute(info.dli_fname);
}

std::vector<std::string> default_candidates() {
  std::vector<std::string> out;
  std::string module = this_module_path();
  if (module.empty()) return out;
  std::string module_dir = dirname_of(module);
  out.push_back(module_dir + "/" GPT2_CUDA_PLUGIN_FILE);
  // build/Release/gpt2.node and prebuilds/<platform-arch>/*.node both sit two levels below
  // the package root.
  std::string root = dirname_of(dirname_of(module_dir));
  out.push_back(root + "/build-cuda/Release/" GPT2_CUDA_PLUGIN_FILE);
  out.push_back(root + "/build-cuda/" GPT2_CUDA_PLUGIN_FILE);
  return out;
}

std::string version_string(uint32_t v) { return std::to_string(v >> 16) + "." + std::to_string(v & 0xffff); }

template <typename Fn>
bool resolve(void* handle, const char* name, Fn*& out) {
  out = reinterpret_cast<Fn*>(::dlsym(handle, name));
  return out != nullptr;
}

std::string plugin_error(const CudaPluginApi& api, const char* call) {
  const char* msg = api.last_error ? api.last_error() : nullptr;
  if (msg && *msg) return msg;
  return std::string(call) + " failed";
}

struct Loaded {
  CudaStatus status;
  CudaPluginApi api;
  bool api_ready = false;
  std::mutex self_test_mutex;

  Loaded() noexcept;
};

// Fills `out` from the plugin at `path`; returns false with out.status.reason set on failure.
bool load_plugin(const std::string& path, const std::string& label, Loaded& out) {
  CudaStatus& st = out.status;
  st.plugin_path = path;
  ::dlerror();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    st.reason = "cannot load CUDA plugin " + label + ": " + (err ? err : "dlopen failed");
    return false;
  }
  // The handle is never closed: the plugin's static cudart may own threads and the Backend
  // will hold pointers into it for the life of the process.
  CudaPluginApi& api = out.api;
  if (!resolve(handle, "gpt2_cuda_abi_version", api.abi_version_fn)) {
    st.reason = "CUDA plugin " + label + " is not a gpt2-node plugin (no gpt2_cuda_abi_version)";
    return false;
  }
  api.abi_version = api.abi_version_fn();
  if ((api.abi_version >> 16) != GPT2_CUDA_ABI_MAJOR || static_cast<int>(api.abi_version & 0xffff) < GPT2_CUDA_ABI_MINOR) {
    st.reason = "CUDA plugin " + label + " has ABI version " + version_string(api.abi_version) + ", this addon needs " +
                version_string(GPT2_CUDA_ABI_VERSION) + " (rebuild it: node scripts/build-cuda.mjs)";
    return false;
  }
  const char* missing = nullptr;
  if (!resolve(handle, "gpt2_cuda_last_error", api.last_error)) missing = "gpt2_cuda_last_error";
  else if (!resolve(handle, "gpt2_cuda_runtime_version", api.runtime_version)) missing = "gpt2_cuda_runtime_version";
  else if (!resolve(handle, "gpt2_cuda_driver_version", api.driver_version)) missing = "gpt2_cuda_driver_version";
  else if (!resolve(handle, "gpt2_cuda_init", api.init)) missing = "gpt2_cuda_init";
  else if (!resolve(handle, "gpt2_cuda_device_count", api.device_count)) missing = "gpt2_cuda_device_count";
  else if (!resolve(handle, "gpt2_cuda_device_info_get", api.device_info_get)) missing = "gpt2_cuda_device_info_get";
  else if (!resolve(handle, "gpt2_cuda_self_test", api.self_test)) missing = "gpt2_cuda_self_test";
#define GPT2_CUDA_RESOLVE(name) \
  else if (!resolve(handle, "gpt2_cuda_" #name, api.name)) missing = "gpt2_cuda_" #name;
  GPT2_CUDA_BACKEND_ENTRIES(GPT2_CUDA_RESOLVE)
#undef GPT2_CUDA_RESOLVE
  if (missing) {
    st.reason = "CUDA plugin " + label + " lacks " + missing;
    return false;
  }
#define GPT2_CUDA_RESOLVE_OPTIONAL(name) resolve(handle, "gpt2_cuda_" #name, api.name);
  GPT2_CUDA_GRAPH_ENTRIES(GPT2_CUDA_RESOLVE_OPTIONAL)
#undef GPT2_CUDA_RESOLVE_OPTIONAL

  int32_t v = 0;
  if (api.runtime_version(&v) == GPT2_CUDA_OK) st.runtime_version = v;
  if (api.driver_version(&v) == GPT2_CUDA_OK) st.driver_version = v;

  if (api.init() != GPT2_CUDA_OK) {
    st.reason = plugin_error(api, "gpt2_cuda_init");
    return false;
  }
  int32_t count = 0;
  if (api.device_count(&count) != GPT2_CUDA_OK) {
    st.reason = plugin_error(api, "gpt2_cuda_device_count");
    return false;
  }
  std::string unusable;
  for (int32_t i = 0; i < count; i++) {
    gpt2_cuda_device_info info;
    std::memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (api.device_info_get(i, &info) != GPT2_CUDA_OK) {
      st.reason = plugin_error(api, "gpt2_cuda_device_info_get");
      return false;
    }
    info.name[sizeof info.name - 1] = '\0';
    CudaDeviceInfo d;
    d.index = info.index;
    d.name = info.name;
    d.compute_major = info.compute_major;
    d.compute_minor = info.compute_minor;
    d.total_memory = info.total_memory;
    d.multiprocessors = info.multiprocessors;
    if (d.compute_major < kCudaMinComputeMajor && unusable.empty()) {
      unusable = "CUDA device " + std::to_string(i) + " (" + d.name + ") has compute capability " +
                 std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor) + "; gpt2-node needs " +
                 std::to_string(kCudaMinComputeMajor) + ".0 or newer";
    }
    st.devices.push_back(std::move(d));
  }
  bool any_usable = false;
  for (const CudaDeviceInfo& d : st.devices) any_usable |= d.compute_major >= kCudaMinComputeMajor;
  if (!any_usable) {
    st.reason = count == 0 ? "no CUDA device found" : unusable;
    return false;
  }
  out.api_ready = true;
  return true;
}

void load(Loaded& out) {
  CudaStatus& st = out.status;
  const char* env = std::getenv("GPT2_CUDA_PLUGIN");
  if (env && *env) {
    std::string path = absolute(env);
    st.searched.push_back(path);
    std::string label = "GPT2_CUDA_PLUGIN=" + std::string(env);
    if (!is_file(path)) {
      st.plugin_path = path;
      st.reason = "CUDA plugin not found: " + label + " is not a file";
      return;
    }
    st.available = load_plugin(path, label, out);
    return;
  }
  st.searched = default_candidates();
  for (const std::string& path : st.searched) {
    if (!is_file(path)) continue;
    st.available = load_plugin(path, path, out);
    return;
  }
  st.reason = "CUDA plugin not installed (no " GPT2_CUDA_PLUGIN_FILE
              " next to the addon or in build-cuda/; it is built where nvcc is found)";
}

Loaded::Loaded() noexcept {
  try {
    load(*this);
  } catch (const std::exception& e) {
    api_ready = false;
    status.available = false;
    try {
      status.reason = std::string("CUDA plugin loader failed: ") + e.what();
    } catch (...) {
    }
  } catch (...) {
    api_ready = false;
    status.available = false;
  }
}

Loaded& loaded() noexcept {
  // Function-local static: built exactly once, other threads wait for it.
  static Loaded instance;
  return instance;
}

}  // namespace

const CudaStatus& cuda_status() noexcept { return loaded().status; }

const CudaPluginApi* cuda_plugin() noexcept {
  Loaded& l = loaded();
  return l.api_ready ? &l.api : nullptr;
}

std::string cuda_self_test(int device) noexcept {
  try {
    Loaded& l = loaded();
    if (!l.api_ready) return "CUDA is not available: " + l.status.reason;
    // One self-test at a time: it uses the device's default stream and synchronises it.
    std::lock_guard<std::mutex> lock(l.self_test_mutex);
    if (l.api.self_test(device) == GPT2_CUDA_OK) return "";
    return plugin_error(l.api, "gpt2_cuda_self_test");
  } catch (...) {
    return "CUDA self-test failed: out of memory";
  }
}

}  // namespace gpt2
