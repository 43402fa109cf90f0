// The GPT-2 forward pass, written once against the Backend interface (core/backend.h).
//
// A forward step takes a ragged batch: several sequences, each with its new token ids and
// its KV-cache state (KvSequence). Their tokens are packed into one [T, E] activation
// matrix (no padding), every GEMM runs once over all T rows, and attention reads each
// sequence's own blocks of the paged cache. The same call serves a stateless forward (a
// fresh KvSequence per input, released afterwards), a prefill chunk and a decode step.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/kv_cache.h"
#include "model/config.h"

namespace gpt2::model {

enum class LogitsMode { None, Last, All };

// How a captured hidden state comes back: all n rows [n, E], or pooled to one [E] row.
enum class Pooling { Rows, Mean, Last, First };

// One hidden state of one input (embeddings), chosen per input so that embedding and
// generation inputs can share a step. layer is transformers' hidden_states index:
// 0 = token + position embeddings, l = raw output of block l (1 ... n_layer);
// final_norm applies ln_f to it (layer n_layer with final_norm = last_hidden_state).
struct HiddenCapture {
  int32_t layer = -1;  // -1: nothing captured
  bool final_norm = false;
  Pooling pooling = Pooling::Rows;
};

struct SequenceInput {
  const int32_t* ids = nullptr;  // n new token ids (host memory)
  int32_t n = 0;
  KvSequence* kv = nullptr;      // its cache state; length grows by n on success
  LogitsMode logits = LogitsMode::Last;
  HiddenCapture hidden;          // SequenceOutput::hidden
};

struct ForwardOptions {
  bool last_hidden_state = true;  // after ln_f, [n, E] per sequence
  bool hidden_states = false;     // transformers' hidden_states: n_layer + 1 entries of [n, E]
};

struct SequenceOutput {
  std::vector<float> logits;  // [rows, vocab]: 1 row for Last, n for All, empty for None
  std::vector<float> last_hidden_state;
  std::vector<std::vector<float>> hidden_states;
  std::vector<float> hidden;  // SequenceInput::hidden: [n, E] (Rows) or [E] (pooled)
};

// Fills `out` (product of shape floats) with the float32 data of a canonical tensor name
// ("wte.weight", "h.3.mlp.c_fc.bias", ..., "lm_head.weight" when untied).
using TensorReader = std::function<void(const std::string& name, const std::vector<int64_t>& shape, float* out)>;

struct ModelOptions {
  WeightFormat weights = WeightFormat::F32;
  int64_t kv_cache_tokens = 0;  // 0 = default_kv_cache_tokens(config)
  int32_t block_size = 16;
};

// 4 full-length sequences (4 * n_positions): 4,096 tokens = 302 MB of float32 K+V for
// gpt2 (12 layers x 768), 2.5 GB for gpt2-xl. The pools are reserved up front but pages
// are committed on first use, so an idle cache costs address space, not memory.
int64_t default_kv_cache_tokens(const GPT2Config& config);

class GPT2Model {
 public:
  // Reads every tensor through `read` (one at a time: peak memory is the packed model plus
  // one tensor), packs the GEMM weights, and allocates the KV cache.
  GPT2Model(const GPT2Config& config, std::unique_ptr<Backend> backend, const TensorReader& read,
            const ModelOptions& options);
  ~GPT2Model();
  GPT2Model(const GPT2Model&) = delete;
  GPT2Model& operator=(const GPT2Model&) = delete;

  // Deterministic random weights for any shape (benchmarks, CPU/GPU parity): N(0, 0.02)
  // matrices (attention/MLP output projections 0.02/sqrt(2 n_layer), as transformers
  // initialises GPT-2), biases N(0, 0.02), LayerNorm gains 1 + N(0, 0.02), biases N(0, 0.02).
  // Each tensor's values depend only on (seed, tensor name).
  static TensorReader random_reader(uint64_t seed, const GPT2Config& config);

  // A Hugging Face folder (config.json + model.safetensors or shards) through
  // model/checkpoint.h: validated, converted to float32, packed; the files are unmapped
  // before this returns.
  static std::unique_ptr<GPT2Model> load(const std::string& dir, std::unique_ptr<Backend> backend,
                                         const ModelOptions& options);

  // Models alive in this process and the bytes they hold (weights + KV cache): for
  // diagnostics and the tests that check dispose() and garbage collection free memory.
  static int64_t live_models();
  static int64_t live_bytes();

  const GPT2Config& config() const { return config_; }
  Backend& backend() { return *backend_; }
  KvCache& kv_cache() { return *kv_; }
  size_t weight_bytes() const { return weight_bytes_; }
  WeightFormat weight_format() const { return options_.weights; }

  // One forward step over a ragged batch. Validates every input first (ids < vocab_size,
  // n >= 1, kv length + n <= n_positions: RangeError naming the sequence and position);
  // KV-cache exhaustion is a RangeError with code ERR_GPT2_KV_CACHE_FULL. Serialised:
  // concurrent callers run one after another. No sequence may appear twice.
  std::vector<SequenceOutput> forward(std::span<const SequenceInput> inputs, const ForwardOptions& options);

 private:
  struct Layer;
  struct Scratch;
  float* upload_tensor(const TensorReader& read, const std::string& name, const std::vector<int64_t>& shape);
  BackendWeight* pack_tensor(const TensorReader& read, const std::string& name, int64_t K, int64_t N);
  float* scratch(size_t slot, size_t floats);
  // Fills outputs[s].hidden for every input capturing hidden-state `index` from `src`
  // ([T, E] rows of the step); `normed`: src is already after ln_f.
  void capture_hidden(std::span<const SequenceInput> inputs, const std::vector<int32_t>& q_start, int32_t index,
                      const float* src, bool normed, std::vector<SequenceOutput>& outputs);
  void free_all();

  GPT2Config config_;
  ModelOptions options_;
  std::unique_ptr<Backend> backend_;
  // [V, E] for embed(); nullptr when the tied lm_head_ (Backend::pack_embedding) serves the gather too.
  float* wte_ = nullptr;
  float* wpe_ = nullptr;
  float* ln_f_gamma_ = nullptr;
  float* ln_f_beta_ = nullptr;
  BackendWeight* lm_head_ = nullptr;  // [E, V] packed: wte when tied, else lm_head.weight
  std::vector<Layer> layers_;
  std::vector<void*> buffers_;  // every alloc() above, freed in the destructor
  size_t weight_bytes_ = 0;
  std::unique_ptr<KvCache> kv_;
  int64_t counted_bytes_ = 0;

  std::mutex forward_mutex_;
  std::vector<std::pair<float*, size_t>> scratch_;  // grow-only work buffers

  // Decode steps on a backend with graphs (CUDA): fixed buffers for up to kGraphMaxSeqs
  // sequences, so that a step recorded once per n_seqs replays with the same pointers.
  static constexpr int32_t kGraphMaxSeqs = 32;
  struct GraphBuffers {
    int32_t* meta = nullptr;
    float *x = nullptr, *a = nullptr, *qkv = nullptr, *ctx = nullptr, *h = nullptr, *picked = nullptr,
          *logits = nullptr;
  };
  GraphBuffers graph_buffers_;
  // Blocks per sequence in a graph step's block table: enough for n_positions.
  int32_t graph_table_width() const;
  const GraphBuffers& graph_buffers();
};

}  // namespace gpt2::model
