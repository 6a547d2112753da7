#include "pact/core/test_util.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "google/protobuf/duration.pb.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace pact::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Namespace scope: EXPECT_FATAL_FAILURE's statement cannot refer to local variables.
int g_calls = 0;

absl::Status CountedStatus(absl::Status status) {
  ++g_calls;
  return status;
}

absl::StatusOr<int> CountedStatusOr(absl::StatusOr<int> value) {
  ++g_calls;
  return value;
}

class TestUtilTest : public ::testing::Test {
 protected:
  void SetUp() override { g_calls = 0; }
};

TEST_F(TestUtilTest, ExpectOkEvaluatesOnceWhenOk) {
  PACT_EXPECT_OK(CountedStatus(absl::OkStatus()));
  EXPECT_EQ(g_calls, 1);
  PACT_EXPECT_OK(CountedStatusOr(7));
  EXPECT_EQ(g_calls, 2);
}

TEST_F(TestUtilTest, ExpectOkEvaluatesOnceAndPrintsTheStatusOnFailure) {
  EXPECT_NONFATAL_FAILURE(PACT_EXPECT_OK(CountedStatus(absl::InternalError("disk on fire"))),
                          "INTERNAL: disk on fire");
  EXPECT_EQ(g_calls, 1);
  EXPECT_NONFATAL_FAILURE(PACT_EXPECT_OK(CountedStatusOr(absl::NotFoundError("no such file"))),
                          "NOT_FOUND: no such file");
  EXPECT_EQ(g_calls, 2);
}

TEST_F(TestUtilTest, AssertOkEvaluatesOnceWhenOk) {
  PACT_ASSERT_OK(CountedStatus(absl::OkStatus()));
  PACT_ASSERT_OK(CountedStatusOr(7));
  EXPECT_EQ(g_calls, 2);
}

TEST_F(TestUtilTest, AssertOkEvaluatesOnceAndPrintsTheStatusOnFailure) {
  EXPECT_FATAL_FAILURE(PACT_ASSERT_OK(CountedStatus(absl::InternalError("disk on fire"))),
                       "INTERNAL: disk on fire");
  EXPECT_EQ(g_calls, 1);
  EXPECT_FATAL_FAILURE(PACT_ASSERT_OK(CountedStatusOr(absl::NotFoundError("no such file"))),
                       "NOT_FOUND: no such file");
  EXPECT_EQ(g_calls, 2);
}

TEST(MatchersTest, IsOkAndStatusIs) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::InvalidArgumentError("x"), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::InvalidArgumentError("x")), Not(IsOk()));

  const absl::Status status = absl::InvalidArgumentError("lr must be positive");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lr")));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kNotFound)));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("momentum"))));
  EXPECT_THAT(absl::StatusOr<int>(status), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(absl::OkStatus(), StatusIs(absl::StatusCode::kOk));
}

TEST(MatchersTest, FailureMessagesShowTheStatus) {
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(absl::StatusOr<int>(absl::AbortedError("stop")), IsOk()),
                          "whose status is ABORTED: stop");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(absl::NotFoundError("gone"), StatusIs(absl::StatusCode::kInvalidArgument)),
      "Actual: NOT_FOUND: gone");
}

TEST(ParseTextProtoOrDieTest, ParsesValidText) {
  const auto duration = ParseTextProtoOrDie<google::protobuf::Duration>("seconds: 3 nanos: 5");
  EXPECT_EQ(duration.seconds(), 3);
  EXPECT_EQ(duration.nanos(), 5);
}

TEST(ParseTextProtoOrDieDeathTest, DiesWithTheParseError) {
  EXPECT_DEATH(ParseTextProtoOrDie<google::protobuf::Duration>("seconds: 3 minutes: 2"),
               "ParseTextProtoOrDie<google.protobuf.Duration>: .*<inline>:1:.*minutes");
}

}  // namespace
}  // namespace pact::testing
