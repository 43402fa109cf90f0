#include "core/error.h"
#include "core/json.h"
#include "tests/test_main.h"

using namespace gpt2;

TEST(parses_nested_values) {
  JsonValue v = parse_json(R"({"a": [1, -2.5e3, "x\u00e9\ud83d\ude00", true, null], "b": {"c": 9007199254740993}})", "t");
  CHECK(v.is_object());
  const JsonValue* a = v.find("a");
  CHECK(a && a->items.size() == 5);
  CHECK(a->items[0].is_integer && a->items[0].integer == 1);
  CHECK(a->items[1].number == -2500 && !a->items[1].is_integer);
  CHECK(a->items[2].string == "x\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(a->items[3].boolean);
  CHECK(a->items[4].is_null());
  CHECK(v.find("b")->find("c")->integer == 9007199254740993LL);
}

TEST(errors_name_source_and_position) {
  try {
    parse_json("{\n  \"a\": 1,\n  \"b\" 2\n}", "vocab.json");
    CHECK_MSG(false, "no error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK_MSG(m.find("vocab.json") != std::string::npos && m.find("line 3, column 7") != std::string::npos, m);
    CHECK(e.code() == code::kFileFormat);
  }
}

TEST(rejects_malformed_input) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\":}", "\"\x01\"", "01", "1.", "-", "\"\\x\"", "[1] 2", "\"\xff\"",
                          "\"\xc0\x80\"", "tru", "{\"a\" 1}", "\"abc"}) {
    CHECK_THROWS(parse_json(bad, "t"));
  }
  std::string deep(1000, '[');
  CHECK_THROWS(parse_json(deep, "t"));
}

TEST_MAIN()
