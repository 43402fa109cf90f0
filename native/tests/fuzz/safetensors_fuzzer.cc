// libFuzzer target: a safetensors file. Property as in loader_fuzz_test.cc: parsing
// either throws gpt2::Error or yields in-bounds, size-consistent, non-overlapping
// views whose weights convert to float32. Build and run: node scripts/fuzz-loader.mjs
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/safetensors.h"

using namespace gpt2::model;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = SafetensorsFile::from_bytes(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    const uint8_t* lo = f->bytes() + f->data_offset();
    const uint8_t* hi = f->bytes() + f->file_size();
    std::vector<float> scratch;
    for (const TensorView& t : f->tensors()) {
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      if (t.nbytes && (p < lo || t.nbytes > static_cast<size_t>(hi - p))) std::abort();
      if (static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype) != t.nbytes) std::abort();
      if (dtype_is_weight(t.dtype) && t.numel() <= (1 << 22)) {
        scratch.resize(static_cast<size_t>(t.numel()));
        convert_to_f32(t, scratch.data());
      }
    }
  } catch (const gpt2::Error&) {
  }
  return 0;
}
