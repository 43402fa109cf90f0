// The engine end to end, below the bindings: paged KV-cache bookkeeping (fork shares
// blocks, copy-on-write of the partial last block, truncate, full cache), and the GPT-2
// forward pass on the fixtures' tiny model against the Hugging Face goldens, including
// the KV cache contents after a prefill chunk (present_key/present_value, which the
// public API cannot show).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "core/kv_cache.h"
#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "model/gpt2_model.h"
#include "model/safetensors.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::model;

namespace {

std::string fixtures() {
  const char* root = std::getenv("GPT2_ROOT");
  return std::string(root ? root : ".") + "/../shared/fixtures";
}

std::unique_ptr<Backend> cpu_backend() { return std::make_unique<cpu::CpuBackend>(ThreadPool::shared(2), 2); }

std::unique_ptr<GPT2Model> load_tiny(int64_t kv_tokens = 0, int32_t block_size = 16) {
  ModelOptions o;
  o.kv_cache_tokens = kv_tokens;
  o.block_size = block_size;
  return GPT2Model::load(fixtures() + "/models/tiny", cpu_backend(), o);
}

std::vector<float> golden(const std::string& key) {
  static auto file = SafetensorsFile::open(fixtures() + "/goldens/tiny.safetensors");
  const TensorView* t = file->find(key);
  if (!t) throw std::runtime_error("no golden " + key);
  std::vector<float> out(t->numel());
  std::memcpy(out.data(), t->data, t->nbytes);
  return out;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

const std::vector<int32_t> kCode = {4299, 12900, 7, 77, 2599, 198, 220, 220, 220, 1441, 299, 611, 299, 1279, 362,
                                    2073, 12900, 7,  77,  532,  352, 8,   1343, 12900, 7, 77, 532, 362, 8, 198};

std::vector<float> run(GPT2Model& m, KvSequence& kv, const std::vector<int32_t>& ids, LogitsMode mode) {
  SequenceInput in;
  in.ids = ids.data();
  in.n = static_cast<int32_t>(ids.size());
  in.kv = &kv;
  in.logits = mode;
  return m.forward(std::span<const SequenceInput>(&in, 1), ForwardOptions{})[0].logits;
}

}  // namespace

TEST(kv_cache_fork_copy_on_write_truncate) {
  cpu::CpuBackend backend(ThreadPool::shared(2), 2);
  KvCacheShape s;
  s.n_layer = 2;
  s.n_head = 1;
  s.head_dim = 2;
  s.block_size = 4;
  s.num_blocks = 6;
  KvCache cache(backend, s);
  KvSequence a;
  std::vector<int32_t> slots(16);
  cache.prepare_append(a, 6, slots.data());  // 2 blocks
  a.length = 6;
  CHECK(a.blocks.size() == 2 && cache.free_blocks() == 4);
  CHECK(slots[0] == a.blocks[0] * 4 && slots[5] == a.blocks[1] * 4 + 1);
  // Mark block 1 of layer 1's K so the copy can be seen.
  cache.k_pool(1)[a.blocks[1] * s.block_floats() + 1] = 42.0f;
  KvSequence b;
  cache.fork(a, b);
  CHECK(b.blocks == a.blocks && b.length == 6 && cache.free_blocks() == 4);
  cache.prepare_append(b, 1, slots.data());  // writes into the shared partial block: copied
  b.length = 7;
  CHECK(b.blocks[0] == a.blocks[0] && b.blocks[1] != a.blocks[1] && cache.free_blocks() == 3);
  CHECK(cache.k_pool(1)[b.blocks[1] * s.block_floats() + 1] == 42.0f);
  CHECK(slots[0] == b.blocks[1] * 4 + 2);
  cache.prepare_append(a, 2, slots.data());  // a's block 1 now has one owner: written in place
  a.length = 8;
  CHECK(cache.free_blocks() == 3);
  cache.truncate(a, 3);  // keeps block 0, which b shares
  CHECK(a.blocks.size() == 1 && a.length == 3 && cache.free_blocks() == 4);
  cache.prepare_append(a, 1, slots.data());  // shared block 0 is written: copied
  a.length = 4;
  CHECK(a.blocks[0] != b.blocks[0] && cache.free_blocks() == 3);
  // Full: 3 free blocks, 20 tokens need 5 more. Nothing changes.
  const auto before = a.blocks;
  bool threw = false;
  try {
    cache.prepare_append(a, 20, slots.data());
  } catch (const Error& e) {
    threw = e.code() == code::kKvCacheFull && e.kind() == ErrorKind::RangeError;
  }
  CHECK(threw && a.blocks == before && cache.free_blocks() == 3);
  cache.release(a);
  cache.release(b);
  CHECK(cache.free_blocks() == 6);
}

TEST(tiny_forward_matches_goldens) {
  auto m = load_tiny();
  const std::vector<int32_t> ids = {15496, 995};
  KvSequence kv;
  SequenceInput in{ids.data(), 2, &kv, LogitsMode::All};
  ForwardOptions fo;
  fo.hidden_states = true;
  auto out = m->forward(std::span<const SequenceInput>(&in, 1), fo);
  const auto logits = golden("tiny.forward.hello.0.logits_full");
  CHECK(out[0].logits.size() == logits.size());
  const double d = max_abs_diff(out[0].logits.data(), logits.data(), logits.size());
  CHECK_MSG(d < 1e-4, "logits differ by " + std::to_string(d));
  const auto hs = golden("tiny.forward.hello.0.hidden_states");
  CHECK(out[0].hidden_states.size() == 3);
  for (size_t i = 0; i < 3; i++) {
    const double dh = max_abs_diff(out[0].hidden_states[i].data(), hs.data() + i * 2 * 64, 2 * 64);
    CHECK_MSG(dh < 1e-4, "hidden_states[" + std::to_string(i) + "] differs by " + std::to_string(dh));
  }
  m->kv_cache().release(kv);
}

TEST(tiny_incremental_chunks_and_present_kv) {
  for (int32_t bs : {16, 5}) {  // 5: chunks straddle blocks
    auto m = load_tiny(0, bs);
    KvSequence kv;
    std::vector<float> strided;
    size_t at = 0;
    for (int32_t len : {17, 1, 12}) {
      std::vector<int32_t> chunk(kCode.begin() + at, kCode.begin() + at + len);
      auto logits = run(*m, kv, chunk, LogitsMode::All);
      for (int32_t r = 0; r < len; r++)
        for (int64_t c = 0; c < 50257; c += 97) strided.push_back(logits[r * 50257 + c]);
      if (at == 0) {
        // present_key.layer<l>: [n_head 4, 17, head_dim 16]
        for (int l = 0; l < 2; l++)
          for (const char* kind : {"key", "value"}) {
            const auto g = golden("tiny.incremental.code.8.after_chunk0.layer" + std::to_string(l) + "." + kind);
            const float* pool = std::string(kind) == "key" ? m->kv_cache().k_pool(l) : m->kv_cache().v_pool(l);
            double d = 0;
            for (int h = 0; h < 4; h++)
              for (int t = 0; t < 17; t++)
                for (int e = 0; e < 16; e++) {
                  const float got = pool[((int64_t(kv.blocks[t / bs]) * 4 + h) * bs + t % bs) * 16 + e];
                  d = std::max(d, std::fabs(double(got) - g[(h * 17 + t) * 16 + e]));
                }
            CHECK_MSG(d < 1e-4, std::string("present ") + kind + " differs by " + std::to_string(d));
          }
      }
      at += len;
    }
    const auto g = golden("tiny.incremental.code.8.incremental.logits_strided");
    CHECK(g.size() == strided.size());
    const double d = max_abs_diff(strided.data(), g.data(), g.size());
    CHECK_MSG(d < 1e-4, "incremental logits differ by " + std::to_string(d));
    CHECK(kv.length == 30);
  }
}

TEST(ragged_batch_equals_individual_runs) {
  auto m = load_tiny();
  const std::vector<int32_t> a(kCode.begin(), kCode.begin() + 13), b = {15496, 995}, c(kCode.begin() + 3, kCode.end());
  std::vector<std::vector<float>> single;
  for (const auto* ids : {&a, &b, &c}) {
    KvSequence kv;
    single.push_back(run(*m, kv, *ids, LogitsMode::All));
    m->kv_cache().release(kv);
  }
  KvSequence ka, kb, kc;
  SequenceInput in[3] = {{a.data(), 13, &ka, LogitsMode::All}, {b.data(), 2, &kb, LogitsMode::All},
                         {c.data(), static_cast<int32_t>(c.size()), &kc, LogitsMode::All}};
  auto out = m->forward(std::span<const SequenceInput>(in, 3), ForwardOptions{});
  for (int s = 0; s < 3; s++) {
    CHECK(out[s].logits.size() == single[s].size());
    CHECK(max_abs_diff(out[s].logits.data(), single[s].data(), single[s].size()) < 1e-5);
  }
}

TEST(forward_rejects_bad_input_without_side_effects) {
  auto m = load_tiny(64);
  KvSequence kv;
  const int32_t bad[2] = {5, 50257};
  SequenceInput in{bad, 2, &kv, LogitsMode::Last};
  bool range = false;
  try {
    m->forward(std::span<const SequenceInput>(&in, 1), ForwardOptions{});
  } catch (const Error& e) {
    range = e.kind() == ErrorKind::RangeError && std::string(e.what()).find("position 1") != std::string::npos;
  }
  CHECK(range && kv.blocks.empty() && kv.length == 0);
  std::vector<int32_t> long_ids(129, 1);
  SequenceInput in2{long_ids.data(), 129, &kv, LogitsMode::Last};
  CHECK_THROWS(m->forward(std::span<const SequenceInput>(&in2, 1), ForwardOptions{}));
  // 64-token cache: a 100-token prompt does not fit.
  std::vector<int32_t> ids(100, 1);
  SequenceInput in3{ids.data(), 100, &kv, LogitsMode::Last};
  CHECK_THROWS(m->forward(std::span<const SequenceInput>(&in3, 1), ForwardOptions{}));
  CHECK(m->kv_cache().free_blocks() == 4);
}

TEST(random_model_is_deterministic) {
  GPT2Config c;
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 4;
  c.n_inner = 128;
  c.n_positions = 64;
  c.vocab_size = 300;
  std::vector<std::vector<float>> outs;
  for (uint64_t seed : {7, 7, 8}) {
    GPT2Model m(c, cpu_backend(), GPT2Model::random_reader(seed, c), ModelOptions{});
    KvSequence kv;
    outs.push_back(run(m, kv, {1, 2, 3, 299}, LogitsMode::Last));
  }
  CHECK(outs[0] == outs[1]);
  CHECK(outs[0] != outs[2]);
  for (float v : outs[0]) CHECK(std::isfinite(v));
}

TEST_MAIN()
