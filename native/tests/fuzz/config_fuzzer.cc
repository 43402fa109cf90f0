// libFuzzer target: config.json text. parse_config either throws gpt2::Error or returns
// a config within every bound the engine sizes buffers from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "model/config.h"

using namespace gpt2::model;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    GPT2Config c = parse_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    if (c.n_embd < 1 || c.n_embd > kMaxEmbd || c.n_head < 1 || c.n_embd % c.n_head != 0 || c.n_layer < 1 ||
        c.n_layer > kMaxLayers || c.vocab_size < 1 || c.vocab_size > kMaxVocabSize || c.n_positions < 1 ||
        c.n_positions > kMaxPositions || c.n_inner < 1 || c.n_inner > kMaxInner ||
        parameter_count(c) > kMaxParameters || c.eos_token_id >= c.vocab_size || c.bos_token_id >= c.vocab_size)
      std::abort();
    GPT2Config back = parse_config(config_to_json(c), "round trip");
    if (back.n_embd != c.n_embd || back.n_inner != c.n_inner) std::abort();
  } catch (const gpt2::Error&) {
  }
  return 0;
}
