// Seeded mutation fuzzing of the checkpoint loader: safetensors files (the fixtures'
// and small synthetic ones), config.json and model.safetensors.index.json are mutated
// (bit flips, byte insertions/deletions, truncations, header-length edits, and header
// JSON edits: huge/negative numbers, overlapping or out-of-range offsets, wrong dtypes,
// duplicated entries, deep nesting) and parsed. The property: parsing either succeeds
// with views that lie inside the buffer and agree with their dtype/shape (and every
// weight can be read), or throws gpt2::Error. Anything else (another exception, a crash,
// an out-of-bounds read under GPT2_TEST_SANITIZE=1) fails.
//
// Time-bounded: GPT2_FUZZ_SECONDS (default 15). GPT2_FUZZ_SEED picks the seed (default 1);
// every iteration derives its own RNG from (seed, iteration), so a failure report
// "iteration N" replays with GPT2_FUZZ_ONLY=N. The failing input is written to /tmp.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "safetensors_writer.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::model;
using namespace gpt2::test;

namespace {

std::string fixtures() {
  const char* root = std::getenv("GPT2_ROOT");
  return std::string(root ? root : ".") + "/../shared/fixtures";
}

double fuzz_seconds() {
  const char* s = std::getenv("GPT2_FUZZ_SECONDS");
  double v = s ? std::atof(s) : 15.0;
  return v > 0 ? v : 15.0;
}

uint64_t fuzz_seed() {
  const char* s = std::getenv("GPT2_FUZZ_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 1;
}

long fuzz_only() {
  const char* s = std::getenv("GPT2_FUZZ_ONLY");
  return s ? std::atol(s) : -1;
}

using Rng = std::mt19937_64;

uint64_t pick(Rng& rng, uint64_t n) { return n ? rng() % n : 0; }

// Numbers that probe the validation edges.
std::string interesting_number(Rng& rng, uint64_t file_size) {
  static const char* fixed[] = {"0", "1", "-1", "2", "3", "4", "7", "8", "255", "256", "65535", "65536",
                                "2147483647", "2147483648", "4294967295", "4294967296", "-2147483648",
                                "9007199254740993", "9223372036854775807", "-9223372036854775808",
                                "9223372036854775808", "18446744073709551615", "18446744073709551616",
                                "1e999", "-0", "0.5", "1e3", "100000000", "4611686018427387904"};
  switch (pick(rng, 4)) {
    case 0: return fixed[pick(rng, std::size(fixed))];
    case 1: return std::to_string(file_size + pick(rng, 16) - 8);
    case 2: return std::to_string(int64_t(pick(rng, 1u << 20)) - 1024);
    default: return std::to_string(uint64_t{1} << pick(rng, 64));
  }
}

// Positions of number tokens and string tokens outside/inside strings of a JSON text
// (approximate scan: good enough to aim edits at, the parser decides what is valid).
struct Tokens {
  std::vector<std::pair<size_t, size_t>> numbers;  // [begin, end)
  std::vector<std::pair<size_t, size_t>> strings;  // including quotes
  std::vector<std::pair<size_t, size_t>> arrays;   // '[' ... matching ']'
  std::vector<std::pair<size_t, size_t>> objects;  // '{' ... matching '}'
};

Tokens scan(const std::string& s) {
  Tokens t;
  std::vector<std::pair<char, size_t>> stack;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != '"') j += (s[j] == '\\') ? 2 : 1;
      if (j >= s.size()) break;
      t.strings.push_back({i, j + 1});
      i = j;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i + 1;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == 'e' ||
                              s[j] == 'E' || s[j] == '+' || s[j] == '-'))
        j++;
      t.numbers.push_back({i, j});
      i = j - 1;
    } else if (c == '[' || c == '{') {
      stack.push_back({c, i});
    } else if ((c == ']' || c == '}') && !stack.empty()) {
      auto [open, at] = stack.back();
      stack.pop_back();
      if (open == '[' && c == ']') t.arrays.push_back({at, i + 1});
      if (open == '{' && c == '}') t.objects.push_back({at, i + 1});
    }
  }
  return t;
}

// One structural edit of a JSON text.
std::string mutate_json(Rng& rng, std::string s, uint64_t file_size) {
  Tokens t = scan(s);
  auto replace = [&](std::pair<size_t, size_t> r, const std::string& with) {
    s.replace(r.first, r.second - r.first, with);
  };
  switch (pick(rng, 12)) {
    case 0:
    case 1:
    case 2:  // a number -> an interesting number
      if (!t.numbers.empty()) replace(t.numbers[pick(rng, t.numbers.size())], interesting_number(rng, file_size));
      break;
    case 3: {  // a string -> a dtype name, garbage, or another string of the file
      static const char* words[] = {"\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"BOOL\"", "\"F8_E4M3\"", "\"F31\"",
                                    "\"\"", "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
                                    "\"h.0.attn.bias\"", "\"../x\"", "\"transformer.wte.weight\"", "\"wte.weight\"",
                                    "\"gelu_magic\"", "\"\\u0000\"", "null", "1", "[]", "{}"};
      if (t.strings.empty()) break;
      auto r = t.strings[pick(rng, t.strings.size())];
      if (pick(rng, 2)) replace(r, words[pick(rng, std::size(words))]);
      else {
        auto o = t.strings[pick(rng, t.strings.size())];
        replace(r, s.substr(o.first, o.second - o.first));
      }
      break;
    }
    case 4: {  // an array -> a hostile shape / offsets
      static const char* arrays[] = {"[]", "[0]", "[-1]", "[1,-1]", "[0,0]", "[4294967296,4294967296,4294967296]",
                                     "[9223372036854775807,2]", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "[0,4,8]",
                                     "[\"a\"]", "[1.5]", "[[1]]", "[null]", "[0,18446744073709551615]"};
      if (t.arrays.empty()) break;
      replace(t.arrays[pick(rng, t.arrays.size())], arrays[pick(rng, std::size(arrays))]);
      break;
    }
    case 5: {  // copy one array over another (offsets overlap, shapes disagree)
      if (t.arrays.size() < 2) break;
      auto a = t.arrays[pick(rng, t.arrays.size())];
      auto b = t.arrays[pick(rng, t.arrays.size())];
      std::string with = s.substr(b.first, b.second - b.first);
      replace(a, with);
      break;
    }
    case 6: {  // duplicate an object member (duplicate tensor names)
      if (t.objects.size() < 2 || t.strings.empty()) break;
      auto o = t.objects[pick(rng, t.objects.size() - 1)];  // not the outermost (last closed)
      // Find the key just before this object.
      size_t colon = s.rfind(':', o.first);
      size_t qend = colon == std::string::npos ? std::string::npos : s.rfind('"', colon);
      size_t qbeg = qend == std::string::npos || qend == 0 ? std::string::npos : s.rfind('"', qend - 1);
      if (qbeg == std::string::npos) break;
      std::string member = s.substr(qbeg, o.second - qbeg);
      size_t last = s.rfind('}');
      if (last != std::string::npos) s.insert(last, "," + member);
      break;
    }
    case 7: {  // deep nesting
      size_t depth = 100 + pick(rng, 100);
      std::string open, close;
      for (size_t i = 0; i < depth; i++) open += pick(rng, 2) ? "[" : "{\"k\":";
      for (size_t i = open.size(); i-- > 0;)
        if (open[i] == '[') close += "]";
        else if (open[i] == '{') close += "}";
      std::string v = open + "1" + close;
      if (!t.numbers.empty()) replace(t.numbers[pick(rng, t.numbers.size())], v);
      break;
    }
    case 8: {  // delete a range
      if (s.empty()) break;
      size_t at = pick(rng, s.size());
      s.erase(at, 1 + pick(rng, 16));
      break;
    }
    case 9: {  // insert JSON punctuation / junk
      static const char* junk[] = {",", ":", "{", "}", "[", "]", "\"", "\\", "\x80", "\xff", "0", "-", "e", " ",
                                   "\"\\ud800\"", "nul", "true"};
      s.insert(pick(rng, s.size() + 1), junk[pick(rng, std::size(junk))]);
      break;
    }
    case 10: {  // swap two numbers (begin/end swaps, offsets of other tensors)
      if (t.numbers.size() < 2) break;
      auto a = t.numbers[pick(rng, t.numbers.size())];
      auto b = t.numbers[pick(rng, t.numbers.size())];
      if (a.first > b.first) std::swap(a, b);
      if (a.second > b.first) break;
      std::string na = s.substr(a.first, a.second - a.first), nb = s.substr(b.first, b.second - b.first);
      s.replace(b.first, b.second - b.first, na);
      s.replace(a.first, a.second - a.first, nb);
      break;
    }
    default: {  // remove an object member's value (missing dtype/shape/offsets)
      for (const char* key : {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\""}) {
        size_t at = s.find(key, pick(rng, s.size() + 1));
        if (at == std::string::npos) continue;
        s.replace(at, std::strlen(key), "\"x\"");
        break;
      }
    }
  }
  return s;
}

// Byte-level mutations anywhere in `bytes`, aimed at [0, focus) more often.
void mutate_bytes(Rng& rng, std::string& bytes, size_t focus) {
  const int edits = 1 + static_cast<int>(pick(rng, 4));
  for (int e = 0; e < edits && !bytes.empty(); e++) {
    const size_t span = (pick(rng, 4) && focus > 0 && focus <= bytes.size()) ? focus : bytes.size();
    const size_t at = pick(rng, span);
    switch (pick(rng, 5)) {
      case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << pick(rng, 8))); break;
      case 1: bytes[at] = static_cast<char>(pick(rng, 256)); break;
      case 2: bytes.insert(at, 1 + pick(rng, 8), static_cast<char>(pick(rng, 256))); break;
      case 3: bytes.erase(at, 1 + pick(rng, 8)); break;
      default: bytes.resize(pick(rng, bytes.size() + 1)); break;  // truncate
    }
  }
}

// Splits a safetensors file into (header text, data); false when it does not parse as one.
bool split(const std::string& bytes, std::string& header, std::string& data) {
  if (bytes.size() < 8) return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > bytes.size() - 8) return false;
  header = bytes.substr(8, n);
  data = bytes.substr(8 + n);
  return true;
}

std::string join(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; i++) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// A mutated safetensors file from `seed_file`.
std::string mutate_safetensors(Rng& rng, const std::string& seed_file) {
  std::string header, data;
  split(seed_file, header, data);
  std::string out;
  switch (pick(rng, 8)) {
    case 0:
    case 1:
    case 2:
    case 3: {  // JSON edits with a consistent length field
      int edits = 1 + static_cast<int>(pick(rng, 3));
      for (int i = 0; i < edits; i++) header = mutate_json(rng, header, data.size());
      out = join(header, data);
      break;
    }
    case 4: {  // JSON edit, then byte noise
      out = join(mutate_json(rng, header, data.size()), data);
      mutate_bytes(rng, out, 8 + header.size());
      break;
    }
    case 5: {  // length field edits
      out = seed_file;
      uint64_t n = header.size();
      switch (pick(rng, 4)) {
        case 0: n += pick(rng, 17) - 8; break;
        case 1: n = rng(); break;
        case 2: n = seed_file.size() - 8 + pick(rng, 3); break;
        default: n = 100000000 + pick(rng, 3) - 1; break;
      }
      for (int i = 0; i < 8; i++) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
      break;
    }
    case 6: {  // data section changes size (offsets no longer fit or leave a gap)
      std::string d = data;
      if (pick(rng, 2) && !d.empty()) d.resize(pick(rng, d.size()));
      else d.append(pick(rng, 64), '\x7f');
      out = join(header, d);
      break;
    }
    default:
      out = seed_file;
      mutate_bytes(rng, out, 8 + header.size());
  }
  return out;
}

// The property for a parsed file: every view inside the buffer, sizes consistent, no
// overlaps; every weight convertible (which reads every byte of it).
void check_views(const SafetensorsFile& f, const uint8_t* base, size_t size) {
  std::vector<std::pair<const uint8_t*, size_t>> ranges;
  std::vector<float> scratch;
  for (const TensorView& t : f.tensors()) {
    const uint8_t* p = static_cast<const uint8_t*>(t.data);
    if (t.nbytes > 0) {
      CHECK(p >= base && p <= base + size && t.nbytes <= static_cast<size_t>(base + size - p));
      ranges.push_back({p, t.nbytes});
    }
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      CHECK(d >= 0);
      n *= static_cast<uint64_t>(d);
    }
    CHECK(n * dtype_size(t.dtype) == t.nbytes);
    if (dtype_is_weight(t.dtype) && n <= (1u << 24)) {
      scratch.resize(n);
      convert_to_f32(t, scratch.data());
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); i++) CHECK(ranges[i - 1].first + ranges[i - 1].second <= ranges[i].first);
}

struct Stats {
  long iterations = 0, accepted = 0, rejected = 0;
};

// Runs one case; gpt2::Error is an accepted outcome, anything else fails with a dump.
void run_case(const char* what, long iteration, const std::string& input, const std::function<void()>& fn,
              Stats& stats) {
  try {
    fn();
    stats.accepted++;
  } catch (const gpt2::Error&) {
    stats.rejected++;
  } catch (const std::exception& e) {
    const std::string dump = "/tmp/gpt2-fuzz-failure-" + std::to_string(iteration);
    write_file(dump, input);
    throw Failure(std::string(what) + " iteration " + std::to_string(iteration) + " (seed " +
                  std::to_string(fuzz_seed()) + ", input in " + dump + "): " + e.what());
  }
}

template <class Body>
void fuzz_loop(const char* name, double share, Body body) {
  const double seconds = fuzz_seconds() * share;
  const uint64_t seed = fuzz_seed();
  const long only = fuzz_only();
  const auto start = std::chrono::steady_clock::now();
  Stats stats;
  for (long it = 0;; it++) {
    if (only >= 0 && it != only) {
      if (it > only) break;
      continue;
    }
    if (only < 0 && (it & 7) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds)
      break;
    Rng rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(it) * 0xD1B54A32D192ED03ull +
            std::hash<std::string>{}(name));
    body(rng, it, stats);
    stats.iterations++;
  }
  std::printf("     %s: %ld iterations, %ld accepted, %ld rejected with gpt2::Error\n", name, stats.iterations,
              stats.accepted, stats.rejected);
  CHECK(stats.iterations > 0);
  CHECK(only >= 0 || stats.rejected > 0);
}

std::vector<std::string> seed_safetensors() {
  std::vector<std::string> seeds;
  // Small synthetic files of each layout (fast to copy), then the fixtures.
  const GPT2Config c = parse_config(small_config_json(), "c");
  seeds.push_back(build_safetensors(model_tensors(c, {})));
  seeds.push_back(build_safetensors(model_tensors(c, {.dtype = "F16", .prefixed = true, .lm_head = true})));
  seeds.push_back(build_safetensors(model_tensors(c, {.dtype = "BF16", .old_buffers = true})));
  for (const char* m : {"tiny_fp16", "tiny_prefixed_lmhead", "tiny"})
    seeds.push_back(read_file(fixtures() + "/models/" + m + "/model.safetensors"));
  return seeds;
}

}  // namespace

TEST(fuzz_safetensors_header) {
  const std::vector<std::string> seeds = seed_safetensors();
  fuzz_loop("safetensors", 0.55, [&](Rng& rng, long it, Stats& stats) {
    // Mostly the small seeds; the fixtures (up to 13 MB, slow to copy) now and then.
    const size_t which = pick(rng, 100) < 95 ? pick(rng, 3) : 3 + pick(rng, seeds.size() - 3);
    const std::string input = mutate_safetensors(rng, seeds[which]);
    run_case("safetensors", it, input, [&] {
      auto f = SafetensorsFile::from_bytes(input, "fuzz.safetensors");
      CHECK(f->file_size() == input.size() && f->data_offset() >= 8 && f->data_offset() <= input.size());
      check_views(*f, f->bytes() + f->data_offset(), input.size() - f->data_offset());
    }, stats);
  });
}

TEST(fuzz_config_json) {
  std::vector<std::string> seeds;
  for (const char* m : {"tiny", "tiny_fp16", "tiny_prefixed_lmhead"})
    seeds.push_back(read_file(fixtures() + "/models/" + m + "/config.json"));
  seeds.push_back(small_config_json(",\"tie_word_embeddings\":false,\"n_ctx\":4,\"eos_token_id\":null"));
  seeds.push_back(R"({"hidden_size":8,"num_attention_heads":2,"num_hidden_layers":1,"max_position_embeddings":8})");
  fuzz_loop("config.json", 0.15, [&](Rng& rng, long it, Stats& stats) {
    std::string text = seeds[pick(rng, seeds.size())];
    const int edits = 1 + static_cast<int>(pick(rng, 3));
    for (int e = 0; e < edits; e++) {
      if (pick(rng, 4) == 0) mutate_bytes(rng, text, text.size());
      else text = mutate_json(rng, text, 1024);
    }
    run_case("config.json", it, text, [&] {
      GPT2Config c = parse_config(text, "fuzz/config.json");
      // Accepted configs satisfy every invariant the engine sizes buffers from.
      CHECK(c.vocab_size >= 1 && c.vocab_size <= kMaxVocabSize && c.n_positions >= 1 &&
            c.n_positions <= kMaxPositions && c.n_embd >= 1 && c.n_embd <= kMaxEmbd && c.n_layer >= 1 &&
            c.n_layer <= kMaxLayers && c.n_head >= 1 && c.n_embd % c.n_head == 0 && c.n_inner >= 1 &&
            c.n_inner <= kMaxInner && parameter_count(c) <= kMaxParameters);
      CHECK(c.layer_norm_epsilon > 0 && c.layer_norm_epsilon <= 1);
      CHECK(c.eos_token_id >= -1 && c.eos_token_id < c.vocab_size);
      CHECK(c.bos_token_id >= -1 && c.bos_token_id < c.vocab_size);
      // Overrides take the same path with stricter keys.
      JsonValue v = parse_json(text, "fuzz");
      if (v.is_object()) {
        try {
          config_with_overrides(preset_config("gpt2"), v, "fuzz overrides");
        } catch (const gpt2::Error&) {
        }
      }
      GPT2Config back = parse_config(config_to_json(c), "round trip");
      CHECK(back.n_embd == c.n_embd && back.n_inner == c.n_inner && back.eos_token_id == c.eos_token_id);
    }, stats);
  });
}

// Whole folders through Checkpoint::open (mmap path, index.json, key canonicalisation,
// validate and reading every weight).
TEST(fuzz_checkpoint_folders) {
  TempDir tmp;
  const std::string config = small_config_json();
  const GPT2Config c = parse_config(config, "c");
  const std::string single = build_safetensors(model_tensors(c, {.prefixed = true, .old_buffers = true}));
  const std::string sharded_dir = tmp.sub("sharded_seed");
  write_model_folder(sharded_dir, config, {.shards = 2});
  const std::string index = read_file(sharded_dir + "/model.safetensors.index.json");
  const std::string shard1 = read_file(sharded_dir + "/model-00001-of-00002.safetensors");
  const std::string shard2 = read_file(sharded_dir + "/model-00002-of-00002.safetensors");
  const std::string dir = tmp.sub("case");
  write_file(dir + "/config.json", config);
  fuzz_loop("checkpoint folders", 0.30, [&](Rng& rng, long it, Stats& stats) {
    std::filesystem::remove(dir + "/model.safetensors");
    std::filesystem::remove(dir + "/model.safetensors.index.json");
    std::string input;
    const uint64_t kind = pick(rng, 4);
    if (kind == 0) {  // single file
      input = mutate_safetensors(rng, single);
      write_file(dir + "/model.safetensors", input);
    } else {  // sharded: mutate the index or one shard
      std::string idx = index, s1 = shard1, s2 = shard2;
      if (kind == 1) idx = mutate_json(rng, idx, 64);
      else if (kind == 2) s1 = mutate_safetensors(rng, s1);
      else s2 = mutate_safetensors(rng, s2);
      input = kind == 1 ? idx : kind == 2 ? s1 : s2;
      write_file(dir + "/model.safetensors.index.json", idx);
      write_file(dir + "/model-00001-of-00002.safetensors", s1);
      write_file(dir + "/model-00002-of-00002.safetensors", s2);
    }
    const std::string cfg = pick(rng, 8) == 0 ? mutate_json(rng, config, 64) : config;
    write_file(dir + "/config.json", cfg);
    run_case("checkpoint", it, input, [&] {
      auto ck = Checkpoint::open(dir);
      ck->validate();
      std::vector<float> buf;
      for (const auto& [name, shape] : gpt2_tensor_shapes(ck->config())) {
        const TensorView& t = ck->tensor(name, shape);
        buf.resize(static_cast<size_t>(t.numel()));
        ck->read_f32(t, buf.data());
      }
      ck->release();
    }, stats);
  });
}

TEST_MAIN()
