// Helpers for tests: inline text protos and Status matchers.
#ifndef PACT_CORE_TEST_UTIL_H_
#define PACT_CORE_TEST_UTIL_H_

#include <cstdlib>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/text_proto.h"

namespace pact::testing {

// Parses an inline text proto; a parse error aborts the test binary with the error (an inline
// proto that does not parse is a bug in the test, not a finding).
template <typename T>
T ParseTextProtoOrDie(const std::string& text) {
  T message;
  const absl::Status status = ParseTextProto(text, "<inline>", &message);
  CHECK(status.ok()) << "ParseTextProtoOrDie<" << T::descriptor()->full_name() << ">: " << status;
  return message;
}

namespace internal {

class IsOkMatcher {
 public:
  // gtest prints an absl::Status itself; an absl::StatusOr it cannot print, so say its status.
  bool MatchAndExplain(const absl::Status& status, ::testing::MatchResultListener*) const {
    return status.ok();
  }
  template <typename T>
  bool MatchAndExplain(const absl::StatusOr<T>& status_or,
                       ::testing::MatchResultListener* listener) const {
    *listener << "whose status is " << status_or.status();
    return status_or.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

class StatusIsMatcher {
 public:
  StatusIsMatcher(absl::StatusCode code, ::testing::Matcher<const std::string&> message)
      : code_(code), message_(std::move(message)) {}

  bool MatchAndExplain(const absl::Status& status, ::testing::MatchResultListener*) const {
    return status.code() == code_ && message_.Matches(std::string(status.message()));
  }
  template <typename T>
  bool MatchAndExplain(const absl::StatusOr<T>& status_or,
                       ::testing::MatchResultListener* listener) const {
    *listener << "whose status is " << status_or.status();
    return MatchAndExplain(status_or.status(), listener);
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has status code " << absl::StatusCodeToString(code_) << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have status code " << absl::StatusCodeToString(code_)
        << " or has a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  absl::StatusCode code_;
  ::testing::Matcher<const std::string&> message_;
};

}  // namespace internal

// Matches an OK absl::Status or absl::StatusOr<T>; a mismatch prints the status.
inline ::testing::PolymorphicMatcher<internal::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(internal::IsOkMatcher());
}

// Matches an absl::Status or absl::StatusOr<T> with `code` and a message matching `message`
// (any message when omitted), e.g. StatusIs(absl::StatusCode::kNotFound, HasSubstr("x.pt")).
inline ::testing::PolymorphicMatcher<internal::StatusIsMatcher> StatusIs(
    absl::StatusCode code,
    ::testing::Matcher<const std::string&> message = ::testing::A<const std::string&>()) {
  return ::testing::MakePolymorphicMatcher(internal::StatusIsMatcher(code, std::move(message)));
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

// Evaluate `expr` (an absl::Status or absl::StatusOr<T>) once; a failure prints the status.
// GetStatus lets gtest print the status itself (absl::StatusOr has no operator<<); the
// temporary it refers into lives until the assertion has finished.
#define PACT_EXPECT_OK(expr) EXPECT_THAT(::pact::testing::GetStatus(expr), ::pact::testing::IsOk())
#define PACT_ASSERT_OK(expr) ASSERT_THAT(::pact::testing::GetStatus(expr), ::pact::testing::IsOk())

#define PACT_TEST_CONCAT_INNER_(a, b) a##b
#define PACT_TEST_CONCAT_(a, b) PACT_TEST_CONCAT_INNER_(a, b)
#define PACT_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  PACT_ASSERT_OK_AND_ASSIGN_IMPL_(PACT_TEST_CONCAT_(pact_test_statusor_, __LINE__), lhs, expr)
#define PACT_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  ASSERT_TRUE(statusor.ok()) << statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // PACT_CORE_TEST_UTIL_H_
