// GPT-2's pre-tokenizer, as a hand-written scanner over UTF-8 code points. It splits
// text exactly like the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// where \s is the Unicode White_Space property. At each position the first alternative
// that matches wins, and every alternative is greedy:
//   - a contraction only at an apostrophe, lower case only ('S is not one);
//   - an optional single U+0020 followed by a run of one class (letters, numbers, or
//     "other" = neither space, letter nor number; the other-run also eats apostrophes);
//   - a whitespace run: all of it when it ends the text, else all but its last
//     character (that one goes with what follows: ` ?X` when it is U+0020 and the next
//     piece is not whitespace), and a single whitespace character alone.
// Invalid UTF-8 bytes are pieces of class "other", one byte each (V8 never passes
// them: it replaces lone surrogates with U+FFFD, as TextEncoder does).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tokenizer/unicode_tables.h"

namespace gpt2::tokenizer {

namespace detail {

// Classes of ASCII characters, the common case, without the two-level lookup.
struct AsciiClasses {
  uint8_t c[128];
  constexpr AsciiClasses() : c() {
    for (int i = 0; i < 128; i++) {
      c[i] = (i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z') ? kLetter
             : (i >= '0' && i <= '9')                        ? kNumber
             : (i == ' ' || (i >= 9 && i <= 13))             ? kSpace
                                                             : kOther;
    }
  }
};
inline constexpr AsciiClasses kAscii{};

// Decodes the code point at p (p < end) and returns its class and byte length.
// Malformed sequences (truncated, overlong, surrogates, > U+10FFFF) are one byte of
// class kOther.
inline CharClass class_at(const uint8_t* p, const uint8_t* end, size_t* len) {
  uint8_t b0 = p[0];
  if (b0 < 0x80) {
    *len = 1;
    return static_cast<CharClass>(kAscii.c[b0]);
  }
  size_t avail = static_cast<size_t>(end - p);
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (avail < 2 || (p[1] & 0xC0) != 0x80) goto bad;
    cp = (uint32_t(b0 & 0x1F) << 6) | (p[1] & 0x3F);
    *len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) goto bad;
    cp = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
    *len = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) goto bad;
    cp = (uint32_t(b0 & 0x07) << 18) | (uint32_t(p[1] & 0x3F) << 12) | (uint32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    if (cp < 0x10000 || cp > 0x10FFFF) goto bad;
    *len = 4;
  } else {
    goto bad;
  }
  return char_class(cp);
bad:
  *len = 1;
  return kOther;
}

// End of the run of characters of class cls starting at p.
inline const uint8_t* run_end(const uint8_t* p, const uint8_t* end, CharClass cls) {
  while (p < end) {
    if (*p < 0x80) {
      if (kAscii.c[*p] != cls) break;
      ++p;
      continue;
    }
    size_t len;
    if (class_at(p, end, &len) != cls) break;
    p += len;
  }
  return p;
}

}  // namespace detail

// Calls on_piece(const uint8_t* begin, size_t length) for each piece of text, in order.
template <class OnPiece>
inline void pretokenize(const uint8_t* text, size_t size, OnPiece&& on_piece) {
  using namespace detail;
  const uint8_t* p = text;
  const uint8_t* end = text + size;
  while (p < end) {
    const uint8_t* start = p;
    size_t len;
    CharClass cls = class_at(p, end, &len);
    if (*p == '\'' && end - p >= 2) {
      uint8_t c1 = p[1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        on_piece(start, 2);
        p += 2;
        continue;
      }
      if (end - p >= 3) {
        uint8_t c2 = p[2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          on_piece(start, 3);
          p += 3;
          continue;
        }
      }
    }
    if (cls == kSpace) {
      // ' ' followed by a non-space character: ` ?X+` with X its class.
      if (*p == ' ' && p + 1 < end) {
        size_t len1;
        CharClass next = class_at(p + 1, end, &len1);
        if (next != kSpace) {
          p = run_end(p + 1 + len1, end, next);
          on_piece(start, static_cast<size_t>(p - start));
          continue;
        }
      }
      // A whitespace run: \s+(?!\S) backtracks to leave the last character when a
      // non-space follows; a run of one is then taken by \s+.
      const uint8_t* last = p;  // start of the last whitespace character of the run
      const uint8_t* q = p + len;
      while (q < end) {
        size_t l;
        if (*q < 0x80) {
          if (kAscii.c[*q] != kSpace) break;
          l = 1;
        } else if (class_at(q, end, &l) != kSpace) {
          break;
        }
        last = q;
        q += l;
      }
      if (q == end || last == p) {
        p = q;
      } else {
        p = last;
      }
      on_piece(start, static_cast<size_t>(p - start));
      continue;
    }
    // Letters, numbers, or other: a run of that class.
    p = run_end(p + len, end, cls);
    on_piece(start, static_cast<size_t>(p - start));
  }
}

}  // namespace gpt2::tokenizer
