// GPT-2 byte-level BPE tokenizer (the original encoder.py / HF GPT2Tokenizer semantics):
//   1. pre-tokenize with 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      (a hand-written scanner over code points, see pretokenize.h);
//   2. each piece's bytes start as byte tokens and are merged by merge rank, lowest first;
//   3. special tokens (e.g. <|endoftext|>) are only recognised where the caller allows them.
// A Tokenizer is immutable after loading and shared by threads and Node environments;
// the only mutable part, the word cache, is internally synchronised.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gpt2::tokenizer {

// byte -> printable code point of GPT-2's bytes_to_unicode(), and back.
const std::array<uint32_t, 256>& byte_to_unicode();
// Code point -> byte, or -1 when the code point is not in the image of byte_to_unicode().
int unicode_to_byte(uint32_t cp);

class Tokenizer {
 public:
  // vocab.json + merges.txt. The names are only used in error messages.
  static std::shared_ptr<const Tokenizer> from_vocab_merges_text(std::string_view vocab_json, std::string_view merges_txt,
                                                                 const std::string& vocab_name,
                                                                 const std::string& merges_name);
  // Hugging Face tokenizer.json (model.type BPE, model.vocab, model.merges, added_tokens).
  static std::shared_ptr<const Tokenizer> from_tokenizer_json_text(std::string_view json, const std::string& name);
  static std::shared_ptr<const Tokenizer> from_files(const std::string& vocab_path, const std::string& merges_path);
  static std::shared_ptr<const Tokenizer> from_tokenizer_json(const std::string& path);
  // A folder with vocab.json + merges.txt, or tokenizer.json (preferred when both exist).
  static std::shared_ptr<const Tokenizer> from_dir(const std::string& dir);
  // True when dir holds tokenizer files from_dir() can load.
  static bool dir_has_tokenizer(const std::string& dir);
  // The bundled GPT-2 vocabulary in asset_dir (vocab.json + merges.txt), loaded once per
  // process and shared by every caller (thread-safe).
  static std::shared_ptr<const Tokenizer> gpt2(const std::string& asset_dir);

  // Indices into specials(): which special tokens encode() may recognise in the text.
  using AllowedSpecial = std::vector<uint32_t>;

  // Appends the ids of utf8 to out. Invalid UTF-8 bytes are kept as their byte tokens
  // (each one a piece of class "other"), so nothing is lost and nothing throws.
  void encode_ordinary(std::string_view utf8, std::vector<uint32_t>& out) const;
  void encode(std::string_view utf8, const AllowedSpecial& allowed, std::vector<uint32_t>& out) const;

  // Appends the bytes of ids to out; throws a RangeError naming the index and id of the
  // first id that is not in the vocabulary.
  void decode_bytes(const uint32_t* ids, size_t n, std::string& out) const;
  // Bytes of one token (empty view for an id outside the vocabulary).
  std::string_view token_bytes(uint32_t id) const;
  bool has_token(uint32_t id) const { return id < vocab_size_ && token_present_[id]; }

  uint32_t vocab_size() const { return vocab_size_; }  // max id + 1
  int64_t eos_token_id() const { return eos_token_id_; }  // -1 when there is none

  struct Special {
    std::string content;  // UTF-8 text
    uint32_t id;
  };
  const std::vector<Special>& specials() const { return specials_; }
  // Index into specials() of a special token by its text, or -1.
  int special_index(std::string_view content) const;

  // BPE of one piece without the caches, and its two implementations (public for
  // tests): an array scan for short pieces (n <= 64) and a heap for any length.
  void bpe_uncached(const uint8_t* bytes, size_t n, std::vector<uint32_t>& out) const;
  void bpe_small(const uint8_t* bytes, size_t n, std::vector<uint32_t>& out) const;
  void bpe_large(const uint8_t* bytes, size_t n, std::vector<uint32_t>& out) const;

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

 private:
  Tokenizer();
  struct Builder;
  friend struct Builder;

  void encode_piece(const uint8_t* bytes, size_t n, uint64_t hash, std::vector<uint32_t>& out) const;

  // Merge of the pair (a, b): its rank and the id of the merged token.
  struct MergeSlot {
    uint64_t key;  // (a << 32) | b, or kEmptyKey
    uint32_t rank;
    uint32_t merged;
  };
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};
  static constexpr uint32_t kNoRank = ~uint32_t{0};
  const MergeSlot* find_merge(uint32_t a, uint32_t b) const;
  inline uint32_t merge_rank(uint32_t a, uint32_t b) const {
    const MergeSlot* s = find_merge(a, b);
    return s ? s->rank : kNoRank;
  }
  // id of the token whose bytes are exactly [p, p+n) AND which BPE produces from those
  // bytes as a single token; or -1. This is the fast path for common words.
  int64_t find_whole(const uint8_t* p, size_t n, uint64_t hash) const;

  uint32_t vocab_size_ = 0;
  std::string token_arena_;               // bytes of every token, back to back
  std::vector<uint32_t> token_offset_;    // vocab_size_ + 1 offsets into token_arena_
  std::vector<uint8_t> token_present_;    // ids may have gaps
  std::array<uint32_t, 256> byte_token_{};  // id of each single-byte token
  std::vector<MergeSlot> merges_;         // open addressing, power-of-two size
  std::vector<uint32_t> merged_by_rank_;  // rank -> merged token id
  std::vector<uint32_t> byte_pair_rank_;  // [b0 * 256 + b1] -> rank of merging two byte tokens
                                          // (every BPE starts with these lookups; 256 KB, no hashing)
  uint64_t merge_mask_ = 0;
  struct WholeSlot {
    uint64_t prefix;       // the token's first 8 bytes (zero padded): short tokens compare in place
    uint32_t id_plus_one;  // 0 = empty
    uint32_t tag_len;      // high 24 bits of the hash << 8 | min(length, 255)
  };
  std::vector<WholeSlot> whole_slots_;    // open addressing
  uint64_t whole_mask_ = 0;
  std::vector<Special> specials_;
  int64_t eos_token_id_ = -1;

  // Word cache (see tokenizer.cc): per thread, tagged with this tokenizer's unique id.
  uint64_t instance_id_ = 0;
};

}  // namespace gpt2::tokenizer
