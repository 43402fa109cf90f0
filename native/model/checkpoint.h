// A Hugging Face GPT-2 model folder: config.json plus model.safetensors, or a sharded
// checkpoint (model.safetensors.index.json whose weight_map names the shard of each
// tensor). Every layout in DESIGN.md "Files" is accepted:
//   - bare keys ("h.0.attn.c_attn.weight", "wte.weight"), as openai-community/gpt2;
//   - keys prefixed "transformer." (what save_pretrained writes), with or without an
//     explicit "lm_head.weight";
//   - old checkpoints with the causal-mask buffers h.N.attn.bias / h.N.attn.masked_bias
//     (ignored: not listed, whatever their dtype).
// Tensors are looked up by canonical (bare) name; the "transformer." prefix is stripped.
// Storage may be F32, F16 or BF16; read_f32 converts exactly.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace gpt2::model {

// The tensors a GPT-2 model needs and their shapes under `config` (canonical names,
// Conv1D [in, out] layout), in a fixed order: wte, wpe, h.0.* ... h.{L-1}.*, ln_f.*.
// lm_head.weight is not in the list (see Checkpoint::lm_head).
std::vector<std::pair<std::string, std::vector<int64_t>>> gpt2_tensor_shapes(const GPT2Config& config);

// True for the buffers transformers ignores: h.N.attn.bias, h.N.attn.masked_bias
// (canonical names).
bool is_ignored_buffer(std::string_view canonical_name);

class Checkpoint {
 public:
  // Reads <dir>/config.json and the weights. Errors: ERR_GPT2_FILE_IO when the folder or
  // a file cannot be opened/read (naming it), ERR_GPT2_FILE_FORMAT for malformed content.
  // Only the files are validated here; tensor()/validate() check names against the config.
  static std::unique_ptr<Checkpoint> open(const std::string& dir);
  ~Checkpoint();

  const GPT2Config& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  // Files holding the weights (one, or the shards in weight_map order of first use).
  std::vector<std::string> files() const;
  // Canonical names of every stored tensor except the ignored buffers, sorted.
  std::vector<std::string> names() const;

  bool has(std::string_view canonical_name) const;
  // The tensor `canonical_name`, which must exist, have a weight dtype (F32/F16/BF16) and
  // exactly `expected_shape`. Errors (ERR_GPT2_FILE_FORMAT) name the tensor, the file and
  // the mismatch, e.g. "/m/model.safetensors: tensor 'h.0.attn.c_attn.weight' has shape
  // [64, 190], but config.json (n_embd 64) needs [64, 192]".
  const TensorView& tensor(std::string_view canonical_name, std::span<const int64_t> expected_shape) const;
  const TensorView& tensor(std::string_view canonical_name, std::initializer_list<int64_t> expected_shape) const {
    return tensor(canonical_name, std::span<const int64_t>(expected_shape.begin(), expected_shape.size()));
  }
  // The output projection [vocab_size, n_embd]: lm_head.weight when the config unties the
  // embeddings (required then), wte.weight when tied (a stored lm_head.weight is then
  // ignored, as transformers ties it to wte; its shape is still checked).
  const TensorView& lm_head() const;
  // True when lm_head() is a tensor distinct from wte.weight.
  bool has_separate_lm_head() const { return !config_.tie_word_embeddings; }
  // Checks every tensor of gpt2_tensor_shapes(config()) and lm_head(): present, weight
  // dtype, right shape. Throws the first problem found.
  void validate() const;

  // Converts to float32 (exact for F16/BF16). `out` holds view.numel() floats.
  void read_f32(const TensorView& view, float* out) const;
  // Converts to bfloat16 bits (round to nearest even from F32/F16; BF16 copied).
  void read_bf16(const TensorView& view, uint16_t* out) const;

  // vocab.json + merges.txt, or tokenizer.json, present in dir().
  bool has_tokenizer_files() const;
  // Unmaps every file (after the weights are packed). tensor() etc. throw afterwards.
  void release();
  bool released() const { return released_; }

 private:
  Checkpoint() = default;
  void add_file_tensors(SafetensorsFile& file, const std::vector<std::string>* only);
  void check_not_released() const;
  std::string config_note(std::string_view canonical_name) const;

  std::string dir_;
  std::string config_path_;
  GPT2Config config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorView*> by_name_;  // canonical name -> view
  bool released_ = false;
};

}  // namespace gpt2::model
