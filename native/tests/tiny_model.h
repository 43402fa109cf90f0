// A tiny random GPT-2 (2 layers, width 32, 64 positions, GPT-2's vocabulary) on the CPU
// backend, for the engine tests.
#pragma once
#include <memory>

#include "core/thread_pool.h"
#include "cpu/cpu_backend.h"
#include "model/gpt2_model.h"

inline gpt2::model::GPT2Config tiny_config() {
  gpt2::model::GPT2Config c = gpt2::model::preset_config("gpt2");
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 2;
  c.n_inner = 128;
  c.n_positions = 64;
  return c;
}

inline std::unique_ptr<gpt2::model::GPT2Model> make_tiny_model(uint64_t seed, int64_t kv_tokens = 0) {
  const gpt2::model::GPT2Config c = tiny_config();
  gpt2::model::ModelOptions o;
  o.kv_cache_tokens = kv_tokens;
  return std::make_unique<gpt2::model::GPT2Model>(
      c, std::make_unique<gpt2::cpu::CpuBackend>(gpt2::ThreadPool::shared(2), 2), gpt2::model::GPT2Model::random_reader(seed, c), o);
}
