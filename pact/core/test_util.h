// Helpers for tests: inline text protos and Status assertions.
#ifndef PACT_CORE_TEST_UTIL_H_
#define PACT_CORE_TEST_UTIL_H_

#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/text_proto.h"

namespace pact::testing {

// Parses an inline text proto; fails the current test on a parse error.
template <typename T>
T ParseTextProtoOrDie(const std::string& text) {
  T message;
  const absl::Status status = ParseTextProto(text, "<inline>", &message);
  EXPECT_TRUE(status.ok()) << status;
  return message;
}

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// A fresh, empty folder under $TEST_TMPDIR (else /tmp) whose name starts with `name`; unique
// per call, so tests and repeated calls never see each other's files. Fails the test on error.
inline std::string TestTempDir(absl::string_view name) {
  std::string root = GetEnv("TEST_TMPDIR");
  if (root.empty()) root = "/tmp";
  std::string base(name);
  for (char& c : base) {
    if (c == '/') c = '_';  // parameterized test names hold '/'
  }
  std::string dir = JoinPath(root, absl::StrCat(base, ".XXXXXX"));
  if (::mkdtemp(&dir[0]) == nullptr) ADD_FAILURE() << "cannot create a folder like " << dir;
  return dir;
}

}  // namespace pact::testing

#define PACT_EXPECT_OK(expr) \
  EXPECT_TRUE(::pact::testing::GetStatus(expr).ok()) << ::pact::testing::GetStatus(expr)
#define PACT_ASSERT_OK(expr) \
  ASSERT_TRUE(::pact::testing::GetStatus(expr).ok()) << ::pact::testing::GetStatus(expr)

#define PACT_TEST_CONCAT_INNER_(a, b) a##b
#define PACT_TEST_CONCAT_(a, b) PACT_TEST_CONCAT_INNER_(a, b)
#define PACT_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  PACT_ASSERT_OK_AND_ASSIGN_IMPL_(PACT_TEST_CONCAT_(pact_test_statusor_, __LINE__), lhs, expr)
#define PACT_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  ASSERT_TRUE(statusor.ok()) << statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // PACT_CORE_TEST_UTIL_H_
