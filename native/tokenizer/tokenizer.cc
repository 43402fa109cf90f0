#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <queue>
#include <sstream>
#include <sys/stat.h>

#include "core/error.h"
#include "core/json.h"
#include "tokenizer/pretokenize.h"

namespace gpt2::tokenizer {

// ---------------------------------------------------------------------------------
// bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100.. in order.

const std::array<uint32_t, 256>& byte_to_unicode() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; b++) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

int unicode_to_byte(uint32_t cp) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    const auto& fwd = byte_to_unicode();
    for (int b = 0; b < 256; b++) inv[fwd[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

namespace {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

inline uint64_t hash_bytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= uint64_t(p[i]) << (8 * i);
  h = (h ^ v) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

// First 8 bytes of a token or piece, zero padded.
inline uint64_t load_prefix(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  if (n >= 8) {
    std::memcpy(&v, p, 8);
  } else {
    for (size_t i = 0; i < n; i++) v |= uint64_t(p[i]) << (8 * i);
  }
  return v;
}

inline uint32_t whole_tag(uint64_t hash, size_t n) {
  return (static_cast<uint32_t>(hash >> 40) << 8) | static_cast<uint32_t>(n < 255 ? n : 255);
}

uint64_t table_size_for(size_t n) {
  uint64_t size = 16;
  while (size < n * 2 + 1) size <<= 1;
  return size;
}

// Decodes one UTF-8 code point of a JSON string (already validated by the parser).
uint32_t next_code_point(const std::string& s, size_t& i) {
  uint8_t b0 = static_cast<uint8_t>(s[i]);
  int len = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
  uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (int k = 1; k < len && i + k < s.size(); k++) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

// Token text in the byte-level alphabet -> its bytes. False when a character is not
// in the alphabet.
bool byte_level_decode(const std::string& s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    int b = unicode_to_byte(next_code_point(s, i));
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_io_error(path + ": cannot open file: " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw_io_error(path + ": read failed");
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;  // 16M tokens: far beyond any real vocabulary

}  // namespace

// ---------------------------------------------------------------------------------
// Word cache: pieces that need real BPE work (not a single vocabulary token), with
// their ids. One direct-mapped table per thread, so lookups take no lock and threads
// never contend; entries are tagged with the tokenizer's unique instance id, so a
// thread switching tokenizers (or a new tokenizer at a freed address) never sees
// another's results.

namespace {

std::atomic<uint64_t> next_instance_id{1};

struct CacheEntry {
  uint64_t instance;  // 0 = empty
  uint64_t hash;
  uint8_t key_len;
  uint8_t n_ids;
  char key[46];
  uint32_t ids[16];
};
constexpr size_t kCacheEntries = 8192;  // 1 MB per thread
constexpr size_t kCacheMaxKey = sizeof(CacheEntry::key);
constexpr size_t kCacheMaxIds = sizeof(CacheEntry::ids) / sizeof(uint32_t);

CacheEntry* thread_cache() {
  thread_local std::unique_ptr<CacheEntry[]> cache(new CacheEntry[kCacheEntries]());
  return cache.get();
}

}  // namespace

Tokenizer::Tokenizer() : instance_id_(next_instance_id.fetch_add(1)) {}
Tokenizer::~Tokenizer() = default;

// ---------------------------------------------------------------------------------
// Loading.

struct Tokenizer::Builder {
  std::unique_ptr<Tokenizer> t{new Tokenizer()};
  std::vector<std::string> bytes_of;        // by id; empty + !present for gaps
  std::vector<uint8_t> present;
  std::unordered_map<std::string, uint32_t> id_of_text;  // vocabulary text (byte-level alphabet) -> id
  struct Merge {
    uint32_t a, b, merged;
  };
  std::vector<Merge> merges;

  template <class Where>  // Where: () -> std::string, called only on error
  void add_token(const std::string& text, const std::string& bytes, int64_t id, const Where& where) {
    if (id < 0 || id > kMaxTokenId)
      throw_format_error(where() + ": token id " + std::to_string(id) + " is out of range [0, " +
                         std::to_string(kMaxTokenId) + "]");
    if (static_cast<size_t>(id) >= bytes_of.size()) {
      bytes_of.resize(id + 1);
      present.resize(id + 1, 0);
    }
    if (present[id]) throw_format_error(where() + ": duplicate token id " + std::to_string(id));
    if (!id_of_text.emplace(text, static_cast<uint32_t>(id)).second)
      throw_format_error(where() + ": duplicate token \"" + text + "\"");
    present[id] = 1;
    bytes_of[id] = bytes;
  }

  // vocab: JSON object text -> id. added: tokens whose content is raw text (not the
  // byte-level alphabet) are allowed to fail byte-level decoding.
  void load_vocab(const JsonValue& vocab, std::string_view src, const std::string& name,
                  const std::unordered_map<std::string, int64_t>& added) {
    if (!vocab.is_object())
      throw_format_error(name + ": the vocabulary must be a JSON object (token -> id) at " + json_position(src, vocab.offset));
    std::string bytes;
    for (const auto& [text, value] : vocab.members) {
      // The position is only computed for an error: json_position scans the text.
      auto where = [&] { return name + ": token \"" + text + "\" at " + json_position(src, value.offset); };
      if (!value.is_number() || !value.is_integer)
        throw_format_error(where() + ": the id must be an integer");
      if (!byte_level_decode(text, bytes)) {
        if (!added.count(text))
          throw_format_error(where() + ": the token has a character outside GPT-2's byte-level alphabet");
        bytes = text;
      }
      add_token(text, bytes, value.integer, where);
    }
  }

  template <class Where>  // Where: () -> std::string, called only on error
  void add_merge(const std::string& a, const std::string& b, const Where& where) {
    auto ia = id_of_text.find(a);
    if (ia == id_of_text.end()) throw_format_error(where() + ": unknown token \"" + a + "\" in merge");
    auto ib = id_of_text.find(b);
    if (ib == id_of_text.end()) throw_format_error(where() + ": unknown token \"" + b + "\" in merge");
    auto im = id_of_text.find(a + b);
    if (im == id_of_text.end())
      throw_format_error(where() + ": the merged token \"" + a + b + "\" is not in the vocabulary");
    merges.push_back({ia->second, ib->second, im->second});
  }

  void load_merges_txt(std::string_view txt, const std::string& name) {
    size_t pos = 0, line_no = 0;
    bool saw_blank = false;
    size_t blank_line = 0;
    while (pos < txt.size()) {
      size_t nl = txt.find('\n', pos);
      if (nl == std::string_view::npos) nl = txt.size();
      std::string_view line = txt.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line_no == 1 && line.substr(0, 8) == "#version") continue;
      if (line.empty()) {
        if (!saw_blank) blank_line = line_no;
        saw_blank = true;
        continue;
      }
      auto where = [&] { return name + ": line " + std::to_string(line_no); };
      if (saw_blank) throw_format_error(name + ": line " + std::to_string(blank_line) + ": empty line between merges");
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size() ||
          line.find(' ', sp + 1) != std::string_view::npos)
        throw_format_error(where() + ": expected two tokens separated by one space, got \"" + std::string(line) + "\"");
      add_merge(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)), where);
    }
  }

  std::unique_ptr<Tokenizer> finish(std::vector<Special> specials, const std::string& name) {
    Tokenizer& k = *t;
    if (bytes_of.empty()) throw_format_error(name + ": the vocabulary is empty");
    k.vocab_size_ = static_cast<uint32_t>(bytes_of.size());
    k.token_offset_.resize(bytes_of.size() + 1);
    size_t total = 0;
    for (const auto& b : bytes_of) total += b.size();
    k.token_arena_.reserve(total);
    for (size_t i = 0; i < bytes_of.size(); i++) {
      k.token_offset_[i] = static_cast<uint32_t>(k.token_arena_.size());
      k.token_arena_ += bytes_of[i];
    }
    k.token_offset_[bytes_of.size()] = static_cast<uint32_t>(k.token_arena_.size());
    k.token_present_ = std::move(present);

    // Every byte needs its own token, or some texts could not be encoded.
    const auto& b2u = byte_to_unicode();
    for (int b = 0; b < 256; b++) {
      std::string text;
      uint32_t cp = b2u[b];
      if (cp < 0x80) {
        text.push_back(static_cast<char>(cp));
      } else {
        text.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        text.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      auto it = id_of_text.find(text);
      if (it == id_of_text.end()) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", b);
        throw_format_error(name + ": the vocabulary has no token for the byte " + hex + " (\"" + text + "\")");
      }
      k.byte_token_[b] = it->second;
    }

    // Merge table: (a, b) -> (rank, merged).
    uint64_t size = table_size_for(merges.size());
    k.merges_.assign(size, MergeSlot{kEmptyKey, 0, 0});
    k.merge_mask_ = size - 1;
    for (size_t r = 0; r < merges.size(); r++) {
      uint64_t key = (uint64_t(merges[r].a) << 32) | merges[r].b;
      uint64_t i = mix64(key) & k.merge_mask_;
      while (k.merges_[i].key != kEmptyKey && k.merges_[i].key != key) i = (i + 1) & k.merge_mask_;
      if (k.merges_[i].key == key) {
        throw_format_error(name + ": duplicate merge \"" + text_of(merges[r].a) + " " + text_of(merges[r].b) +
                           "\" (merge " + std::to_string(r + 1) + ")");
      }
      k.merges_[i] = MergeSlot{key, static_cast<uint32_t>(r), merges[r].merged};
    }

    k.merged_by_rank_.resize(merges.size());
    for (size_t r = 0; r < merges.size(); r++) k.merged_by_rank_[r] = merges[r].merged;
    k.byte_pair_rank_.assign(256 * 256, kNoRank);
    for (int b0 = 0; b0 < 256; b0++)
      for (int b1 = 0; b1 < 256; b1++) k.byte_pair_rank_[b0 * 256 + b1] = k.merge_rank(k.byte_token_[b0], k.byte_token_[b1]);

    // Whole-piece fast path: tokens that BPE produces from their own bytes as themselves.
    k.specials_ = std::move(specials);
    std::vector<uint8_t> is_special(k.vocab_size_, 0);
    for (const auto& s : k.specials_) is_special[s.id] = 1;
    uint64_t wsize = table_size_for(k.vocab_size_);
    k.whole_slots_.assign(wsize, WholeSlot{0, 0, 0});
    k.whole_mask_ = wsize - 1;
    std::vector<uint32_t> ids;
    for (uint32_t id = 0; id < k.vocab_size_; id++) {
      if (!k.token_present_[id] || is_special[id]) continue;
      std::string_view bytes = k.token_bytes(id);
      if (bytes.empty()) continue;
      const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
      ids.clear();
      k.bpe_uncached(p, bytes.size(), ids);
      if (ids.size() != 1 || ids[0] != id) continue;
      uint64_t h = hash_bytes(p, bytes.size());
      uint64_t i = h & k.whole_mask_;
      while (k.whole_slots_[i].id_plus_one != 0) i = (i + 1) & k.whole_mask_;
      k.whole_slots_[i] = WholeSlot{load_prefix(p, bytes.size()), id + 1, whole_tag(h, bytes.size())};
    }

    auto eos = std::find_if(k.specials_.begin(), k.specials_.end(),
                            [](const Special& s) { return s.content == "<|endoftext|>"; });
    if (eos != k.specials_.end()) {
      k.eos_token_id_ = eos->id;
    } else if (!k.specials_.empty()) {
      k.eos_token_id_ = k.specials_.front().id;
    }
    return std::move(t);
  }

  std::string text_of(uint32_t id) const {
    for (const auto& [text, i] : id_of_text)
      if (i == id) return text;
    return "?";
  }
};

std::shared_ptr<const Tokenizer> Tokenizer::from_vocab_merges_text(std::string_view vocab_json, std::string_view merges_txt,
                                                                   const std::string& vocab_name,
                                                                   const std::string& merges_name) {
  Builder b;
  JsonValue vocab = parse_json(vocab_json, vocab_name);
  b.load_vocab(vocab, vocab_json, vocab_name, {});
  b.load_merges_txt(merges_txt, merges_name);
  std::vector<Special> specials;
  auto eot = b.id_of_text.find("<|endoftext|>");
  if (eot != b.id_of_text.end()) specials.push_back({"<|endoftext|>", eot->second});
  return std::shared_ptr<const Tokenizer>(b.finish(std::move(specials), vocab_name));
}

std::shared_ptr<const Tokenizer> Tokenizer::from_tokenizer_json_text(std::string_view src, const std::string& name) {
  JsonValue root = parse_json(src, name);
  auto at = [&](const JsonValue& v) { return json_position(src, v.offset); };
  if (!root.is_object()) throw_format_error(name + ": expected a JSON object at " + at(root));
  const JsonValue* model = root.find("model");
  if (!model || !model->is_object()) throw_format_error(name + ": missing \"model\" object at " + at(root));
  if (const JsonValue* type = model->find("type")) {
    if (!type->is_string() || type->string != "BPE")
      throw_format_error(name + ": model.type must be \"BPE\" at " + at(*type));
  }
  const JsonValue* vocab = model->find("vocab");
  if (!vocab) throw_format_error(name + ": missing model.vocab at " + at(*model));
  const JsonValue* merges = model->find("merges");
  if (!merges || !merges->is_array()) throw_format_error(name + ": missing model.merges array at " + at(*model));

  // Added tokens first: their content is raw text, and they may or may not be in the vocab.
  std::unordered_map<std::string, int64_t> added;
  std::vector<std::pair<std::string, const JsonValue*>> added_list;
  if (const JsonValue* list = root.find("added_tokens"); list && !list->is_null()) {
    if (!list->is_array()) throw_format_error(name + ": added_tokens must be an array at " + at(*list));
    for (const JsonValue& tok : list->items) {
      const JsonValue* id = tok.is_object() ? tok.find("id") : nullptr;
      const JsonValue* content = tok.is_object() ? tok.find("content") : nullptr;
      if (!id || !id->is_number() || !id->is_integer || !content || !content->is_string() || content->string.empty())
        throw_format_error(name + ": an added token needs an integer \"id\" and a non-empty \"content\" at " + at(tok));
      if (!added.emplace(content->string, id->integer).second)
        throw_format_error(name + ": duplicate added token \"" + content->string + "\" at " + at(tok));
      added_list.emplace_back(content->string, &tok);
    }
  }

  Builder b;
  b.load_vocab(*vocab, src, name, added);
  for (size_t i = 0; i < merges->items.size(); i++) {
    const JsonValue& m = merges->items[i];
    auto where = [&] { return name + ": model.merges[" + std::to_string(i) + "] at " + at(m); };
    if (m.is_string()) {
      const std::string& s = m.string;
      size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
        throw_format_error(where() + ": expected \"a b\", got \"" + s + "\"");
      b.add_merge(s.substr(0, sp), s.substr(sp + 1), where);
    } else if (m.is_array() && m.items.size() == 2 && m.items[0].is_string() && m.items[1].is_string()) {
      b.add_merge(m.items[0].string, m.items[1].string, where);
    } else {
      throw_format_error(where() + ": a merge must be \"a b\" or [\"a\", \"b\"]");
    }
  }
  std::vector<Special> specials;
  for (const auto& [content, tok] : added_list) {
    int64_t id = added.at(content);
    auto it = b.id_of_text.find(content);
    if (it != b.id_of_text.end()) {
      if (it->second != id)
        throw_format_error(name + ": added token \"" + content + "\" has id " + std::to_string(id) +
                           " but the vocabulary gives it " + std::to_string(it->second) + " at " + at(*tok));
    } else {
      b.add_token(content, content, id, [&] { return name + ": added token \"" + content + "\" at " + at(*tok); });
    }
    specials.push_back({content, static_cast<uint32_t>(id)});
  }
  return std::shared_ptr<const Tokenizer>(b.finish(std::move(specials), name));
}

std::shared_ptr<const Tokenizer> Tokenizer::from_files(const std::string& vocab_path, const std::string& merges_path) {
  std::string vocab = read_file(vocab_path);
  std::string merges = read_file(merges_path);
  return from_vocab_merges_text(vocab, merges, vocab_path, merges_path);
}

std::shared_ptr<const Tokenizer> Tokenizer::from_tokenizer_json(const std::string& path) {
  return from_tokenizer_json_text(read_file(path), path);
}

bool Tokenizer::dir_has_tokenizer(const std::string& dir) {
  return file_exists(dir + "/tokenizer.json") || file_exists(dir + "/vocab.json") || file_exists(dir + "/merges.txt");
}

std::shared_ptr<const Tokenizer> Tokenizer::from_dir(const std::string& dir) {
  if (file_exists(dir + "/tokenizer.json")) return from_tokenizer_json(dir + "/tokenizer.json");
  if (file_exists(dir + "/vocab.json") || file_exists(dir + "/merges.txt"))
    return from_files(dir + "/vocab.json", dir + "/merges.txt");
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) throw_io_error(dir + ": cannot open folder: " + std::strerror(errno));
  throw_io_error(dir + ": no tokenizer files (expected vocab.json + merges.txt, or tokenizer.json)");
}

std::shared_ptr<const Tokenizer> Tokenizer::gpt2(const std::string& asset_dir) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const Tokenizer>>* loaded =
      new std::unordered_map<std::string, std::shared_ptr<const Tokenizer>>();  // never freed: outlives every env
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded->find(asset_dir);
  if (it != loaded->end()) return it->second;
  auto t = from_files(asset_dir + "/vocab.json", asset_dir + "/merges.txt");
  loaded->emplace(asset_dir, t);
  return t;
}

// ---------------------------------------------------------------------------------
// Lookups.

inline const Tokenizer::MergeSlot* Tokenizer::find_merge(uint32_t a, uint32_t b) const {
  uint64_t key = (uint64_t(a) << 32) | b;
  uint64_t i = mix64(key) & merge_mask_;
  for (;;) {
    const MergeSlot& s = merges_[i];
    if (s.key == key) return &s;
    if (s.key == kEmptyKey) return nullptr;
    i = (i + 1) & merge_mask_;
  }
}

inline int64_t Tokenizer::find_whole(const uint8_t* p, size_t n, uint64_t hash) const {
  uint64_t i = hash & whole_mask_;
  const uint32_t tag = whole_tag(hash, n);
  const uint64_t prefix = load_prefix(p, n);
  for (;;) {
    const WholeSlot& slot = whole_slots_[i];
    if (slot.id_plus_one == 0) return -1;
    if (slot.tag_len == tag && slot.prefix == prefix) {
      uint32_t id = slot.id_plus_one - 1;
      if (n <= 8) return id;  // same length, same bytes
      uint32_t off = token_offset_[id];
      if (token_offset_[id + 1] - off == n && std::memcmp(token_arena_.data() + off + 8, p + 8, n - 8) == 0) return id;
    }
    i = (i + 1) & whole_mask_;
  }
}

std::string_view Tokenizer::token_bytes(uint32_t id) const {
  if (id >= vocab_size_) return {};
  return std::string_view(token_arena_.data() + token_offset_[id], token_offset_[id + 1] - token_offset_[id]);
}

int Tokenizer::special_index(std::string_view content) const {
  for (size_t i = 0; i < specials_.size(); i++)
    if (specials_[i].content == content) return static_cast<int>(i);
  return -1;
}

// ---------------------------------------------------------------------------------
// BPE.

void Tokenizer::bpe_uncached(const uint8_t* bytes, size_t n, std::vector<uint32_t>& out) const {
  if (n <= 64) {
    bpe_small(bytes, n, out);
  } else {
    bpe_large(bytes, n, out);
  }
}

// Short pieces: an array of parts and the rank of each adjacent pair; merge the
// lowest-ranked pair (leftmost on ties) until none is left. O(n^2), tiny n.
void Tokenizer::bpe_small(const uint8_t* bytes, size_t n, std::vector<uint32_t>& out) const {
  if (n > 64) {
    bpe_large(bytes, n, out);
    return;
  }
  uint32_t ids[64];
  uint32_t ranks[64];
  for (size_t i = 0; i < n; i++) ids[i] = byte_token_[bytes[i]];
  size_t m = n;
  for (size_t i = 0; i + 1 < m; i++) ranks[i] = byte_pair_rank_[bytes[i] * 256u + bytes[i + 1]];
  while (m > 1) {
    uint32_t best = kNoRank;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < m; i++) {
      if (ranks[i] < best) {
        best = ranks[i];
        bi = i;
      }
    }
    if (best == kNoRank) break;
    ids[bi] = merged_by_rank_[best];
    for (size_t i = bi + 1; i + 1 < m; i++) ids[i] = ids[i + 1];
    for (size_t i = bi + 1; i + 2 < m; i++) ranks[i] = ranks[i + 1];
    --m;
    if (bi + 1 < m) ranks[bi] = merge_rank(ids[bi], ids[bi + 1]);
    if (bi > 0) ranks[bi - 1] = merge_rank(ids[bi - 1], ids[bi]);
  }
  out.insert(out.end(), ids, ids + m);
}

// Long pieces (a 1 MB "word"): a doubly linked list of parts and a min-heap of
// candidate pairs keyed by (rank, position), with stale entries skipped. O(n log n).
void Tokenizer::bpe_large(const uint8_t* bytes, size_t n, std::vector<uint32_t>& out) const {
  struct Cand {
    uint32_t rank;
    uint32_t left;
    uint32_t a, b;  // ids of the pair when pushed, to detect stale entries
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::vector<uint32_t> ids(n), next(n), prev(n);
  std::vector<uint8_t> alive(n, 1);
  for (size_t i = 0; i < n; i++) {
    ids[i] = byte_token_[bytes[i]];
    next[i] = static_cast<uint32_t>(i + 1);
    prev[i] = static_cast<uint32_t>(i - 1);  // wraps for i = 0; never read there
  }
  std::vector<Cand> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap(std::greater<Cand>(), std::move(heap_storage));
  auto push = [&](uint32_t left) {
    uint32_t right = next[left];
    if (right >= n) return;
    uint32_t r = merge_rank(ids[left], ids[right]);
    if (r != kNoRank) heap.push(Cand{r, left, ids[left], ids[right]});
  };
  for (size_t i = 0; i + 1 < n; i++) push(static_cast<uint32_t>(i));
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    uint32_t left = c.left;
    if (!alive[left]) continue;
    uint32_t right = next[left];
    if (right >= n || ids[left] != c.a || ids[right] != c.b) continue;
    ids[left] = merged_by_rank_[c.rank];
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] < n) prev[next[right]] = left;
    if (left > 0) push(prev[left]);
    push(left);
  }
  for (uint32_t i = 0; i < n; i = next[i]) out.push_back(ids[i]);
}

void Tokenizer::encode_piece(const uint8_t* p, size_t n, uint64_t hash, std::vector<uint32_t>& out) const {
  if (n == 1) {
    out.push_back(byte_token_[p[0]]);
    return;
  }
  int64_t whole = find_whole(p, n, hash);
  if (whole >= 0) {
    out.push_back(static_cast<uint32_t>(whole));
    return;
  }
  if (n > kCacheMaxKey) {
    bpe_uncached(p, n, out);
    return;
  }
  CacheEntry& e = thread_cache()[(hash >> 24) & (kCacheEntries - 1)];
  if (e.instance == instance_id_ && e.hash == hash && e.key_len == n && std::memcmp(e.key, p, n) == 0) {
    out.insert(out.end(), e.ids, e.ids + e.n_ids);
    return;
  }
  size_t before = out.size();
  bpe_uncached(p, n, out);
  size_t produced = out.size() - before;
  if (produced <= kCacheMaxIds) {
    e.instance = instance_id_;
    e.hash = hash;
    e.key_len = static_cast<uint8_t>(n);
    e.n_ids = static_cast<uint8_t>(produced);
    std::memcpy(e.key, p, n);
    std::memcpy(e.ids, out.data() + before, produced * sizeof(uint32_t));
  }
}

void Tokenizer::encode_ordinary(std::string_view utf8, std::vector<uint32_t>& out) const {
  // (Grouping pieces to prefetch their table slots was measured slower: the hot slots
  // of a real text's frequent words are in cache anyway.)
  pretokenize(reinterpret_cast<const uint8_t*>(utf8.data()), utf8.size(), [&](const uint8_t* p, size_t n) {
    encode_piece(p, n, n > 1 ? hash_bytes(p, n) : 0, out);
  });
}

void Tokenizer::encode(std::string_view text, const AllowedSpecial& allowed, std::vector<uint32_t>& out) const {
  if (allowed.empty()) {
    encode_ordinary(text, out);
    return;
  }
  // Split at the earliest allowed special token (the longest one on ties); the text
  // between them is ordinary text.
  std::vector<size_t> next_at(allowed.size(), 0);
  std::vector<uint8_t> valid(allowed.size(), 0);
  size_t pos = 0;
  for (;;) {
    size_t best = std::string_view::npos, best_len = 0;
    uint32_t best_id = 0;
    for (size_t k = 0; k < allowed.size(); k++) {
      const Special& s = specials_[allowed[k]];
      if (!valid[k] || next_at[k] < pos) {
        next_at[k] = text.find(s.content, pos);
        valid[k] = 1;
      }
      size_t at = next_at[k];
      if (at == std::string_view::npos) continue;
      if (at < best || (at == best && s.content.size() > best_len)) {
        best = at;
        best_len = s.content.size();
        best_id = s.id;
      }
    }
    if (best == std::string_view::npos) {
      encode_ordinary(text.substr(pos), out);
      return;
    }
    encode_ordinary(text.substr(pos, best - pos), out);
    out.push_back(best_id);
    pos = best + best_len;
  }
}

void Tokenizer::decode_bytes(const uint32_t* ids, size_t n, std::string& out) const {
  for (size_t i = 0; i < n; i++) {
    uint32_t id = ids[i];
    if (id >= vocab_size_ || !token_present_[id])
      throw_range_error("token id " + std::to_string(id) + " at index " + std::to_string(i) +
                        " is not in the vocabulary (size " + std::to_string(vocab_size_) + ")");
    out.append(token_arena_.data() + token_offset_[id], token_offset_[id + 1] - token_offset_[id]);
  }
}

}  // namespace gpt2::tokenizer
