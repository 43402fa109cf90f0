// Scanner and BPE core: the pre-tokenizer against hand-checked splits of the regex, BPE
// (small and large paths agree), loading errors, and the fixture cases.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "tests/test_main.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;
using namespace gpt2::tokenizer;

static std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  pretokenize(reinterpret_cast<const uint8_t*>(s.data()), s.size(),
              [&](const uint8_t* p, size_t n) { out.emplace_back(reinterpret_cast<const char*>(p), n); });
  return out;
}

static std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "[" + x + "]";
  return s;
}

#define CHECK_SPLIT(text, expected) CHECK_MSG(join(split(text)) == (expected), join(split(text)))

TEST(pretokenize_matches_the_regex) {
  CHECK_SPLIT("Hello world", "[Hello][ world]");
  CHECK_SPLIT("I'm can't WE'LL 'S x'sy", "[I]['m][ can]['t][ WE]['][LL][ '][S][ x]['s][y]");
  CHECK_SPLIT("a  b", "[a][ ][ b]");
  CHECK_SPLIT("a \n b", "[a][ \n][ b]");
  CHECK_SPLIT("a\n\nb", "[a][\n][\n][b]");
  CHECK_SPLIT("x   ", "[x][   ]");
  CHECK_SPLIT(" 123abc!!'s", "[ 123][abc][!!'][s]");  // the other-run eats the apostrophe
  CHECK_SPLIT("  !", "[ ][ !]");
  CHECK_SPLIT("\t\tfoo", "[\t][\t][foo]");
  CHECK_SPLIT("\xC2\x85x", "[\xC2\x85][x]");        // U+0085 is White_Space
  CHECK_SPLIT(" \xEF\xBB\xBFx", "[ \xEF\xBB\xBF][x]");  // U+FEFF is not
  CHECK_SPLIT("\xE4\xBD\xA0\xE5\xA5\xBD 42", "[\xE4\xBD\xA0\xE5\xA5\xBD][ 42]");
  CHECK_SPLIT("a\xFF" "b", "[a][\xFF][b]");  // an invalid byte is one "other" piece
}

static std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static const std::string kFixtures = "../shared/fixtures/tokenizer";

TEST(fixture_cases) {
  auto t = Tokenizer::from_files(kFixtures + "/vocab.json", kFixtures + "/merges.txt");
  CHECK(t->vocab_size() == 50257);
  CHECK(t->eos_token_id() == 50256);
  std::string src = read(kFixtures + "/tokenizer_cases.json");
  JsonValue cases = parse_json(src, "tokenizer_cases.json");
  Tokenizer::AllowedSpecial all = {0};
  int n = 0;
  for (const JsonValue& c : cases.items) {
    const std::string& text = c.find("text")->string;
    std::vector<uint32_t> ids, ord;
    t->encode(text, all, ids);
    t->encode_ordinary(text, ord);
    std::vector<uint32_t> want, want_ord;
    for (const auto& v : c.find("ids")->items) want.push_back(static_cast<uint32_t>(v.integer));
    for (const auto& v : c.find("ids_ordinary")->items) want_ord.push_back(static_cast<uint32_t>(v.integer));
    CHECK_MSG(ids == want, c.find("id")->string);
    CHECK_MSG(ord == want_ord, c.find("id")->string);
    std::string back;
    t->decode_bytes(ids.data(), ids.size(), back);
    CHECK_MSG(back == text, c.find("id")->string);
    n++;
  }
  CHECK(n > 300);
}

TEST(bpe_heap_path_matches_array_path) {
  auto t = Tokenizer::gpt2("assets/gpt2");
  uint64_t seed = 12345;
  auto rnd = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(seed >> 33);
  };
  const char* alphabet = "etaoinshrdlucmfwypvbgkjqxz";
  for (int trial = 0; trial < 3000; trial++) {
    size_t n = 2 + rnd() % 63;
    std::string word;
    for (size_t i = 0; i < n; i++) word.push_back(alphabet[rnd() % (trial % 2 ? 26 : 4)]);
    if (trial % 7 == 0) word[rnd() % n] = static_cast<char>(rnd() % 256);
    const auto* p = reinterpret_cast<const uint8_t*>(word.data());
    std::vector<uint32_t> small, large;
    t->bpe_small(p, n, small);
    t->bpe_large(p, n, large);
    CHECK_MSG(small == large, word);
    std::string back;
    t->decode_bytes(large.data(), large.size(), back);
    CHECK(back == word);
  }
}

TEST(arbitrary_bytes_round_trip) {
  // Invalid UTF-8 never reaches us from V8, but the core must still be total: any bytes
  // encode, and decode back to the same bytes.
  auto t = Tokenizer::gpt2("assets/gpt2");
  uint64_t seed = 99;
  auto rnd = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(seed >> 33);
  };
  const uint8_t interesting[] = {' ', '\'', 's', 'a', '1', '\n', 0x80, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF, 0xA0, 0x85};
  Tokenizer::AllowedSpecial all = {0};
  for (int trial = 0; trial < 5000; trial++) {
    std::string s;
    size_t n = rnd() % 40;
    for (size_t i = 0; i < n; i++)
      s.push_back(static_cast<char>(rnd() % 3 ? interesting[rnd() % sizeof interesting] : rnd() % 256));
    if (trial % 50 == 0) s += "<|endoftext|>";
    std::vector<uint32_t> ids;
    t->encode(s, all, ids);
    std::string back;
    t->decode_bytes(ids.data(), ids.size(), back);
    CHECK_MSG(back == s, "round trip failed");
  }
}

static std::string error_of(const std::string& vocab, const std::string& merges) {
  try {
    Tokenizer::from_vocab_merges_text(vocab, merges, "vocab.json", "merges.txt");
  } catch (const Error& e) {
    CHECK(e.code() == code::kFileFormat);
    return e.what();
  }
  return "no error";
}

TEST(bad_files_name_file_and_position) {
  std::string vocab = read(kFixtures + "/vocab.json");
  std::string merges = read(kFixtures + "/merges.txt");
  std::string e = error_of("{\"a\": 1,\n \"b\" 2}", merges);
  CHECK_MSG(e.find("vocab.json") != std::string::npos && e.find("line 2") != std::string::npos, e);
  e = error_of(vocab, "#version: 0.2\n\xC4\xA0 t\nthis line is bad\n");
  CHECK_MSG(e.find("merges.txt: line 3") != std::string::npos, e);
  e = error_of(vocab, "#version: 0.2\nzzzzqq t\n");
  CHECK_MSG(e.find("merges.txt: line 2") != std::string::npos && e.find("unknown token") != std::string::npos, e);
  e = error_of("{\"a\": 1, \"b\": 1}", merges);
  CHECK_MSG(e.find("duplicate token id 1") != std::string::npos, e);
  e = error_of("{\"a\": -1}", merges);
  CHECK_MSG(e.find("out of range") != std::string::npos, e);
  e = error_of("{\"a\": 1}", "");
  CHECK_MSG(e.find("no token for the byte") != std::string::npos, e);
}

TEST(decode_out_of_range_names_index) {
  auto t = Tokenizer::gpt2("assets/gpt2");
  uint32_t ids[] = {15496, 50257};
  std::string out;
  try {
    t->decode_bytes(ids, 2, out);
    CHECK_MSG(false, "no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::RangeError);
    std::string m = e.what();
    CHECK_MSG(m.find("50257") != std::string::npos && m.find("index 1") != std::string::npos, m);
  }
}

TEST_MAIN()
