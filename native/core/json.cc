#include "core/json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace gpt2 {

const JsonValue* JsonValue::find(std::string_view key) const {
  if (type != Type::Object) return nullptr;
  for (const auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

const char* JsonValue::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "boolean";
    case Type::Number: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

std::string json_position(std::string_view text, size_t offset) {
  if (offset > text.size()) offset = text.size();
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset; i++) {
    if (text[i] == '\n') { line++; col = 1; }
    else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) col++;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

namespace {

constexpr int kMaxDepth = 128;

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  JsonValue parse_document() {
    // A UTF-8 byte order mark is tolerated (some editors write one).
    if (s_.size() >= 3 && std::memcmp(s_.data(), "\xEF\xBB\xBF", 3) == 0) pos_ = 3;
    skip_ws();
    JsonValue v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    throw_format_error(source_ + ": invalid JSON: " + what + " at " + json_position(s_, at));
  }

  void skip_ws() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos_++;
      else break;
    }
  }

  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }

  void expect(char c) {
    if (pos_ >= s_.size()) fail(std::string("unexpected end of input, expected '") + c + "'");
    if (s_[pos_] != c) fail(std::string("expected '") + c + "'");
    pos_++;
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 128 levels");
    if (pos_ >= s_.size()) fail("unexpected end of input, expected a value");
    JsonValue v;
    v.offset = pos_;
    char c = s_[pos_];
    if (c == '{') {
      v.type = JsonValue::Type::Object;
      pos_++;
      skip_ws();
      if (peek() == '}') { pos_++; return v; }
      for (;;) {
        skip_ws();
        if (peek() != '"') fail("expected a string key");
        std::string key = parse_string();
        skip_ws();
        expect(':');
        skip_ws();
        v.members.emplace_back(std::move(key), parse_value(depth + 1));
        skip_ws();
        if (peek() == ',') { pos_++; continue; }
        if (peek() == '}') { pos_++; break; }
        fail(pos_ >= s_.size() ? "unexpected end of input in an object" : "expected ',' or '}'");
      }
    } else if (c == '[') {
      v.type = JsonValue::Type::Array;
      pos_++;
      skip_ws();
      if (peek() == ']') { pos_++; return v; }
      for (;;) {
        skip_ws();
        v.items.push_back(parse_value(depth + 1));
        skip_ws();
        if (peek() == ',') { pos_++; continue; }
        if (peek() == ']') { pos_++; break; }
        fail(pos_ >= s_.size() ? "unexpected end of input in an array" : "expected ',' or ']'");
      }
    } else if (c == '"') {
      v.type = JsonValue::Type::String;
      v.string = parse_string();
    } else if (c == 't' || c == 'f' || c == 'n') {
      auto word = [&](const char* w) {
        size_t n = std::strlen(w);
        if (s_.substr(pos_, n) != w) fail("invalid literal");
        pos_ += n;
      };
      if (c == 't') { word("true"); v.type = JsonValue::Type::Bool; v.boolean = true; }
      else if (c == 'f') { word("false"); v.type = JsonValue::Type::Bool; }
      else word("null");
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      parse_number(v);
    } else {
      fail("unexpected character");
    }
    return v;
  }

  void parse_number(JsonValue& v) {
    const size_t start = pos_;
    bool integral = true;
    if (peek() == '-') pos_++;
    if (peek() == '0') pos_++;
    else if (peek() >= '1' && peek() <= '9') while (peek() >= '0' && peek() <= '9') pos_++;
    else fail("invalid number");
    if (peek() == '.') {
      integral = false;
      pos_++;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: digit expected after '.'");
      while (peek() >= '0' && peek() <= '9') pos_++;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      pos_++;
      if (peek() == '+' || peek() == '-') pos_++;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: digit expected in exponent");
      while (peek() >= '0' && peek() <= '9') pos_++;
    }
    std::string text(s_.substr(start, pos_ - start));
    v.type = JsonValue::Type::Number;
    v.number = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      char* end = nullptr;
      long long i = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && end && *end == '\0') { v.is_integer = true; v.integer = i; }
    }
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t parse_hex4() {
    if (pos_ + 4 > s_.size()) fail("unexpected end of input in a \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail_at(pos_ - 1, "invalid hex digit in a \\u escape");
    }
    return v;
  }

  // Validates one UTF-8 sequence starting at pos_ and copies it.
  void copy_utf8(std::string& out) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s_.data());
    const size_t n = s_.size();
    unsigned char c = p[pos_];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) { out += static_cast<char>(c); pos_++; return; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else fail("invalid UTF-8 byte");
    if (pos_ + len > n) fail("truncated UTF-8 sequence");
    for (size_t i = 1; i < len; i++) {
      if ((p[pos_ + i] & 0xC0) != 0x80) fail("invalid UTF-8 sequence");
      cp = (cp << 6) | (p[pos_ + i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8 sequence");
    out.append(s_.data() + pos_, len);
    pos_ += len;
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') { pos_++; return out; }
      if (c < 0x20) fail("control character in a string (must be escaped)");
      if (c != '\\') { copy_utf8(out); continue; }
      pos_++;
      if (pos_ >= s_.size()) fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && pos_ + 6 <= s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
            size_t save = pos_;
            pos_ += 2;
            uint32_t lo = parse_hex4();
            if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else pos_ = save;
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate has no UTF-8 form
          append_utf8(out, cp);
          break;
        }
        default: fail_at(pos_ - 1, "invalid escape character");
      }
    }
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

JsonValue parse_json(std::string_view text, const std::string& source) {
  return Parser(text, source).parse_document();
}

}  // namespace gpt2
