// A tiny random GPT-2 (2 layers, 32 wide, 64 positions) on the CPU backend, for engine tests.
#pragma once
#include <memory>

#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "model/gpt2_model.h"

namespace gpt2::test {

inline std::unique_ptr<model::GPT2Model> tiny_model(int64_t kv_tokens, uint64_t seed) {
  model::GPT2Config c = model::preset_config("gpt2");
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 2;
  c.n_inner = 128;
  c.n_positions = 64;
  model::ModelOptions o;
  o.kv_cache_tokens = kv_tokens;
  return std::make_unique<model::GPT2Model>(c, std::make_unique<cpu::CpuBackend>(ThreadPool::shared(2), 2),
                                            model::GPT2Model::random_reader(seed, c), o);
}

}  // namespace gpt2::test
