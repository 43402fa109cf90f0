// A strict JSON (RFC 8259) parser for the files we read: config.json, vocab.json,
// tokenizer.json, safetensors headers and their index. Errors name the source and
// the line/column, and nothing in the input is trusted: depth, sizes and numbers are
// checked. Object members keep file order.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gpt2 {

class JsonValue {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;  // written without fraction/exponent and fits int64
  int64_t integer = 0;
  std::string string;
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;
  size_t offset = 0;  // byte offset of the value in the source text

  bool is_null() const { return type == Type::Null; }
  bool is_object() const { return type == Type::Object; }
  bool is_array() const { return type == Type::Array; }
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Number; }
  bool is_bool() const { return type == Type::Bool; }

  // Member lookup (first match), nullptr when absent or when this is not an object.
  const JsonValue* find(std::string_view key) const;
  static const char* type_name(Type t);
};

// Throws gpt2::Error (code kFileFormat): "<source>: <what> at line L, column C".
JsonValue parse_json(std::string_view text, const std::string& source);

// "line L, column C" for a byte offset, for errors found after parsing.
std::string json_position(std::string_view text, size_t offset);

}  // namespace gpt2
