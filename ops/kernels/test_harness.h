// The unit-test harness of the kernels' algorithm tests (the *_test.cc files beside them): tests
// registered by ZOO_TEST, expectations that count failures and say where and in which case they
// failed, and a main that runs every test of its binary. Written here, so that the tests need
// nothing but the algorithm files and Eigen (no TensorFlow, no third-party framework).
//
// Each *_test.cc is one binary (ZOO_TEST_MAIN at its end), built and run by
// `python setup.py kernel_tests` (BUILD.md). A binary prints a line per test and closes with
// "N passed, N failed"; it exits non-zero when a test failed.
#ifndef ZOO_OPS_KERNELS_TEST_HARNESS_H_
#define ZOO_OPS_KERNELS_TEST_HARNESS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace zoo {
namespace testing {

struct Test {
  const char* name;
  void (*body)();
};

inline std::vector<Test>& Tests() {
  static std::vector<Test> tests;
  return tests;
}

inline bool Register(const char* name, void (*body)()) {
  Tests().push_back({name, body});
  return true;
}

// Failed expectations of the test that is running.
inline int& Failures() {
  static int failures = 0;
  return failures;
}

// What the running test is checking now (ScopedCase), printed with each failure.
inline std::vector<std::string>& Context() {
  static std::vector<std::string> context;
  return context;
}

class ScopedCase {
 public:
  explicit ScopedCase(std::string description) { Context().push_back(std::move(description)); }
  ~ScopedCase() { Context().pop_back(); }
  ScopedCase(const ScopedCase&) = delete;
  ScopedCase& operator=(const ScopedCase&) = delete;
};

inline void Fail(const char* file, int line, const std::string& message) {
  // The first failures of a test say enough; a broken loop would print thousands.
  constexpr int kMostReported = 10;
  if (Failures()++ >= kMostReported) return;
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, message.c_str());
  for (const std::string& description : Context()) {
    std::fprintf(stderr, "    in %s\n", description.c_str());
  }
}

// Whether `actual` is within `absolute + relative * |expected|` of `expected` (NaN never is).
inline bool Near(double actual, double expected, double absolute, double relative) {
  return std::abs(actual - expected) <= absolute + relative * std::abs(expected);
}

// Expects every actual[i] near expected[i] (Near), and as many values; reports the worst one.
template <typename T>
void ExpectAllNear(const char* file, int line, const char* what, const std::vector<T>& actual,
                   const std::vector<double>& expected, double absolute, double relative) {
  if (actual.size() != expected.size()) {
    std::ostringstream message;
    message << what << ": " << actual.size() << " values, expected " << expected.size();
    Fail(file, line, message.str());
    return;
  }
  int64_t wrong = 0, worst = -1;
  double worst_excess = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double value = static_cast<double>(actual[i]);
    if (Near(value, expected[i], absolute, relative)) continue;
    ++wrong;
    const double excess = std::isnan(value) ? INFINITY : std::abs(value - expected[i]);
    if (worst < 0 || excess > worst_excess) worst = static_cast<int64_t>(i), worst_excess = excess;
  }
  if (wrong == 0) return;
  std::ostringstream message;
  message.precision(9);
  message << what << ": " << wrong << " of " << actual.size() << " values off; worst [" << worst
          << "] = " << static_cast<double>(actual[worst]) << ", expected " << expected[worst]
          << " (tolerance " << absolute << " + " << relative << " * |expected|)";
  Fail(file, line, message.str());
}

inline int RunAll(int argc, char** argv) {
  // An argument runs only the tests whose names contain it.
  const char* filter = argc > 1 ? argv[1] : "";
  int passed = 0, failed = 0;
  for (const Test& test : Tests()) {
    if (std::strstr(test.name, filter) == nullptr) continue;
    Failures() = 0;
    test.body();
    if (Failures() == 0) {
      ++passed;
      std::printf("[  OK  ] %s\n", test.name);
    } else {
      ++failed;
      std::printf("[FAILED] %s (%d failed expectations)\n", test.name, Failures());
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace testing
}  // namespace zoo

#define ZOO_TEST(name)                                                                           \
  static void name();                                                                            \
  [[maybe_unused]] static const bool name##_registered = ::zoo::testing::Register(#name, &name); \
  static void name()

#define ZOO_TEST_MAIN() \
  int main(int argc, char** argv) { return ::zoo::testing::RunAll(argc, argv); }

#define EXPECT_TRUE(condition)                                              \
  do {                                                                      \
    if (!(condition)) ::zoo::testing::Fail(__FILE__, __LINE__, #condition); \
  } while (false)

#define EXPECT_EQ(actual, expected)                                                   \
  do {                                                                                \
    const auto zoo_actual = (actual);                                                 \
    const auto zoo_expected = (expected);                                             \
    if (!(zoo_actual == zoo_expected)) {                                              \
      std::ostringstream zoo_message;                                                 \
      zoo_message << #actual << " = " << zoo_actual << ", expected " << zoo_expected; \
      ::zoo::testing::Fail(__FILE__, __LINE__, zoo_message.str());                    \
    }                                                                                 \
  } while (false)

// Every value of the vector `actual` within `absolute + relative * |expected|` of `expected`.
#define EXPECT_ALL_NEAR(actual, expected, absolute, relative)                                  \
  ::zoo::testing::ExpectAllNear(__FILE__, __LINE__, #actual, (actual), (expected), (absolute), \
                                (relative))

#endif  // ZOO_OPS_KERNELS_TEST_HARNESS_H_
