// A minimal test harness for native/tests/*_test.cc: TEST(name) { CHECK(...); } and
// main() runs them all, printing one line per test and "N passed, M failed".
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace gpt2::test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& cases() {
  static std::vector<Case> c;
  return c;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { cases().push_back({name, std::move(fn)}); }
};
struct Failure : std::exception {
  std::string msg;
  explicit Failure(std::string m) : msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
};

inline int run_all(int argc, char** argv) {
  int passed = 0, failed = 0;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  for (auto& c : cases()) {
    if (filter && std::string(c.name).find(filter) == std::string::npos) continue;
    try {
      c.fn();
      passed++;
      std::printf("ok   %s\n", c.name);
    } catch (const std::exception& e) {
      failed++;
      std::printf("FAIL %s: %s\n", c.name, e.what());
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace gpt2::test

#define GPT2_CAT2(a, b) a##b
#define GPT2_CAT(a, b) GPT2_CAT2(a, b)
#define TEST(name)                                                                        \
  static void name();                                                                     \
  static ::gpt2::test::Register GPT2_CAT(register_, name)(#name, name);                   \
  static void name()
#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::gpt2::test::Failure(std::string(__FILE__) + ":" + std::to_string(__LINE__) + \
                                  ": CHECK(" #cond ") failed");                           \
  } while (0)
#define CHECK_MSG(cond, msg)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::gpt2::test::Failure(std::string(__FILE__) + ":" + std::to_string(__LINE__) + \
                                  ": " + (msg));                                          \
  } while (0)
#define CHECK_THROWS(expr)                                                                \
  do {                                                                                    \
    bool threw_ = false;                                                                  \
    try { expr; } catch (const std::exception&) { threw_ = true; }                        \
    CHECK_MSG(threw_, "expected an exception from " #expr);                               \
  } while (0)
#define TEST_MAIN() \
  int main(int argc, char** argv) { return ::gpt2::test::run_all(argc, argv); }
