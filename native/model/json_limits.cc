#include "model/json_limits.h"

#include "core/error.h"

namespace gpt2::model {

size_t count_json_values_upper_bound(std::string_view text) {
  size_t count = 1;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') i++;  // skip the escaped character (a quote must not end the string)
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == ',' || c == ':' || c == '[' || c == '{') {
      count++;
    }
  }
  return count;
}

void check_json_size(std::string_view text, size_t max_bytes, size_t max_values, const std::string& source) {
  if (text.size() > max_bytes)
    throw_format_error(source + ": " + std::to_string(text.size()) + " bytes of JSON is more than the limit of " +
                       std::to_string(max_bytes));
  const size_t values = count_json_values_upper_bound(text);
  if (values > max_values)
    throw_format_error(source + ": too many JSON values (about " + std::to_string(values) + ", limit " +
                       std::to_string(max_values) + ")");
}

}  // namespace gpt2::model
