// Checkpoint loading: config.json parsing, safetensors validation, key styles, sharded
// folders, dtype conversion, and the error text of each malformed case.
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "cpu/f16_convert.h"
#include "core/json.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/json_limits.h"
#include "model/safetensors.h"
#include "safetensors_writer.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::test;

static std::string fixtures() {
  const char* root = std::getenv("GPT2_ROOT");
  return std::string(root ? root : ".") + "/../shared/fixtures";
}

// Runs fn, which must throw gpt2::Error with `code` and a message containing every one of
// `parts`. Returns the message.
static std::string expect_error(const std::function<void()>& fn, const std::string& code,
                                std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const gpt2::Error& e) {
    const std::string msg = e.what();
    if (e.code() != code) throw Failure("expected code " + code + ", got " + e.code() + ": " + msg);
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos) throw Failure("message lacks \"" + p + "\": " + msg);
    return msg;
  } catch (const std::exception& e) {
    throw Failure(std::string("expected gpt2::Error, got another exception: ") + e.what());
  }
  throw Failure("expected gpt2::Error " + code + ", nothing was thrown");
}

static double sum_f32(const Checkpoint& ck, const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  ck.read_f32(t, v.data());
  double s = 0;
  for (float x : v) s += x;
  return s;
}

static const char* kFormat = code::kFileFormat;
static const char* kIO = code::kFileIO;

// ---------------------------------------------------------------- config.json

TEST(config_fixture_fields) {
  auto text = read_file(fixtures() + "/models/tiny/config.json");
  GPT2Config c = parse_config(text, "tiny/config.json");
  CHECK(c.vocab_size == 50257 && c.n_positions == 128 && c.n_embd == 64 && c.n_layer == 2 && c.n_head == 4);
  CHECK(c.n_inner == 256);  // null -> 4 * n_embd
  CHECK(c.head_dim() == 16);
  CHECK(c.activation == cpu::Activation::GeluNew && c.activation_name == "gelu_new");
  CHECK(c.layer_norm_epsilon == 1e-5);
  CHECK(c.scale_attn_weights && !c.scale_attn_by_inverse_layer_idx && !c.reorder_and_upcast_attn);
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_token_id == 50256 && c.eos_token_id == 50256);
  CHECK(c.model_type == "gpt2");
}

TEST(config_defaults_aliases_and_legacy_keys) {
  // Absent fields take transformers' GPT2Config defaults (gpt2 small).
  GPT2Config d = parse_config("{}", "c");
  CHECK(d.vocab_size == 50257 && d.n_positions == 1024 && d.n_embd == 768 && d.n_layer == 12 && d.n_head == 12 &&
        d.n_inner == 3072 && d.eos_token_id == 50256);
  // Legacy n_ctx stands in for a missing n_positions; n_positions wins when both exist.
  CHECK(parse_config(R"({"n_ctx": 256})", "c").n_positions == 256);
  CHECK(parse_config(R"({"n_ctx": 256, "n_positions": 512})", "c").n_positions == 512);
  // attribute_map aliases.
  GPT2Config a = parse_config(
      R"({"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "max_position_embeddings": 64})", "c");
  CHECK(a.n_embd == 32 && a.n_layer == 3 && a.n_head == 4 && a.n_positions == 64 && a.n_inner == 128);
  expect_error([] { parse_config(R"({"n_embd": 32, "hidden_size": 64})", "c"); }, kFormat,
               {"n_embd (32) and hidden_size (64) disagree"});
  CHECK(parse_config(R"({"n_inner": 100})", "c").n_inner == 100);
  GPT2Config t = parse_config(R"({"tie_word_embeddings": false, "bos_token_id": null, "eos_token_id": 3,
      "scale_attn_by_inverse_layer_idx": true, "scale_attn_weights": false, "reorder_and_upcast_attn": true})",
                              "c");
  CHECK(!t.tie_word_embeddings && t.bos_token_id == -1 && t.eos_token_id == 3);
  CHECK(t.scale_attn_by_inverse_layer_idx && !t.scale_attn_weights && t.reorder_and_upcast_attn);
  // Defaulted token ids outside a small vocabulary become "none"; given ones must fit.
  GPT2Config s = parse_config(R"({"vocab_size": 100})", "c");
  CHECK(s.bos_token_id == -1 && s.eos_token_id == -1);
  expect_error([] { parse_config(R"({"vocab_size": 100, "eos_token_id": 100})", "cfg.json"); }, kFormat,
               {"cfg.json: eos_token_id (100) must be below vocab_size (100)"});
}

TEST(config_activations) {
  struct {
    const char* name;
    cpu::Activation act;
  } cases[] = {{"gelu_new", cpu::Activation::GeluNew}, {"gelu_pytorch_tanh", cpu::Activation::GeluNew},
               {"gelu", cpu::Activation::Gelu},         {"relu", cpu::Activation::Relu},
               {"silu", cpu::Activation::Silu},         {"swish", cpu::Activation::Silu},
               {"tanh", cpu::Activation::Tanh}};
  for (const auto& c : cases) {
    GPT2Config cfg = parse_config(std::string(R"({"activation_function": ")") + c.name + "\"}", "c");
    CHECK(cfg.activation == c.act && cfg.activation_name == c.name);
  }
  expect_error([] { parse_config(R"({"activation_function": "mish"})", "m/config.json"); }, kFormat,
               {"m/config.json", "unknown activation_function \"mish\""});
  expect_error([] { parse_config(R"({"activation_function": 3})", "c"); }, kFormat,
               {"activation_function must be a string"});
}

TEST(config_errors) {
  expect_error([] { parse_config(R"({"n_embd": 770, "n_head": 12})", "config.json"); }, kFormat,
               {"config.json: n_head (12) must divide n_embd (770)"});
  expect_error([] { parse_config(R"({"model_type": "bert"})", "c"); }, kFormat,
               {"model_type is \"bert\"; only \"gpt2\" models are supported"});
  expect_error([] { parse_config(R"({"n_embd": "768"})", "c"); }, kFormat, {"n_embd must be an integer (got \"768\")"});
  expect_error([] { parse_config(R"({"n_layer": 2.5})", "c"); }, kFormat, {"n_layer must be an integer (got 2.5)"});
  expect_error([] { parse_config(R"({"vocab_size": -1})", "c"); }, kFormat, {"vocab_size (-1) must be between 1"});
  expect_error([] { parse_config(R"({"vocab_size": 0})", "c"); }, kFormat, {"vocab_size (0)"});
  expect_error([] { parse_config(R"({"n_layer": 100000})", "c"); }, kFormat, {"n_layer (100000) must be between"});
  expect_error([] { parse_config(R"({"n_head": 0})", "c"); }, kFormat, {"n_head (0)"});
  expect_error([] { parse_config(R"({"n_positions": 99999999999})", "c"); }, kFormat, {"n_positions (99999999999)"});
  expect_error([] { parse_config(R"({"n_inner": 0})", "c"); }, kFormat, {"n_inner (0)"});
  expect_error([] { parse_config(R"({"layer_norm_epsilon": -1})", "c"); }, kFormat, {"layer_norm_epsilon"});
  expect_error([] { parse_config(R"({"layer_norm_epsilon": 1e999})", "c"); }, kFormat, {"layer_norm_epsilon"});
  expect_error([] { parse_config(R"({"tie_word_embeddings": 1})", "c"); }, kFormat,
               {"tie_word_embeddings must be true or false"});
  expect_error([] { parse_config(R"({"n_embd": 768, "n_embd": 64})", "c"); }, kFormat, {"duplicate key 'n_embd'"});
  expect_error([] { parse_config("[1,2]", "c"); }, kFormat, {"must be a JSON object"});
  expect_error([] { parse_config("{\"n_embd\": 7", "cfg"); }, kFormat, {"cfg: invalid JSON"});
  expect_error([] { parse_config("", "cfg"); }, kFormat, {"cfg: invalid JSON"});
  // Individually sane numbers whose product is absurd.
  expect_error([] { parse_config(R"({"n_embd": 65536, "n_layer": 1024, "n_head": 1})", "c"); }, kFormat,
               {"parameters (limit"});
  expect_error([] { parse_config(R"({"vocab_size": 4194304, "n_embd": 65536, "n_head": 1, "n_layer": 1})", "c"); },
               kFormat, {"parameters (limit"});
}

TEST(config_presets_and_json_round_trip) {
  struct {
    const char* name;
    int64_t E, L, H, params;
  } presets[] = {{"gpt2", 768, 12, 12, 124439808},
                 {"gpt2-medium", 1024, 24, 16, 354823168},
                 {"gpt2-large", 1280, 36, 20, 774030080},
                 {"gpt2-xl", 1600, 48, 25, 1557611200},
                 {"distilgpt2", 768, 6, 12, 81912576}};
  for (const auto& p : presets) {
    GPT2Config c = preset_config(p.name);
    CHECK(c.n_embd == p.E && c.n_layer == p.L && c.n_head == p.H && c.n_inner == 4 * p.E);
    CHECK(c.vocab_size == 50257 && c.n_positions == 1024 && c.eos_token_id == 50256);
    CHECK_MSG(parameter_count(c) == p.params, std::string(p.name) + ": " + std::to_string(parameter_count(c)));
    validate_config(c, p.name);
    GPT2Config back = parse_config(config_to_json(c), "round trip");
    CHECK(back.n_embd == c.n_embd && back.n_layer == c.n_layer && back.n_head == c.n_head &&
          back.n_inner == c.n_inner && back.layer_norm_epsilon == c.layer_norm_epsilon &&
          back.activation == c.activation && back.eos_token_id == c.eos_token_id);
  }
  CHECK(preset_config("openai-community/gpt2-xl").n_layer == 48);
  expect_error([] { preset_config("gpt3"); }, code::kInvalidArg, {"unknown model preset \"gpt3\"", "gpt2-medium"});
  GPT2Config c = parse_config(R"({"eos_token_id": null, "activation_function": "relu", "layer_norm_epsilon": 1e-6})", "c");
  const std::string json = config_to_json(c);
  CHECK(json.find("\"eos_token_id\":null") != std::string::npos);
  CHECK(json.find("\"layer_norm_epsilon\":1e-06") != std::string::npos);
  GPT2Config back = parse_config(json, "c");
  CHECK(back.eos_token_id == -1 && back.activation == cpu::Activation::Relu && back.layer_norm_epsilon == 1e-6);
}

TEST(config_overrides) {
  const GPT2Config base = preset_config("gpt2");
  GPT2Config c = config_with_overrides(base, parse_json(R"({"n_layer": 2, "n_embd": 128, "n_head": 4})", "o"), "o");
  CHECK(c.n_layer == 2 && c.n_embd == 128 && c.n_head == 4 && c.n_inner == 512 && c.vocab_size == 50257);
  GPT2Config v = config_with_overrides(base, parse_json(R"({"vocab_size": 1000})", "o"), "o");
  CHECK(v.eos_token_id == -1 && v.bos_token_id == -1);
  GPT2Config i = config_with_overrides(base, parse_json(R"({"n_embd": 64, "n_head": 4, "n_inner": 100})", "o"), "o");
  CHECK(i.n_inner == 100);
  expect_error([&] { config_with_overrides(base, parse_json(R"({"n_embed": 64})", "o"), "Model.random"); },
               code::kInvalidArg, {"Model.random: unknown config field 'n_embed'"});
  expect_error([&] { config_with_overrides(base, parse_json(R"({"n_head": 7})", "o"), "Model.random"); },
               code::kOutOfRange, {"Model.random: n_head (7) must divide n_embd (768)"});
  expect_error([&] { config_with_overrides(base, parse_json(R"({"n_layer": "2"})", "o"), "o"); }, code::kInvalidArg,
               {"n_layer must be an integer"});
}

// ---------------------------------------------------------------- conversions

static float f16_reference(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v;
  if (exp == 0x1f) v = mant ? NAN : INFINITY;
  else if (exp == 0) v = std::ldexp(mant, -24);
  else v = std::ldexp(1024 + mant, exp - 25);
  return static_cast<float>(sign ? -v : v);
}

TEST(f16_conversion_is_exact_for_every_value) {
  for (uint32_t h = 0; h < 65536; h++) {
    const float got = f16_to_f32(static_cast<uint16_t>(h));
    const float want = f16_reference(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      CHECK_MSG(std::isnan(got), "f16 " + std::to_string(h) + " should be NaN");
      continue;
    }
    CHECK_MSG(std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want), "f16 " + std::to_string(h));
    CHECK_MSG(f32_to_f16(got) == h, "round trip of f16 " + std::to_string(h));  // also checks -0, inf
  }
  // bf16: every pattern round-trips through f32 (NaNs stay NaN).
  for (uint32_t b = 0; b < 65536; b++) {
    const float f = bf16_to_f32(static_cast<uint16_t>(b));
    CHECK(std::bit_cast<uint32_t>(f) == b << 16);
    if (!std::isnan(f)) CHECK(f32_to_bf16(f) == b);
    else CHECK(std::isnan(bf16_to_f32(f32_to_bf16(f))));
  }
}

TEST(f16_avx2_matches_scalar_on_every_value) {
  if (!cpu_features().has_avx2()) {
    std::printf("     (no AVX2/F16C here: skipped)\n");
    return;
  }
  std::vector<uint16_t> all(65536 + 5);  // odd length: exercises the tail
  for (size_t i = 0; i < all.size(); i++) all[i] = static_cast<uint16_t>(i);
  // Unaligned source: start one byte into a buffer.
  std::string bytes(1 + 2 * all.size(), '\0');
  std::memcpy(bytes.data() + 1, all.data(), 2 * all.size());
  for (size_t n : {all.size(), size_t{7}, size_t{1}, size_t{0}}) {
    std::vector<float> got(n + 1, 123.0f);
    cpu::f16_to_f32_avx2(bytes.data() + 1, got.data(), n);
    CHECK(got[n] == 123.0f);  // nothing written past n
    for (size_t i = 0; i < n; i++) {
      const float want = f16_to_f32(all[i]);
      if (std::isnan(want)) CHECK(std::isnan(got[i]));
      else CHECK_MSG(std::bit_cast<uint32_t>(got[i]) == std::bit_cast<uint32_t>(want), std::to_string(i));
    }
  }
}

TEST(f32_to_f16_rounds_to_nearest_even) {
  // Compared with the compiler's _Float16 conversion (round to nearest even) on random
  // and edge-case inputs, including the subnormal range.
  std::mt19937 rng(7);
  std::vector<float> xs = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f, 5.9604645e-8f, 2.9802322e-8f,
                           2.9802326e-8f, 6.1035156e-5f, 6.1e-5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, INFINITY};
  for (int i = 0; i < 200000; i++) {
    uint32_t bits = rng();
    float f = std::bit_cast<float>(bits);
    if (std::isnan(f)) continue;
    if (i % 2) f = std::ldexp(static_cast<float>(rng() % 4096) / 4096.0f + 0.5f, static_cast<int>(rng() % 44) - 30);
    xs.push_back(f);
  }
  for (float f : xs) {
    const _Float16 ref = static_cast<_Float16>(f);
    const uint16_t want = std::bit_cast<uint16_t>(ref);
    CHECK_MSG(f32_to_f16(f) == want, "f32_to_f16(" + std::to_string(f) + ")");
  }
  CHECK(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  CHECK(f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);  // tie -> even
  CHECK(f32_to_bf16(1.0f + 3.0f / 256) == 0x3f82);
}

// ---------------------------------------------------------------- safetensors

static std::unique_ptr<SafetensorsFile> parse_bytes(const std::string& bytes) {
  return SafetensorsFile::from_bytes(bytes, "test.safetensors");
}

static std::string f32_bytes(std::initializer_list<float> v) { return encode("F32", std::vector<float>(v)); }

TEST(safetensors_valid_file) {
  std::string bytes = build_safetensors({{"a", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})},
                                         {"b", "F16", {3}, encode("F16", {0.5f, -2.0f, 65504.0f})},
                                         {"c", "BF16", {1}, encode("BF16", {1.5f})},
                                         {"empty", "F32", {0, 5}, ""},
                                         {"scalar", "I64", {}, std::string(8, '\x01')}});
  auto f = parse_bytes(bytes);
  CHECK(f->tensors().size() == 5);
  CHECK(f->metadata().size() == 1 && f->metadata()[0].first == "format" && f->metadata()[0].second == "pt");
  const TensorView* a = f->find("a");
  CHECK(a && a->dtype == DType::F32 && a->shape == std::vector<int64_t>({2, 2}) && a->nbytes == 16);
  float out[4];
  convert_to_f32(*a, out);
  CHECK(out[0] == 1 && out[3] == 4);
  convert_to_f32(*f->find("b"), out);
  CHECK(out[0] == 0.5f && out[1] == -2.0f && out[2] == 65504.0f);
  convert_to_f32(*f->find("c"), out);
  CHECK(out[0] == 1.5f);
  CHECK(f->find("empty")->numel() == 0);
  CHECK(f->find("scalar")->numel() == 1 && f->find("scalar")->shape.empty());
  CHECK(!f->find("zzz"));
  expect_error([&] { convert_to_f32(*f->find("scalar"), out); }, kFormat, {"'scalar' has dtype I64"});
  // No __metadata__ is fine too; an unaligned data section too (memcpy reads).
  auto g = parse_bytes(safetensors_from_header(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})",
                                               std::string(1, '\0') + f32_bytes({7})));
  convert_to_f32(*g->find("x"), out);
  CHECK(out[0] == 7);
}

TEST(safetensors_file_on_disk_and_io_errors) {
  TempDir tmp;
  const std::string path = tmp.path + "/x.safetensors";
  write_file(path, build_safetensors({{"a", "F32", {2}, f32_bytes({1, 2})}}));
  auto f = SafetensorsFile::open(path);
  CHECK(f->is_mapped() && f->path() == path);
  float out[2];
  convert_to_f32(*f->find("a"), out);
  CHECK(out[1] == 2);
  f->release();
  CHECK(f->find("a")->data == nullptr);
  expect_error([&] { convert_to_f32(*f->find("a"), out); }, kFormat, {"released"});
  expect_error([&] { SafetensorsFile::open(tmp.path + "/missing.safetensors"); }, kIO,
               {"missing.safetensors: cannot open"});
  expect_error([&] { SafetensorsFile::open(tmp.path); }, kIO, {"not a regular file"});
  write_file(path, "");
  expect_error([&] { SafetensorsFile::open(path); }, kFormat, {"x.safetensors: file is 0 bytes, too small"});
  // A FIFO must not hang open().
  const std::string fifo = tmp.path + "/fifo.safetensors";
  CHECK(::mkfifo(fifo.c_str(), 0600) == 0);
  expect_error([&] { SafetensorsFile::open(fifo); }, kIO, {"fifo.safetensors: not a regular file"});
  const std::string dir = tmp.sub("fifo_model");
  write_file(dir + "/model.safetensors", read_file(fixtures() + "/models/tiny_fp16/model.safetensors"));
  CHECK(::mkfifo((dir + "/config.json").c_str(), 0600) == 0);
  expect_error([&] { Checkpoint::open(dir); }, kIO, {"config.json: not a regular file"});
}

TEST(safetensors_malformed_headers) {
  auto header = [](const std::string& h, const std::string& data = std::string(16, '\0')) {
    return safetensors_from_header(h, data);
  };
  auto bad = [&](const std::string& bytes, std::initializer_list<std::string> parts) {
    expect_error([&] { parse_bytes(bytes); }, kFormat, parts);
  };
  const std::string tensor_a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // Length field.
  bad("1234567", {"test.safetensors: file is 7 bytes, too small"});
  {
    std::string b = header("{" + tensor_a + "}");
    b[5] = 0x7f;  // length ~ 2^47
    bad(b, {"test.safetensors: header length", "more than the limit"});
    std::string c = header("{" + tensor_a + "}");
    c[0] = static_cast<char>(static_cast<unsigned char>(c[0]) + 100);
    bad(c, {"runs past the end"});
    std::string d = header("{" + tensor_a + "}");
    std::memset(d.data(), 0, 8);
    bad(d, {"header is 0 bytes"});
  }
  bad(header("[1,2]"), {"does not start with '{'"});
  bad(header("{\"a\": }"), {"test.safetensors (header): invalid JSON"});
  bad(header(std::string(1, '{') + std::string(200, '[') + std::string(200, ']') + "}"), {"invalid JSON"});
  {
    std::string deep = "{\"__metadata__\":";
    for (int i = 0; i < 300; i++) deep += "{\"a\":";
    deep += "1";
    for (int i = 0; i < 300; i++) deep += "}";
    bad(header(deep + "}"), {"nesting deeper than 128"});
  }
  // Value-count bomb: rejected before building a tree.
  {
    std::string big = "{\"__metadata__\":{\"a\":\"b\"},\"x\":[";
    for (int i = 0; i < 2200000; i++) big += "0,";
    big += "0]}";
    bad(header(big), {"too many JSON values"});
  }
  // Per-field errors, each naming the tensor.
  bad(header(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})"), {"tensor 'a': unknown dtype 'F31'"});
  bad(header(R"({"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})"), {"tensor 'a': dtype must be a string"});
  bad(header(R"({"a":{"shape":[2],"data_offsets":[0,8]}})"), {"tensor 'a': missing dtype"});
  bad(header(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})"), {"tensor 'a': missing shape"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2]}})"), {"tensor 'a': missing data_offsets"});
  bad(header(R"({"a":[1]})"), {"tensor 'a': entry must be an object"});
  bad(header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"), {"tensor 'a': shape entries must be non-negative"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})"), {"shape entries must be non-negative integers"});
  bad(header(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})"), {"shape must be an array"});
  bad(header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})"),
      {"tensor 'a': shape", "has too many elements"});
  bad(header(R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})"), {"is too large"});
  bad(header(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})"),
      {"17 dimensions"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})"), {"[8, 0] has begin after end"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})"), {"data_offsets must be an array [begin, end]"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})"), {"data_offsets must be non-negative"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})"),
      {"data_offsets must be non-negative integers"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})"),
      {"tensor 'a': data_offsets [16, 24] run past the end of the data section (16 bytes"});
  bad(header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"),
      {"tensor 'a': data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"),
      {"tensors 'a' and 'b' overlap"});
  bad(header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"),
      {"duplicate tensor 'a'"});
  bad(header(R"({"__metadata__":{"format":1}})"), {"__metadata__ value 'format' must be a string"});
  bad(header(R"({"__metadata__":[]})"), {"__metadata__ must be an object"});
  bad(header(R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"), {"empty name"});
  // Zero-sized tensors may share an offset; they overlap nothing.
  auto ok = parse_bytes(header(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})"));
  CHECK(ok->tensors().size() == 2);
}

TEST(json_value_counter) {
  CHECK(count_json_values_upper_bound("{}") == 2);
  CHECK(count_json_values_upper_bound(R"({"a":[1,2]})") == 5);
  CHECK(count_json_values_upper_bound(R"(["a,b,c\",[{"])") == 2);  // separators inside strings don't count
}

// ---------------------------------------------------------------- fixture folders

TEST(fixture_tiny_bare_f32) {
  auto ck = Checkpoint::open(fixtures() + "/models/tiny");
  ck->validate();
  CHECK(ck->files().size() == 1);
  CHECK(!ck->has("lm_head.weight") && ck->has("h.1.mlp.c_proj.bias") && !ck->has("h.2.ln_1.weight"));
  CHECK(ck->names().size() == 2 + 12 * 2 + 2);
  const TensorView& wte = ck->tensor("wte.weight", {50257, 64});
  CHECK(&ck->lm_head() == &wte);
  std::vector<float> w(static_cast<size_t>(wte.numel()));
  ck->read_f32(wte, w.data());
  // Values from numpy reading the same file.
  CHECK(w[0] == 0.8767316937446594f && w[1] == -1.498421549797058f && w[2] == 0.6557099223136902f);
  CHECK(std::fabs(sum_f32(*ck, wte) - 224.277078707172) < 1e-6);
  std::vector<float> b(256);
  ck->read_f32(ck->tensor("h.1.mlp.c_fc.bias", {256}), b.data());
  CHECK(b[0] == 0.03210776299238205f && b[2] == 0.1680094301700592f);
  CHECK(!ck->has_tokenizer_files());
}

// RssFile of this process in kB (/proc/self/status), -1 where unavailable.
long rss_file_kb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "RssFile: %ld kB", &kb) == 1) break;
  std::fclose(f);
  return kb;
}

// A converted tensor's mapped pages are dropped from the process (the load would otherwise
// hold the whole file resident next to the packed weights); reading it again still works.
TEST(read_f32_drops_the_tensor_pages) {
  auto ck = Checkpoint::open(fixtures() + "/models/tiny");
  const TensorView& wte = ck->tensor("wte.weight", {50257, 64});  // 12.9 MB
  std::vector<float> w(static_cast<size_t>(wte.numel())), again(w.size());
  const long before = rss_file_kb();
  ck->read_f32(wte, w.data());
  const long after = rss_file_kb();
  if (before >= 0) CHECK_MSG(after - before < 1024, "RssFile grew by " + std::to_string(after - before) + " kB");
  ck->read_f32(wte, again.data());
  CHECK(std::memcmp(w.data(), again.data(), w.size() * sizeof(float)) == 0);
  CHECK(w[0] == 0.8767316937446594f);
}

TEST(fixture_prefixed_with_lm_head) {
  auto ck = Checkpoint::open(fixtures() + "/models/tiny_prefixed_lmhead");
  ck->validate();
  CHECK(ck->has("wte.weight") && ck->has("lm_head.weight") && !ck->has("transformer.wte.weight"));
  const TensorView& wte = ck->tensor("wte.weight", {50257, 6});
  CHECK(wte.name == "transformer.wte.weight");
  CHECK(&ck->lm_head() == &wte);  // tied: the stored head equals wte and transformers ties it
  const TensorView& head = ck->tensor("lm_head.weight", {50257, 6});
  CHECK(head.nbytes == wte.nbytes && std::memcmp(head.data, wte.data, wte.nbytes) == 0);
  CHECK(std::fabs(sum_f32(*ck, wte) - -71.19913589953967) < 1e-6);
  std::vector<float> b(24);
  ck->read_f32(ck->tensor("h.1.mlp.c_fc.bias", {24}), b.data());
  CHECK(b[0] == -0.004067525267601013f && b[1] == 0.10380899906158447f);
}

TEST(fixture_fp16_converts_exactly) {
  auto ck = Checkpoint::open(fixtures() + "/models/tiny_fp16");
  ck->validate();
  const TensorView& wte = ck->tensor("wte.weight", {50257, 8});
  CHECK(wte.dtype == DType::F16);
  std::vector<float> w(static_cast<size_t>(wte.numel()));
  ck->read_f32(wte, w.data());
  CHECK(w[0] == 2.3046875f && w[1] == -1.052734375f && w[2] == -0.2022705078125f);
  // The file holds 8 f16 subnormals, all in wte (numpy: |x| < 2^-14, x != 0).
  int subnormals = 0;
  for (float x : w) subnormals += (x != 0 && std::fabs(x) < 6.103515625e-05f);
  CHECK(subnormals == 8);
  // Sum of every tensor in float64, as numpy computes it from the f16 values.
  double total = 0;
  for (const auto& [name, shape] : gpt2_tensor_shapes(ck->config())) total += sum_f32(*ck, ck->tensor(name, shape));
  CHECK_MSG(std::fabs(total - 692.8379685282707) < 1e-9, std::to_string(total));
  // bf16 from f16: one rounding of the exact value.
  std::vector<uint16_t> bf(static_cast<size_t>(wte.numel()));
  ck->read_bf16(wte, bf.data());
  for (size_t i = 0; i < bf.size(); i += 97) CHECK(bf[i] == f32_to_bf16(w[i]));
}

// ---------------------------------------------------------------- synthetic folders

static void check_same_weights(const Checkpoint& a, const Checkpoint& b) {
  for (const auto& [name, shape] : gpt2_tensor_shapes(a.config())) {
    const TensorView& x = a.tensor(name, shape);
    const TensorView& y = b.tensor(name, shape);
    std::vector<float> vx(static_cast<size_t>(x.numel())), vy(vx.size());
    a.read_f32(x, vx.data());
    b.read_f32(y, vy.data());
    CHECK_MSG(vx == vy, name);
  }
}

TEST(synthetic_layouts_agree) {
  TempDir tmp;
  const std::string config = small_config_json();
  write_model_folder(tmp.sub("bare"), config);
  write_model_folder(tmp.sub("prefixed"), config, {.prefixed = true});
  write_model_folder(tmp.sub("old"), config, {.prefixed = true, .old_buffers = true});
  write_model_folder(tmp.sub("old_bare"), config, {.lm_head = true, .old_buffers = true});
  write_model_folder(tmp.sub("sharded"), config, {.prefixed = true, .shards = 3});
  write_model_folder(tmp.sub("bf16"), config, {.dtype = "BF16"});
  auto bare = Checkpoint::open(tmp.path + "/bare");
  bare->validate();
  for (const char* name : {"prefixed", "old", "old_bare", "sharded", "bf16"}) {
    auto ck = Checkpoint::open(tmp.path + "/" + name);
    ck->validate();
    check_same_weights(*bare, *ck);  // synthetic values are multiples of 1/16: exact in bf16
    CHECK(&ck->lm_head() == &ck->tensor("wte.weight", {10, 4}));
  }
  auto old = Checkpoint::open(tmp.path + "/old");
  CHECK(!old->has("h.0.attn.bias") && !old->has("h.1.attn.masked_bias"));
  CHECK(old->names().size() == bare->names().size());
  auto sharded = Checkpoint::open(tmp.path + "/sharded");
  CHECK(sharded->files().size() == 3);
  // Both layouts in one folder: model.safetensors wins, as in transformers.
  write_file(tmp.path + "/sharded/model.safetensors", read_file(tmp.path + "/bare/model.safetensors"));
  auto both = Checkpoint::open(tmp.path + "/sharded");
  CHECK(both->files().size() == 1 && both->tensor("wte.weight", {10, 4}).name == "wte.weight");
}

TEST(untied_lm_head) {
  TempDir tmp;
  const std::string config = small_config_json(",\"tie_word_embeddings\":false");
  write_model_folder(tmp.sub("with"), config, {.lm_head = true});
  auto ck = Checkpoint::open(tmp.path + "/with");
  ck->validate();
  CHECK(ck->has_separate_lm_head() && ck->lm_head().name == "lm_head.weight");
  write_model_folder(tmp.sub("without"), config);
  auto no = Checkpoint::open(tmp.path + "/without");
  expect_error([&] { no->validate(); }, kFormat, {"missing tensor 'lm_head.weight'", "tie_word_embeddings false"});
}

// Writes a folder whose tensors are edited by `edit` before writing.
static std::string folder_with(const TempDir& tmp, const std::string& name,
                               const std::function<void(std::vector<StTensor>&)>& edit,
                               const std::string& config = small_config_json()) {
  const std::string dir = tmp.sub(name);
  write_file(dir + "/config.json", config);
  auto tensors = model_tensors(parse_config(config, "c"), {});
  edit(tensors);
  write_file(dir + "/model.safetensors", build_safetensors(tensors));
  return dir;
}

static StTensor& find(std::vector<StTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return t;
  throw Failure("no tensor " + name);
}

TEST(checkpoint_errors) {
  TempDir tmp;
  // Missing tensor.
  {
    auto dir = folder_with(tmp, "missing", [](auto& ts) {
      ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& t) { return t.name == "h.1.mlp.c_fc.weight"; }), ts.end());
    });
    auto ck = Checkpoint::open(dir);
    expect_error([&] { ck->validate(); }, kFormat,
                 {dir + "/model.safetensors: missing tensor 'h.1.mlp.c_fc.weight'", "has n_layer 2"});
  }
  // Shape disagreeing with config.json.
  {
    auto dir = folder_with(tmp, "shape", [](auto& ts) {
      auto& t = find(ts, "h.0.attn.c_attn.weight");
      t.shape = {4, 11};
      t.bytes.resize(4 * 11 * 4);
    });
    auto ck = Checkpoint::open(dir);
    expect_error([&] { ck->validate(); }, kFormat,
                 {"model.safetensors: tensor 'h.0.attn.c_attn.weight' has shape [4, 11], but", "config.json (n_embd 4) needs [4, 12]"});
  }
  {
    auto dir = folder_with(tmp, "vocab", [](auto& ts) {
      auto& t = find(ts, "wte.weight");
      t.shape = {9, 4};
      t.bytes.resize(9 * 4 * 4);
    });
    expect_error([&] { Checkpoint::open(dir)->validate(); }, kFormat,
                 {"tensor 'wte.weight' has shape [9, 4], but", "(vocab_size 10, n_embd 4) needs [10, 4]"});
  }
  // Wrong dtype for a weight.
  {
    auto dir = folder_with(tmp, "dtype", [](auto& ts) {
      auto& t = find(ts, "ln_f.bias");
      t.dtype = "I32";
    });
    expect_error([&] { Checkpoint::open(dir)->validate(); }, kFormat,
                 {"tensor 'ln_f.bias' has dtype I32; weights must be F32, F16 or BF16"});
  }
  // Two stored names for one canonical tensor.
  {
    auto dir = folder_with(tmp, "dup", [](auto& ts) {
      StTensor t = find(ts, "ln_f.bias");
      t.name = "transformer.ln_f.bias";
      ts.push_back(t);
    });
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"'transformer.ln_f.bias' and 'ln_f.bias'", "are both 'ln_f.bias'"});
  }
  // A bad config.json is reported before the weights are looked at.
  {
    auto dir = folder_with(tmp, "badcfg", [](auto&) {});
    write_file(dir + "/config.json", R"({"n_embd": 4, "n_head": 3})");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {dir + "/config.json: n_head (3) must divide n_embd (4)"});
    write_file(dir + "/config.json", R"({"activation_function": "gelu_magic"})");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"unknown activation_function \"gelu_magic\""});
  }
  // Folder problems: I/O errors naming the path.
  expect_error([&] { Checkpoint::open(tmp.path + "/nope"); }, kIO, {"/nope: cannot open model folder"});
  {
    auto dir = tmp.sub("empty");
    expect_error([&] { Checkpoint::open(dir); }, kIO, {"no config.json"});
    write_file(dir + "/config.json", small_config_json());
    write_file(dir + "/pytorch_model.bin", "x");
    expect_error([&] { Checkpoint::open(dir); }, kIO, {"no model.safetensors or model.safetensors.index.json",
                                                      "pytorch_model.bin is not supported"});
    write_file(dir + "/model.safetensors", "");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"model.safetensors: file is 0 bytes"});
  }
  expect_error([&] { Checkpoint::open(fixtures() + "/models/tiny/config.json"); }, kIO, {"not a folder"});
  // After release() the views are gone and use is an error, not a crash.
  {
    auto ck = Checkpoint::open(fixtures() + "/models/tiny_fp16");
    const TensorView& t = ck->tensor("ln_f.bias", {8});
    ck->release();
    float out[8];
    expect_error([&] { ck->read_f32(t, out); }, code::kDisposed, {"released"});
    expect_error([&] { ck->tensor("ln_f.bias", {8}); }, code::kDisposed, {"released"});
  }
}

TEST(sharded_errors) {
  TempDir tmp;
  const std::string config = small_config_json();
  auto make = [&](const std::string& name) {
    auto dir = tmp.sub(name);
    write_model_folder(dir, config, {.shards = 2});
    return dir;
  };
  auto index_of = [](const std::string& dir) { return read_file(dir + "/model.safetensors.index.json"); };
  auto replace = [](std::string s, const std::string& from, const std::string& to) {
    size_t at = s.find(from);
    if (at == std::string::npos) throw Failure("no " + from);
    return s.replace(at, from.size(), to);
  };
  {
    auto dir = make("traversal");
    write_file(dir + "/model.safetensors.index.json",
               replace(index_of(dir), "\"model-00001-of-00002.safetensors\"", "\"../model-00001-of-00002.safetensors\""));
    expect_error([&] { Checkpoint::open(dir); }, kFormat,
                 {"model.safetensors.index.json: weight_map gives tensor", "'../model-00001-of-00002.safetensors'",
                  "not a plain file name"});
    write_file(dir + "/model.safetensors.index.json",
               replace(index_of(make("abs")), "\"model-00001-of-00002.safetensors\"", "\"/etc/passwd\""));
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"'/etc/passwd'", "not a plain file name"});
  }
  {
    auto dir = make("missing_shard");
    std::filesystem::remove(dir + "/model-00002-of-00002.safetensors");
    expect_error([&] { Checkpoint::open(dir); }, kIO, {"model-00002-of-00002.safetensors: cannot open"});
  }
  {
    // The index names a tensor its shard lacks (moved to the wrong shard).
    auto dir = make("wrong_shard");
    std::string idx = index_of(dir);
    idx = replace(idx, "\"wte.weight\":\"model-00001-of-00002.safetensors\"", "\"wte.weight\":\"model-00002-of-00002.safetensors\"");
    write_file(dir + "/model.safetensors.index.json", idx);
    expect_error([&] { Checkpoint::open(dir); }, kFormat,
                 {"weight_map puts tensor 'wte.weight' in", "model-00002-of-00002.safetensors, which does not contain it"});
  }
  {
    auto dir = make("bad_index");
    write_file(dir + "/model.safetensors.index.json", R"({"weight_map": {"wte.weight": 3}})");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"weight_map value of 'wte.weight' must be a file name string"});
    write_file(dir + "/model.safetensors.index.json", R"({"weight_map": {}})");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"weight_map is empty"});
    write_file(dir + "/model.safetensors.index.json", R"({"metadata": {}})");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"weight_map must be an object"});
    write_file(dir + "/model.safetensors.index.json", R"({"weight_map": )");
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"model.safetensors.index.json: invalid JSON"});
  }
  {
    // A tensor missing from every shard (absent from the index): reported by name.
    auto dir = make("incomplete");
    std::string idx = index_of(dir);
    idx = replace(idx, "\"ln_f.bias\":", "\"ln_f.bias_unused\":");
    write_file(dir + "/model.safetensors.index.json", idx);
    // ln_f.bias_unused is not in its shard: that is the first error.
    expect_error([&] { Checkpoint::open(dir); }, kFormat, {"weight_map puts tensor 'ln_f.bias_unused'"});
  }
}

TEST_MAIN()
