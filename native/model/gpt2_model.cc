#include "model/gpt2_model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/checkpoint.h"
#include "model/pooling.h"

namespace gpt2::model {

struct GPT2Model::Layer {
  float* ln1_gamma = nullptr;
  float* ln1_beta = nullptr;
  BackendWeight* c_attn = nullptr;  // [E, 3E]
  float* c_attn_bias = nullptr;
  BackendWeight* attn_proj = nullptr;  // [E, E]
  float* attn_proj_bias = nullptr;
  float* ln2_gamma = nullptr;
  float* ln2_beta = nullptr;
  BackendWeight* c_fc = nullptr;  // [E, I]
  float* c_fc_bias = nullptr;
  BackendWeight* mlp_proj = nullptr;  // [I, E]
  float* mlp_proj_bias = nullptr;
};

namespace {
std::atomic<int64_t> g_live_models{0};
std::atomic<int64_t> g_live_bytes{0};
}  // namespace

int64_t GPT2Model::live_models() { return g_live_models.load(); }
int64_t GPT2Model::live_bytes() { return g_live_bytes.load(); }

int64_t default_kv_cache_tokens(const GPT2Config& config) { return 4 * config.n_positions; }

namespace {

// splitmix64: a tiny, good-quality generator whose state can be derived from any seed.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// out[i] = mean + std * N(0, 1), Box-Muller; chunks of 4096 values get their own stream,
// so the result does not depend on the thread count.
void fill_normal(float* out, int64_t n, uint64_t seed, float mean, float std) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto fill_chunk = [&](int64_t c, int) {
    uint64_t state = seed ^ (0xD1B54A32D192ED03ull * uint64_t(c + 1));
    const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
    for (int64_t i = begin; i < end; i += 2) {
      const double u1 = (double(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
      const double u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
      const double r = std::sqrt(-2.0 * std::log(u1));
      out[i] = static_cast<float>(mean + std * r * std::cos(2 * M_PI * u2));
      if (i + 1 < end) out[i + 1] = static_cast<float>(mean + std * r * std::sin(2 * M_PI * u2));
    }
  };
  ThreadPool::shared().run(chunks, fill_chunk);
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

TensorReader GPT2Model::random_reader(uint64_t seed, const GPT2Config& config) {
  const float proj_std = 0.02f / std::sqrt(2.0f * float(config.n_layer));
  return [seed, proj_std](const std::string& name, const std::vector<int64_t>& shape, float* out) {
    const uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ hash_name(name);
    const int64_t n = numel(shape);
    const bool is_ln = name.find("ln_") != std::string::npos;
    if (is_ln && ends_with(name, ".weight"))
      fill_normal(out, n, s, 1.0f, 0.02f);
    else if (ends_with(name, "c_proj.weight"))
      fill_normal(out, n, s, 0.0f, proj_std);
    else
      fill_normal(out, n, s, 0.0f, 0.02f);
  };
}

std::unique_ptr<GPT2Model> GPT2Model::load(const std::string& dir, std::unique_ptr<Backend> backend,
                                           const ModelOptions& options) {
  std::unique_ptr<Checkpoint> ckpt = Checkpoint::open(dir);
  ckpt->validate();
  const Checkpoint& ck = *ckpt;
  TensorReader read = [&ck](const std::string& name, const std::vector<int64_t>& shape, float* out) {
    if (name == "lm_head.weight")
      ck.read_f32(ck.lm_head(), out);
    else
      ck.read_f32(ck.tensor(name, std::span<const int64_t>(shape.data(), shape.size())), out);
  };
  auto model = std::make_unique<GPT2Model>(ckpt->config(), std::move(backend), read, options);
  ckpt->release();
  return model;
}

float* GPT2Model::upload_tensor(const TensorReader& read, const std::string& name, const std::vector<int64_t>& shape) {
  const size_t count = size_t(numel(shape));
  std::vector<float> host(count);
  read(name, shape, host.data());
  float* dst = static_cast<float*>(backend_->alloc(count * sizeof(float)));
  buffers_.push_back(dst);
  backend_->upload(dst, host.data(), count * sizeof(float));
  weight_bytes_ += count * sizeof(float);
  return dst;
}

BackendWeight* GPT2Model::pack_tensor(const TensorReader& read, const std::string& name, int64_t K, int64_t N) {
  std::vector<float> host(size_t(K) * size_t(N));
  read(name, {K, N}, host.data());
  BackendWeight* w = backend_->pack_weight(host.data(), K, N, false, options_.weights);
  weight_bytes_ += backend_->weight_bytes(w);
  return w;
}

GPT2Model::GPT2Model(const GPT2Config& config, std::unique_ptr<Backend> backend, const TensorReader& read,
                     const ModelOptions& options)
    : config_(config), options_(options), backend_(std::move(backend)) {
  const int64_t E = config.n_embd, I = config.n_inner, V = config.vocab_size, P = config.n_positions;
  if (config.head_dim() > 256 || config.head_dim() < 1)
    throw_range_error("head dimension " + std::to_string(config.head_dim()) + " is not supported (1 ... 256)");
  if (options.block_size < 1 || options.block_size > 256) throw_range_error("KV block size must be 1 ... 256");
  try {
    {
      // Tied lm_head (logits = h · wteᵀ): one packed copy of wte serves the lm_head GEMM and,
      // where the backend can gather from it, the embedding; otherwise wte stays as it is for
      // embed() and the lm_head is packed from it (a second copy).
      std::vector<float> host(size_t(V) * size_t(E));
      read("wte.weight", {V, E}, host.data());
      if (config.tie_word_embeddings) lm_head_ = backend_->pack_embedding(host.data(), V, E, options_.weights);
      if (lm_head_) {
        weight_bytes_ += backend_->weight_bytes(lm_head_);
      } else {
        wte_ = static_cast<float*>(backend_->alloc(host.size() * sizeof(float)));
        buffers_.push_back(wte_);
        backend_->upload(wte_, host.data(), host.size() * sizeof(float));
        weight_bytes_ += host.size() * sizeof(float);
        if (config.tie_word_embeddings) {
          lm_head_ = backend_->pack_weight(host.data(), E, V, true, options_.weights);
          weight_bytes_ += backend_->weight_bytes(lm_head_);
        }
      }
    }
    wpe_ = upload_tensor(read, "wpe.weight", {P, E});
    layers_.resize(config.n_layer);
    for (int64_t i = 0; i < config.n_layer; i++) {
      const std::string p = "h." + std::to_string(i) + ".";
      Layer& L = layers_[i];
      L.ln1_gamma = upload_tensor(read, p + "ln_1.weight", {E});
      L.ln1_beta = upload_tensor(read, p + "ln_1.bias", {E});
      L.c_attn = pack_tensor(read, p + "attn.c_attn.weight", E, 3 * E);
      L.c_attn_bias = upload_tensor(read, p + "attn.c_attn.bias", {3 * E});
      L.attn_proj = pack_tensor(read, p + "attn.c_proj.weight", E, E);
      L.attn_proj_bias = upload_tensor(read, p + "attn.c_proj.bias", {E});
      L.ln2_gamma = upload_tensor(read, p + "ln_2.weight", {E});
      L.ln2_beta = upload_tensor(read, p + "ln_2.bias", {E});
      L.c_fc = pack_tensor(read, p + "mlp.c_fc.weight", E, I);
      L.c_fc_bias = upload_tensor(read, p + "mlp.c_fc.bias", {I});
      L.mlp_proj = pack_tensor(read, p + "mlp.c_proj.weight", I, E);
      L.mlp_proj_bias = upload_tensor(read, p + "mlp.c_proj.bias", {E});
    }
    ln_f_gamma_ = upload_tensor(read, "ln_f.weight", {E});
    ln_f_beta_ = upload_tensor(read, "ln_f.bias", {E});
    if (!config.tie_word_embeddings) {
      // Untied lm_head: logits = h · Wᵀ with W [V, E], packed as a transposed [E, V].
      std::vector<float> host(size_t(V) * size_t(E));
      read("lm_head.weight", {V, E}, host.data());
      lm_head_ = backend_->pack_weight(host.data(), E, V, true, options_.weights);
      weight_bytes_ += backend_->weight_bytes(lm_head_);
    }
    KvCacheShape kv;
    kv.n_layer = static_cast<int32_t>(config.n_layer);
    kv.n_head = static_cast<int32_t>(config.n_head);
    kv.head_dim = static_cast<int32_t>(config.head_dim());
    kv.block_size = options.block_size;
    const int64_t tokens = options.kv_cache_tokens > 0 ? options.kv_cache_tokens : default_kv_cache_tokens(config);
    kv.num_blocks = static_cast<int32_t>(std::min<int64_t>((tokens + kv.block_size - 1) / kv.block_size, INT32_MAX / 256));
    kv_ = std::make_unique<KvCache>(*backend_, kv);
    counted_bytes_ = static_cast<int64_t>(weight_bytes_ + kv_->bytes());
    g_live_models++;
    g_live_bytes += counted_bytes_;
  } catch (...) {
    free_all();
    throw;
  }
}

void GPT2Model::free_all() {
  if (backend_) backend_->graph_forget(this);
  kv_.reset();
  for (Layer& L : layers_)
    for (BackendWeight* w : {L.c_attn, L.attn_proj, L.c_fc, L.mlp_proj})
      if (w) backend_->free_weight(w);
  layers_.clear();
  if (lm_head_) backend_->free_weight(lm_head_);
  lm_head_ = nullptr;
  for (void* b : buffers_) backend_->free(b);
  buffers_.clear();
  for (auto& s : scratch_) backend_->free(s.first);
  scratch_.clear();
}

GPT2Model::~GPT2Model() {
  free_all();
  g_live_models--;
  g_live_bytes -= counted_bytes_;
}

float* GPT2Model::scratch(size_t slot, size_t floats) {
  if (scratch_.size() <= slot) scratch_.resize(slot + 1, {nullptr, 0});
  auto& s = scratch_[slot];
  if (s.second < floats) {
    if (s.first) backend_->free(s.first);
    s.first = nullptr;
    s.second = 0;
    s.first = static_cast<float*>(backend_->alloc(floats * sizeof(float)));
    s.second = floats;
  }
  return s.first;
}

int32_t GPT2Model::graph_table_width() const {
  const int64_t bs = kv_->shape().block_size;
  return static_cast<int32_t>((config_.n_positions + bs - 1) / bs);
}

const GPT2Model::GraphBuffers& GPT2Model::graph_buffers() {
  if (graph_buffers_.meta) return graph_buffers_;
  const size_t B = kGraphMaxSeqs, E = config_.n_embd, I = config_.n_inner, V = config_.vocab_size;
  auto floats = [&](size_t n) {
    buffers_.push_back(backend_->alloc(n * sizeof(float)));
    return static_cast<float*>(buffers_.back());
  };
  GraphBuffers g;
  // ids, positions, slots, q_start, q_len, kv_len, block_table_start, logit rows + block tables
  g.meta = reinterpret_cast<int32_t*>(floats(B * (8 + size_t(graph_table_width()))));
  g.x = floats(B * E);
  g.a = floats(B * E);
  g.qkv = floats(B * 3 * E);
  g.ctx = floats(B * E);
  g.h = floats(B * I);
  g.picked = floats(B * E);
  g.logits = floats(B * V);
  graph_buffers_ = g;
  return graph_buffers_;
}

void GPT2Model::capture_hidden(std::span<const SequenceInput> inputs, const std::vector<int32_t>& q_start,
                               int32_t index, const float* src, bool normed, std::vector<SequenceOutput>& outputs) {
  const int64_t E = config_.n_embd;
  const bool last_layer = index == config_.n_layer;
  for (size_t s = 0; s < inputs.size(); s++) {
    const SequenceInput& in = inputs[s];
    if (in.hidden.layer != index) continue;
    // The last layer is seen twice: raw (normed false) and after ln_f (normed true).
    if (last_layer && in.hidden.final_norm != normed) continue;
    // Only the rows the pooling reads.
    int64_t first = 0, rows = in.n;
    if (in.hidden.pooling == Pooling::First) rows = 1;
    if (in.hidden.pooling == Pooling::Last) first = in.n - 1, rows = 1;
    const float* at = src + (int64_t(q_start[s]) + first) * E;
    if (in.hidden.final_norm && !normed) {
      float* y = scratch(8, size_t(rows) * E);
      backend_->layernorm(at, E, nullptr, nullptr, rows, E, ln_f_gamma_, ln_f_beta_,
                          static_cast<float>(config_.layer_norm_epsilon), y, E);
      at = y;
    }
    std::vector<float> host(size_t(rows) * E);
    backend_->download(host.data(), at, host.size() * sizeof(float));
    if (in.hidden.pooling == Pooling::Rows) {
      outputs[s].hidden = std::move(host);
    } else {
      outputs[s].hidden.resize(E);
      pool_rows(host.data(), rows, E, in.hidden.pooling == Pooling::Mean ? Pooling::Mean : Pooling::First,
                outputs[s].hidden.data());
    }
  }
}

std::vector<SequenceOutput> GPT2Model::forward(std::span<const SequenceInput> inputs, const ForwardOptions& options) {
  const int64_t E = config_.n_embd, I = config_.n_inner, V = config_.vocab_size;
  const int32_t n_seqs = static_cast<int32_t>(inputs.size());
  if (n_seqs == 0) throw_range_error("forward: no sequences given");

  // ---- validate everything before touching the cache ----
  int64_t T = 0;
  for (int32_t s = 0; s < n_seqs; s++) {
    const SequenceInput& in = inputs[s];
    if (in.n <= 0) throw_range_error("sequence " + std::to_string(s) + " is empty (at least one token id is needed)");
    check_token_ids(in.ids, in.n, V, "sequence " + std::to_string(s) + ", ");
    if (in.hidden.layer < -1 || in.hidden.layer > config_.n_layer)
      throw_range_error("sequence " + std::to_string(s) + ": hidden-state layer " + std::to_string(in.hidden.layer) +
                        " is out of range (0 ... " + std::to_string(config_.n_layer) + ")");
    if (int64_t(in.kv->length) + in.n > config_.n_positions)
      throw_range_error("sequence " + std::to_string(s) + " would be " + std::to_string(int64_t(in.kv->length) + in.n) +
                        " tokens long, more than n_positions (" + std::to_string(config_.n_positions) + ")");
    T += in.n;
  }

  std::lock_guard<std::mutex> lock(forward_mutex_);
  const KvCacheShape& kvs = kv_->shape();

  // A decode step (one new token per sequence, only the last logits asked) replays a graph
  // recorded for this n_seqs: same buffers, block tables padded to a fixed width, and
  // max_kv_len fixed at n_positions (the attention kernel's grid depends on it).
  bool graph_step = n_seqs <= kGraphMaxSeqs && !options.hidden_states && !options.last_hidden_state &&
                    backend_->graphs_enabled();
  for (int32_t s = 0; s < n_seqs && graph_step; s++)
    graph_step = inputs[s].n == 1 && inputs[s].logits == LogitsMode::Last && inputs[s].hidden.layer == -1;
  const int32_t table_width = graph_step ? graph_table_width() : 0;

  // ---- host-side batch layout: ids, positions, slots, block tables ----
  std::vector<int32_t> ids(T), positions(T), slots(T);
  std::vector<int32_t> q_start(n_seqs), q_len(n_seqs), kv_len(n_seqs), bt_start(n_seqs), block_tables;
  std::vector<int32_t> logit_rows;
  int32_t max_q = 0, max_kv = 0;
  {
    int64_t row = 0;
    for (int32_t s = 0; s < n_seqs; s++) {
      const SequenceInput& in = inputs[s];
      kv_->prepare_append(*in.kv, in.n, slots.data() + row);  // may throw (cache full): nothing committed yet
      for (int32_t i = 0; i < in.n; i++) {
        ids[row + i] = in.ids[i];
        positions[row + i] = in.kv->length + i;
      }
      q_start[s] = static_cast<int32_t>(row);
      q_len[s] = in.n;
      kv_len[s] = in.kv->length + in.n;
      bt_start[s] = static_cast<int32_t>(block_tables.size());
      block_tables.insert(block_tables.end(), in.kv->blocks.begin(), in.kv->blocks.end());
      if (graph_step) block_tables.resize(size_t(s + 1) * table_width, 0);  // past kv_len: never read
      if (in.logits == LogitsMode::Last) logit_rows.push_back(static_cast<int32_t>(row + in.n - 1));
      if (in.logits == LogitsMode::All)
        for (int32_t i = 0; i < in.n; i++) logit_rows.push_back(static_cast<int32_t>(row + i));
      max_q = std::max(max_q, in.n);
      max_kv = std::max(max_kv, kv_len[s]);
      row += in.n;
    }
  }
  // The int32 metadata goes to backend memory in one buffer.
  std::vector<int32_t> meta;
  auto put = [&](const std::vector<int32_t>& v) {
    const size_t at = meta.size();
    meta.insert(meta.end(), v.begin(), v.end());
    return at;
  };
  const size_t o_ids = put(ids), o_pos = put(positions), o_slots = put(slots), o_qs = put(q_start), o_ql = put(q_len),
               o_kl = put(kv_len), o_bs = put(bt_start), o_bt = put(block_tables), o_lr = put(logit_rows);
  int32_t* dmeta = graph_step ? graph_buffers().meta : reinterpret_cast<int32_t*>(scratch(0, meta.size()));
  backend_->upload(dmeta, meta.data(), meta.size() * sizeof(int32_t));

  AttentionBatch batch;
  batch.n_seqs = n_seqs;
  batch.max_q_len = max_q;
  batch.max_kv_len = graph_step ? static_cast<int32_t>(config_.n_positions) : max_kv;
  batch.q_start = dmeta + o_qs;
  batch.q_len = dmeta + o_ql;
  batch.kv_len = dmeta + o_kl;
  batch.block_table_start = dmeta + o_bs;
  batch.block_tables = dmeta + o_bt;
  AttentionShape shape;
  shape.n_head = kvs.n_head;
  shape.head_dim = kvs.head_dim;
  shape.block_size = kvs.block_size;

  const GraphBuffers g = graph_step ? graph_buffers() : GraphBuffers{};
  // Buffers whose lives do not overlap share memory (6 floats per token and n_embd instead of
  // 10): `a` is dead once c_attn has read it, before attention writes ctx, and ctx once
  // attn_proj has read it, before ln_2 writes `a`; qkv is dead once attention has run (keys
  // and values are in the cache), before c_fc writes h.
  float* x = graph_step ? g.x : scratch(1, size_t(T) * E);                             // residual stream
  float* a = graph_step ? g.a : scratch(2, size_t(T) * E);                             // LayerNorm output
  float* qkv = graph_step ? g.qkv : scratch(3, size_t(T) * size_t(std::max(3 * E, I)));  // c_attn output
  float* ctx = graph_step ? g.ctx : a;  // attention output (heads merged)
  float* h = graph_step ? g.h : qkv;    // MLP hidden
  const int64_t R = static_cast<int64_t>(logit_rows.size());
  float* picked = R == 0 ? nullptr : graph_step ? g.picked : scratch(6, size_t(R) * E);
  float* logits = R == 0 ? nullptr : graph_step ? g.logits : scratch(7, size_t(R) * V);
  // Replayed: every op below up to the logits download is already enqueued.
  const bool replayed = graph_step && backend_->graph_launch(this, n_seqs);
  const bool recording = graph_step && !replayed;

  std::vector<SequenceOutput> outputs(n_seqs);
  auto capture = [&](const float* src) {  // one hidden_states entry, split per sequence
    for (int32_t s = 0; s < n_seqs; s++) {
      std::vector<float> rows(static_cast<size_t>(q_len[s]) * E);
      backend_->download(rows.data(), src + int64_t(q_start[s]) * E, rows.size() * sizeof(float));
      outputs[s].hidden_states.push_back(std::move(rows));
    }
  };

  if (recording) backend_->graph_begin(this, n_seqs);
  try {
    if (!replayed) {
      if (wte_)
        backend_->embed(dmeta + o_ids, dmeta + o_pos, T, wte_, wpe_, E, x);
      else
        backend_->embed_packed(dmeta + o_ids, dmeta + o_pos, T, lm_head_, wpe_, E, x);
      if (options.hidden_states) capture(x);
      capture_hidden(inputs, q_start, 0, x, false, outputs);

      const float eps = static_cast<float>(config_.layer_norm_epsilon);
      for (int32_t l = 0; l < static_cast<int32_t>(layers_.size()); l++) {
        const Layer& L = layers_[l];
        float scale = config_.scale_attn_weights ? 1.0f / std::sqrt(float(kvs.head_dim)) : 1.0f;
        if (config_.scale_attn_by_inverse_layer_idx) scale /= float(l + 1);
        shape.scale = scale;

        backend_->layernorm(x, E, nullptr, nullptr, T, E, L.ln1_gamma, L.ln1_beta, eps, a, E);
        backend_->matmul(a, T, E, L.c_attn, qkv, 3 * E, L.c_attn_bias, ActivationKind::None, nullptr, 0);
        backend_->kv_append(qkv + E, 3 * E, qkv + 2 * E, 3 * E, dmeta + o_slots, T, shape, kv_->k_pool(l), kv_->v_pool(l));
        backend_->attention(qkv, 3 * E, batch, shape, kv_->k_pool(l), kv_->v_pool(l), ctx, E);
        backend_->matmul(ctx, T, E, L.attn_proj, x, E, L.attn_proj_bias, ActivationKind::None, x, E);
        backend_->layernorm(x, E, nullptr, nullptr, T, E, L.ln2_gamma, L.ln2_beta, eps, a, E);
        backend_->matmul(a, T, E, L.c_fc, h, I, L.c_fc_bias, static_cast<ActivationKind>(config_.activation), nullptr, 0);
        backend_->matmul(h, T, I, L.mlp_proj, x, E, L.mlp_proj_bias, ActivationKind::None, x, E);
        // transformers' hidden_states[l + 1] is this block's output, except the last one,
        // which it replaces with ln_f's output (captured below).
        if (options.hidden_states && l + 1 < static_cast<int32_t>(layers_.size())) capture(x);
        capture_hidden(inputs, q_start, l + 1, x, false, outputs);
      }

      backend_->layernorm(x, E, nullptr, nullptr, T, E, ln_f_gamma_, ln_f_beta_, eps, a, E);
      if (options.hidden_states) capture(a);
      capture_hidden(inputs, q_start, static_cast<int32_t>(layers_.size()), a, true, outputs);
      if (options.last_hidden_state) {
        for (int32_t s = 0; s < n_seqs; s++) {
          outputs[s].last_hidden_state.resize(size_t(q_len[s]) * E);
          backend_->download(outputs[s].last_hidden_state.data(), a + int64_t(q_start[s]) * E,
                             outputs[s].last_hidden_state.size() * sizeof(float));
        }
      }

      if (!logit_rows.empty()) {
        backend_->gather_rows(a, E, dmeta + o_lr, R, E, picked);
        backend_->matmul(picked, R, E, lm_head_, logits, V, nullptr, ActivationKind::None, nullptr, 0);
      }
    }
  } catch (...) {
    if (recording) {
      try {
        backend_->graph_end(this, n_seqs, false);
      } catch (...) {  // the op's error is the one to report
      }
    }
    throw;
  }
  if (recording) backend_->graph_end(this, n_seqs, true);

  if (!logit_rows.empty()) {
    int64_t r = 0;
    for (int32_t s = 0; s < n_seqs; s++) {
      const int64_t rows = inputs[s].logits == LogitsMode::Last ? 1 : inputs[s].logits == LogitsMode::All ? q_len[s] : 0;
      if (rows == 0) continue;
      outputs[s].logits.resize(size_t(rows) * V);
      backend_->download(outputs[s].logits.data(), logits + r * V, outputs[s].logits.size() * sizeof(float));
      r += rows;
    }
  }

  // Success: the new positions are now part of each sequence.
  for (int32_t s = 0; s < n_seqs; s++) inputs[s].kv->length += inputs[s].n;
  return outputs;
}

}  // namespace gpt2::model
