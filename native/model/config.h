// GPT-2 hyper-parameters, read from a Hugging Face config.json (what GPT2Config.to_json_file
// writes) or built from a named preset for random-weight models. Every number is validated
// (positive, divisible, bounded) before anything is sized from it, so a hostile config can
// neither crash us nor make us allocate absurd amounts of memory.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json.h"
#include "cpu/activation.h"

namespace gpt2::model {

struct GPT2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_inner = 3072;  // resolved: config.json's null/absent n_inner means 4 * n_embd
  cpu::Activation activation = cpu::Activation::GeluNew;
  std::string activation_name = "gelu_new";  // as written in config.json (activation_function)
  double layer_norm_epsilon = 1e-5;
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  bool reorder_and_upcast_attn = false;  // only changes fp16 training numerics; fp32 compute is the same
  bool tie_word_embeddings = true;
  int64_t bos_token_id = 50256;  // -1 when absent/null
  int64_t eos_token_id = 50256;  // -1 when absent/null
  std::string model_type = "gpt2";

  int64_t head_dim() const { return n_embd / n_head; }
};

// Upper bounds, far above every published GPT-2 (gpt2-xl: E=1600, L=48, V=50257, P=1024)
// but low enough that the sizes derived from them stay reasonable.
inline constexpr int64_t kMaxVocabSize = int64_t{1} << 22;     // 4,194,304
inline constexpr int64_t kMaxPositions = int64_t{1} << 20;     // 1,048,576
inline constexpr int64_t kMaxEmbd = int64_t{1} << 16;          // 65,536
inline constexpr int64_t kMaxInner = int64_t{1} << 18;         // 262,144
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxParameters = int64_t{1} << 35;    // ~34 G parameters in total

// Parses config.json text. `source` names the file in errors ("/x/config.json: n_head (12)
// must divide n_embd (770)"); all errors are gpt2::Error with code ERR_GPT2_FILE_FORMAT.
// Fields absent from the file take transformers' GPT2Config defaults (= gpt2 small), as
// from_pretrained does. Accepted keys: the GPT-2 names above, `activation_function`, the
// legacy `n_ctx` (used when n_positions is absent) and the attribute_map aliases
// hidden_size / max_position_embeddings / num_attention_heads / num_hidden_layers.
// Other keys (dropouts, summary_*, architectures, ...) are ignored. model_type, when
// present, must be "gpt2".
GPT2Config parse_config(std::string_view json_text, const std::string& source);

// "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2" with the exact shapes of
// the Hugging Face checkpoints (an "openai-community/" prefix is accepted). Unknown name:
// TypeError (ERR_GPT2_INVALID_ARG) listing the known ones.
GPT2Config preset_config(std::string_view name);

// For Model.random(Partial<GPT2Config>): `overrides` is a JSON object using the same keys
// as config.json (see parse_config) applied on top of `base` (usually preset_config("gpt2")).
// Unlike config.json, unknown keys are rejected (a typo should not silently give a
// gpt2-small model). Errors are TypeError/RangeError with code ERR_GPT2_INVALID_ARG /
// ERR_GPT2_OUT_OF_RANGE, prefixed with `source` (e.g. "Model.random config").
GPT2Config config_with_overrides(const GPT2Config& base, const JsonValue& overrides, const std::string& source);

// Re-checks every invariant (what parse_config and config_with_overrides enforce);
// throws a format error prefixed with `source`. Useful for configs built in code.
void validate_config(const GPT2Config& config, const std::string& source);

// Throws RangeError (ERR_GPT2_OUT_OF_RANGE) at the first of ids[0, n) outside
// [0, vocab_size): "<where>position i: token id x is out of range (vocab_size V)".
void check_token_ids(const int32_t* ids, int64_t n, int64_t vocab_size, const std::string& where);

// Total number of parameters of the model the config describes (wte + wpe + blocks + ln_f,
// plus lm_head when untied). Overflow-safe for validated configs.
int64_t parameter_count(const GPT2Config& config);

// What Model.config returns: a JSON object with Hugging Face field names (model_type,
// vocab_size, n_positions, n_embd, n_layer, n_head, n_inner (resolved number),
// activation_function, layer_norm_epsilon, scale_attn_weights,
// scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn, tie_word_embeddings,
// bos_token_id, eos_token_id (null when -1)). parse_config(config_to_json(c)) == c.
std::string config_to_json(const GPT2Config& config);

}  // namespace gpt2::model
