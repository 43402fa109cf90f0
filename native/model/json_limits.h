// Bounds checked before a JSON file of ours is parsed. The parser builds a tree with
// roughly 120 bytes per value, so a hostile 100 MB header made of "0,0,0,..." would cost
// gigabytes: count the values first (a cheap scan) and refuse absurd files.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace gpt2::model {

inline constexpr size_t kMaxConfigBytes = size_t{16} << 20;       // config.json
inline constexpr size_t kMaxConfigValues = size_t{1} << 20;
inline constexpr size_t kMaxIndexBytes = size_t{100} << 20;       // model.safetensors.index.json
inline constexpr size_t kMaxIndexValues = size_t{1} << 21;
inline constexpr size_t kMaxHeaderBytes = size_t{100} * 1000 * 1000;  // safetensors header (as the Rust crate)
inline constexpr size_t kMaxHeaderValues = size_t{1} << 21;

// An upper bound on the number of JSON values in `text`: separators and openers outside
// strings, plus one. Exact for valid JSON up to the closers; never an underestimate.
size_t count_json_values_upper_bound(std::string_view text);

// Throws a format error naming `source` when `text` is longer than `max_bytes` or holds
// more than `max_values` values.
void check_json_size(std::string_view text, size_t max_bytes, size_t max_values, const std::string& source);

}  // namespace gpt2::model
