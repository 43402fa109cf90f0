// Host memory for large, long-lived CPU buffers (packed weights, KV pools, forward scratch).
// Blocks of 1 MiB and more are mapped directly: freeing one returns it to the OS at once
// (from malloc, a disposed model's weights would stay in the allocator's arenas), and its
// pages are committed only when first touched (the KV pools rely on this). Smaller blocks
// come from aligned_alloc. Every block is 64-byte aligned.
#pragma once
#include <cstddef>

namespace gpt2::cpu {

// Throws gpt2::Error (ERR_GPT2_OUT_OF_MEMORY) on failure. Contents are not zeroed.
void* host_alloc(size_t bytes);
// Frees a block from host_alloc (nullptr: nothing).
void host_free(void* ptr);

}  // namespace gpt2::cpu
