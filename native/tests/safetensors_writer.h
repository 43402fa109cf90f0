// Test helpers: write safetensors files and small GPT-2 model folders (bare / prefixed /
// sharded / with old buffers / f16 / bf16) so that each layout and each malformed case
// can be produced in a temp folder.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"

namespace gpt2::test {

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", ...
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian data
};

inline std::string shape_json(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// 8-byte length + header (padded with spaces to a multiple of 8, like the Python writer) + data.
inline std::string safetensors_from_header(const std::string& header_json, const std::string& data) {
  std::string header = header_json;
  while (header.size() % 8) header += ' ';
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; i++) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

inline std::string build_safetensors(const std::vector<StTensor>& tensors, bool with_metadata = true) {
  std::string header = "{";
  std::string data;
  if (with_metadata) header += "\"__metadata__\":{\"format\":\"pt\"}";
  for (const auto& t : tensors) {
    if (header.size() > 1) header += ",";
    const size_t begin = data.size();
    data += t.bytes;
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_json(t.shape) +
              ",\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
  }
  header += "}";
  return safetensors_from_header(header, data);
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A fresh temp folder, removed by the destructor.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/gpt2-loader-test-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string sub(const std::string& name) const {
    std::string d = path + "/" + name;
    std::filesystem::create_directories(d);
    return d;
  }
};

// Deterministic "weights": value i of tensor t is a small float that differs per tensor.
inline float synthetic_value(size_t tensor_index, size_t i) {
  return static_cast<float>(static_cast<int>((tensor_index * 131 + i * 7) % 97) - 48) / 16.0f;
}

inline std::string encode(const std::string& dtype, const std::vector<float>& v) {
  std::string out;
  for (float f : v) {
    if (dtype == "F32") {
      out.append(reinterpret_cast<const char*>(&f), 4);
    } else {
      uint16_t h = dtype == "F16" ? model::f32_to_f16(f) : model::f32_to_bf16(f);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return out;
}

inline std::string small_config_json(const std::string& extra = "") {
  return "{\"model_type\":\"gpt2\",\"vocab_size\":10,\"n_positions\":4,\"n_embd\":4,\"n_layer\":2,\"n_head\":2,"
         "\"n_inner\":null,\"activation_function\":\"gelu_new\",\"layer_norm_epsilon\":1e-05" +
         extra + "}";
}

struct FolderOptions {
  std::string dtype = "F32";
  bool prefixed = false;
  bool lm_head = false;      // also store lm_head.weight (= wte)
  bool old_buffers = false;  // h.N.attn.bias [1,1,P,P] (U8) and h.N.attn.masked_bias [] (F32)
  int shards = 0;            // 0: model.safetensors; N: N shards + index
};

// The tensors of a GPT-2 with `config`, as StTensors named per `opt`.
inline std::vector<StTensor> model_tensors(const model::GPT2Config& c, const FolderOptions& opt) {
  std::vector<StTensor> out;
  const std::string prefix = opt.prefixed ? "transformer." : "";
  size_t index = 0;
  std::string wte_bytes;
  for (const auto& [name, shape] : model::gpt2_tensor_shapes(c)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); i++) v[i] = synthetic_value(index, i);
    index++;
    out.push_back({prefix + name, opt.dtype, shape, encode(opt.dtype, v)});
    if (name == "wte.weight") wte_bytes = out.back().bytes;
  }
  if (opt.lm_head) out.push_back({"lm_head.weight", opt.dtype, {c.vocab_size, c.n_embd}, wte_bytes});
  if (opt.old_buffers) {
    for (int64_t l = 0; l < c.n_layer; l++) {
      const int64_t P = c.n_positions;
      std::string mask(static_cast<size_t>(P * P), '\0');
      for (int64_t i = 0; i < P; i++)
        for (int64_t j = 0; j <= i; j++) mask[static_cast<size_t>(i * P + j)] = 1;
      const std::string p = prefix + "h." + std::to_string(l) + ".attn.";
      out.push_back({p + "bias", "U8", {1, 1, P, P}, mask});
      out.push_back({p + "masked_bias", "F32", {}, encode("F32", {-1e4f})});
    }
  }
  return out;
}

inline void write_model_folder(const std::string& dir, const std::string& config_json, const FolderOptions& opt = {}) {
  write_file(dir + "/config.json", config_json);
  const model::GPT2Config c = model::parse_config(config_json, "config.json");
  std::vector<StTensor> tensors = model_tensors(c, opt);
  if (opt.shards <= 0) {
    write_file(dir + "/model.safetensors", build_safetensors(tensors));
    return;
  }
  std::string map;
  for (int s = 0; s < opt.shards; s++) {
    std::vector<StTensor> part;
    char shard[64];
    std::snprintf(shard, sizeof shard, "model-%05d-of-%05d.safetensors", s + 1, opt.shards);
    for (size_t i = 0; i < tensors.size(); i++)
      if (static_cast<int>(i % opt.shards) == s) {
        part.push_back(tensors[i]);
        map += std::string(map.empty() ? "" : ",") + "\"" + tensors[i].name + "\":\"" + shard + "\"";
      }
    write_file(dir + "/" + shard, build_safetensors(part));
  }
  write_file(dir + "/model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":0},\"weight_map\":{" + map + "}}");
}

}  // namespace gpt2::test
