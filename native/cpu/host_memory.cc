#include "cpu/host_memory.h"

#include <cstdlib>
#include <string>

#include <sys/mman.h>

#include "core/error.h"

namespace gpt2::cpu {

// Each block carries a 64-byte header with its size and origin.
namespace {
constexpr size_t kHeader = 64;
constexpr size_t kMapThreshold = size_t(1) << 20;
struct AllocHeader {
  size_t total;
  bool mapped;
};
}  // namespace

void* host_alloc(size_t bytes) {
  const size_t total = kHeader + (bytes + 63) / 64 * 64;
  void* base = nullptr;
  bool mapped = false;
  if (total >= kMapThreshold) {
    base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) base = nullptr;
    mapped = true;
  } else {
    base = std::aligned_alloc(64, total);
  }
  if (!base) throw Error(ErrorKind::Error, code::kOutOfMemory, "out of memory allocating " + std::to_string(bytes) + " bytes");
  *static_cast<AllocHeader*>(base) = {total, mapped};
  return static_cast<char*>(base) + kHeader;
}

void host_free(void* ptr) {
  if (!ptr) return;
  void* base = static_cast<char*>(ptr) - kHeader;
  const AllocHeader h = *static_cast<AllocHeader*>(base);
  if (h.mapped)
    munmap(base, h.total);
  else
    std::free(base);
}

}  // namespace gpt2::cpu
