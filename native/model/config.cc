#include "model/config.h"

#include <charconv>
#include <cmath>

#include "core/error.h"
#include "model/json_limits.h"

namespace gpt2::model {

namespace {

// Where a config comes from decides the error kind: a malformed file is a format error,
// a bad option passed by the caller is a TypeError / RangeError.
enum class Origin { File, Options };

struct Reporter {
  Origin origin;
  const std::string& source;
  [[noreturn]] void type(const std::string& msg) const {
    if (origin == Origin::File) throw_format_error(source + ": " + msg);
    throw_type_error(source + ": " + msg);
  }
  [[noreturn]] void range(const std::string& msg) const {
    if (origin == Origin::File) throw_format_error(source + ": " + msg);
    throw_range_error(source + ": " + msg);
  }
};

std::string describe(const JsonValue& v) {
  switch (v.type) {
    case JsonValue::Type::Null: return "null";
    case JsonValue::Type::Bool: return v.boolean ? "true" : "false";
    case JsonValue::Type::Number: {
      if (v.is_integer) return std::to_string(v.integer);
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof buf, v.number);
      return std::string(buf, r.ptr);
    }
    case JsonValue::Type::String: {
      std::string s = v.string.size() > 40 ? v.string.substr(0, 40) + "..." : v.string;
      return "\"" + s + "\"";
    }
    case JsonValue::Type::Array: return "an array";
    case JsonValue::Type::Object: return "an object";
  }
  return "?";
}

int64_t get_int(const JsonValue& v, std::string_view key, const Reporter& r) {
  if (!v.is_number() || !v.is_integer)
    r.type(std::string(key) + " must be an integer (got " + describe(v) + ")");
  return v.integer;
}

bool get_bool(const JsonValue& v, std::string_view key, const Reporter& r) {
  if (!v.is_bool()) r.type(std::string(key) + " must be true or false (got " + describe(v) + ")");
  return v.boolean;
}

struct Presence {
  bool bos = false, eos = false, n_inner = false;
};

// The value of the first of `keys` present in `obj`; two present keys must agree.
const JsonValue* find_aliased(const JsonValue& obj, std::initializer_list<std::string_view> keys, const Reporter& r) {
  const JsonValue* found = nullptr;
  std::string_view found_key;
  for (auto key : keys) {
    const JsonValue* v = obj.find(key);
    if (!v) continue;
    if (found) {
      bool same = found->type == v->type && found->is_integer == v->is_integer && found->integer == v->integer &&
                  found->number == v->number;
      if (!same)
        r.type(std::string(found_key) + " (" + describe(*found) + ") and " + std::string(key) + " (" + describe(*v) +
               ") disagree");
    } else {
      found = v;
      found_key = key;
    }
  }
  return found;
}

bool is_known_key(std::string_view k) {
  static constexpr std::string_view kKeys[] = {
      "vocab_size", "n_positions", "max_position_embeddings", "n_ctx", "n_embd", "hidden_size", "n_layer",
      "num_hidden_layers", "n_head", "num_attention_heads", "n_inner", "activation_function", "layer_norm_epsilon",
      "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "tie_word_embeddings",
      "bos_token_id", "eos_token_id", "model_type"};
  for (auto key : kKeys)
    if (key == k) return true;
  return false;
}

// Applies the keys present in `obj` to `cfg`.
Presence apply(GPT2Config& cfg, const JsonValue& obj, const Reporter& r, bool reject_unknown) {
  if (!obj.is_object()) r.type("must be a JSON object (got " + describe(obj) + ")");
  if (reject_unknown)
    for (const auto& m : obj.members)
      if (!is_known_key(m.first)) r.type("unknown config field '" + m.first + "'");
  // Duplicate keys would make "first match wins" surprising: reject them.
  for (size_t i = 0; i < obj.members.size(); i++)
    if (is_known_key(obj.members[i].first))
      for (size_t j = i + 1; j < obj.members.size(); j++)
        if (obj.members[j].first == obj.members[i].first) r.type("duplicate key '" + obj.members[i].first + "'");

  Presence p;
  if (auto* v = obj.find("model_type")) {
    if (!v->is_string()) r.type("model_type must be a string (got " + describe(*v) + ")");
    cfg.model_type = v->string;
  }
  if (auto* v = obj.find("vocab_size")) cfg.vocab_size = get_int(*v, "vocab_size", r);
  if (auto* v = find_aliased(obj, {"n_positions", "max_position_embeddings"}, r))
    cfg.n_positions = get_int(*v, "n_positions", r);
  else if (auto* ctx = obj.find("n_ctx"))  // legacy configs: n_ctx was the context size
    cfg.n_positions = get_int(*ctx, "n_ctx", r);
  if (auto* v = find_aliased(obj, {"n_embd", "hidden_size"}, r)) cfg.n_embd = get_int(*v, "n_embd", r);
  if (auto* v = find_aliased(obj, {"n_layer", "num_hidden_layers"}, r)) cfg.n_layer = get_int(*v, "n_layer", r);
  if (auto* v = find_aliased(obj, {"n_head", "num_attention_heads"}, r)) cfg.n_head = get_int(*v, "n_head", r);
  if (auto* v = obj.find("n_inner")) {
    p.n_inner = true;
    cfg.n_inner = v->is_null() ? -1 : get_int(*v, "n_inner", r);
  }
  if (auto* v = obj.find("activation_function")) {
    if (!v->is_string()) r.type("activation_function must be a string (got " + describe(*v) + ")");
    auto act = cpu::activation_from_name(v->string);
    if (!act)
      r.type("unknown activation_function " + describe(*v) +
             " (supported: gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, relu, silu, swish, tanh)");
    cfg.activation = *act;
    cfg.activation_name = v->string;
  }
  if (auto* v = obj.find("layer_norm_epsilon")) {
    if (!v->is_number()) r.type("layer_norm_epsilon must be a number (got " + describe(*v) + ")");
    cfg.layer_norm_epsilon = v->number;
  }
  if (auto* v = obj.find("scale_attn_weights")) cfg.scale_attn_weights = get_bool(*v, "scale_attn_weights", r);
  if (auto* v = obj.find("scale_attn_by_inverse_layer_idx"))
    cfg.scale_attn_by_inverse_layer_idx = get_bool(*v, "scale_attn_by_inverse_layer_idx", r);
  if (auto* v = obj.find("reorder_and_upcast_attn"))
    cfg.reorder_and_upcast_attn = get_bool(*v, "reorder_and_upcast_attn", r);
  if (auto* v = obj.find("tie_word_embeddings")) cfg.tie_word_embeddings = get_bool(*v, "tie_word_embeddings", r);
  if (auto* v = obj.find("bos_token_id")) {
    p.bos = true;
    cfg.bos_token_id = v->is_null() ? -1 : get_int(*v, "bos_token_id", r);
  }
  if (auto* v = obj.find("eos_token_id")) {
    p.eos = true;
    cfg.eos_token_id = v->is_null() ? -1 : get_int(*v, "eos_token_id", r);
  }
  return p;
}

void check(const GPT2Config& c, const Reporter& r) {
  if (c.model_type != "gpt2")
    r.type("model_type is \"" + c.model_type.substr(0, 40) + "\"; only \"gpt2\" models are supported");
  auto in_range = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      r.range(std::string(name) + " (" + std::to_string(v) + ") must be between " + std::to_string(lo) + " and " +
              std::to_string(hi));
  };
  in_range("vocab_size", c.vocab_size, 1, kMaxVocabSize);
  in_range("n_positions", c.n_positions, 1, kMaxPositions);
  in_range("n_embd", c.n_embd, 1, kMaxEmbd);
  in_range("n_layer", c.n_layer, 1, kMaxLayers);
  in_range("n_head", c.n_head, 1, c.n_embd);
  if (c.n_embd % c.n_head != 0)
    r.range("n_head (" + std::to_string(c.n_head) + ") must divide n_embd (" + std::to_string(c.n_embd) + ")");
  in_range("n_inner", c.n_inner, 1, kMaxInner);
  if (!std::isfinite(c.layer_norm_epsilon) || c.layer_norm_epsilon <= 0 || c.layer_norm_epsilon > 1)
    r.range("layer_norm_epsilon (" + std::to_string(c.layer_norm_epsilon) + ") must be a positive number <= 1");
  auto act = cpu::activation_from_name(c.activation_name);
  if (!act || *act != c.activation)
    r.type("activation_function \"" + c.activation_name.substr(0, 40) + "\" is unknown or disagrees with activation");
  auto token = [&](const char* name, int64_t id) {
    if (id != -1 && (id < 0 || id >= c.vocab_size))
      r.range(std::string(name) + " (" + std::to_string(id) + ") must be below vocab_size (" +
              std::to_string(c.vocab_size) + ")");
  };
  token("bos_token_id", c.bos_token_id);
  token("eos_token_id", c.eos_token_id);
  const int64_t params = parameter_count(c);
  if (params > kMaxParameters)
    r.range("the model would have " + std::to_string(params) + " parameters (limit " +
            std::to_string(kMaxParameters) + ")");
}

GPT2Config finish(GPT2Config cfg, const Presence& p, const Reporter& r) {
  if (cfg.n_inner == -1) {
    if (cfg.n_embd < 1 || cfg.n_embd > kMaxEmbd) check(cfg, r);  // report n_embd, not a derived value
    cfg.n_inner = 4 * cfg.n_embd;
  }
  // transformers' defaults are 50256; a small custom vocabulary without the fields has none.
  if (!p.bos && cfg.bos_token_id >= cfg.vocab_size) cfg.bos_token_id = -1;
  if (!p.eos && cfg.eos_token_id >= cfg.vocab_size) cfg.eos_token_id = -1;
  check(cfg, r);
  return cfg;
}

}  // namespace

int64_t parameter_count(const GPT2Config& c) {
  // Validated bounds keep each term below 2^62; saturate anyway for unvalidated input.
  auto mul = [](int64_t a, int64_t b) {
    int64_t out;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out)) return INT64_MAX / 4;
    return out;
  };
  auto add = [](int64_t a, int64_t b) {
    int64_t out;
    if (__builtin_add_overflow(a, b, &out)) return INT64_MAX / 4;
    return out;
  };
  const int64_t E = c.n_embd, I = c.n_inner;
  int64_t block = add(add(mul(E, 3 * E), 3 * E), add(mul(E, E), E));          // attention
  block = add(block, add(add(mul(E, I), I), add(mul(I, E), E)));               // MLP
  block = add(block, 4 * E);                                                   // two LayerNorms
  int64_t total = add(mul(c.vocab_size, E), mul(c.n_positions, E));
  total = add(total, mul(block, c.n_layer));
  total = add(total, 2 * E);
  if (!c.tie_word_embeddings) total = add(total, mul(c.vocab_size, E));
  return total;
}

void validate_config(const GPT2Config& config, const std::string& source) {
  check(config, Reporter{Origin::File, source});
}

GPT2Config parse_config(std::string_view json_text, const std::string& source) {
  check_json_size(json_text, kMaxConfigBytes, kMaxConfigValues, source);
  JsonValue root = parse_json(json_text, source);
  Reporter r{Origin::File, source};
  GPT2Config cfg;  // transformers' GPT2Config() defaults
  cfg.n_inner = -1;
  Presence p = apply(cfg, root, r, /*reject_unknown=*/false);
  return finish(std::move(cfg), p, r);
}

GPT2Config config_with_overrides(const GPT2Config& base, const JsonValue& overrides, const std::string& source) {
  Reporter r{Origin::Options, source};
  GPT2Config cfg = base;
  const bool embd_changed = overrides.is_object() && (overrides.find("n_embd") || overrides.find("hidden_size"));
  Presence p = apply(cfg, overrides, r, /*reject_unknown=*/true);
  // A preset's n_inner is 4 * its n_embd: keep that relation when only n_embd changes.
  if (!p.n_inner && embd_changed && base.n_inner == 4 * base.n_embd) cfg.n_inner = -1;
  return finish(std::move(cfg), p, r);
}

GPT2Config preset_config(std::string_view name) {
  for (std::string_view prefix : {"openai-community/", "distilbert/"})
    if (name.substr(0, prefix.size()) == prefix) name.remove_prefix(prefix.size());
  GPT2Config c;  // gpt2 small
  if (name == "gpt2") {
  } else if (name == "gpt2-medium") {
    c.n_embd = 1024, c.n_layer = 24, c.n_head = 16;
  } else if (name == "gpt2-large") {
    c.n_embd = 1280, c.n_layer = 36, c.n_head = 20;
  } else if (name == "gpt2-xl") {
    c.n_embd = 1600, c.n_layer = 48, c.n_head = 25;
  } else if (name == "distilgpt2") {
    c.n_layer = 6;
  } else {
    std::string shown(name.substr(0, 60));
    throw_type_error("unknown model preset \"" + shown +
                     "\" (known: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2)");
  }
  c.n_inner = 4 * c.n_embd;
  return c;
}

std::string config_to_json(const GPT2Config& c) {
  auto num = [](double v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, r.ptr);
    return s;
  };
  auto id = [](int64_t v) { return v < 0 ? std::string("null") : std::to_string(v); };
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  std::string activation;  // names are from a fixed list, but escape defensively anyway
  for (char ch : c.activation_name)
    if (ch != '"' && ch != '\\' && static_cast<unsigned char>(ch) >= 0x20) activation += ch;
  std::string out = "{";
  out += "\"model_type\":\"gpt2\"";
  out += ",\"vocab_size\":" + std::to_string(c.vocab_size);
  out += ",\"n_positions\":" + std::to_string(c.n_positions);
  out += ",\"n_embd\":" + std::to_string(c.n_embd);
  out += ",\"n_layer\":" + std::to_string(c.n_layer);
  out += ",\"n_head\":" + std::to_string(c.n_head);
  out += ",\"n_inner\":" + std::to_string(c.n_inner);
  out += ",\"activation_function\":\"" + activation + "\"";
  out += ",\"layer_norm_epsilon\":" + num(c.layer_norm_epsilon);
  out += ",\"scale_attn_weights\":" + b(c.scale_attn_weights);
  out += ",\"scale_attn_by_inverse_layer_idx\":" + b(c.scale_attn_by_inverse_layer_idx);
  out += ",\"reorder_and_upcast_attn\":" + b(c.reorder_and_upcast_attn);
  out += ",\"tie_word_embeddings\":" + b(c.tie_word_embeddings);
  out += ",\"bos_token_id\":" + id(c.bos_token_id);
  out += ",\"eos_token_id\":" + id(c.eos_token_id);
  out += "}";
  return out;
}

void check_token_ids(const int32_t* ids, int64_t n, int64_t vocab_size, const std::string& where) {
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= vocab_size)
      throw_range_error(where + "position " + std::to_string(i) + ": token id " + std::to_string(ids[i]) +
                        " is out of range (vocab_size " + std::to_string(vocab_size) + ")");
}

}  // namespace gpt2::model
