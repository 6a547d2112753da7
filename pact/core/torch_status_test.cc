#include "pact/core/torch_status.h"

#include <torch/torch.h>

#include <stdexcept>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/status_macros.h"

namespace pact {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(TorchCallTest, ValueIsReturned) {
  auto result = TorchCall("add", [] { return torch::ones({2}).sum().item<float>(); });
  ASSERT_TRUE(result.ok());
  EXPECT_FLOAT_EQ(*result, 2.0f);
}

TEST(TorchCallTest, TorchErrorBecomesInternalWithoutBacktrace) {
  auto result = TorchCall("bad matmul", [] {
    return torch::matmul(torch::ones({2, 3}), torch::ones({2, 3}));
  });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("bad matmul: "));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("cannot be multiplied"));
  EXPECT_THAT(std::string(result.status().message()), Not(HasSubstr("frame #")));
}

TEST(TorchCallTest, ValueAndIndexErrorsBecomeInvalidArgument) {
  absl::Status status = TorchCall("index", [] { (void)torch::ones({2}).select(0, 5); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  status = TorchCall("value", [] { TORCH_CHECK_VALUE(false, "bad value"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "value: bad value");
}

TEST(TorchCallTest, StdExceptionsAreCaught) {
  absl::Status status = TorchCall("std", [] { throw std::runtime_error("boom"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "std: boom");
}

TEST(TorchCallTest, StatusReturningCallablesPassThrough) {
  absl::Status status = TorchCall("s", [] { return absl::NotFoundError("x"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  absl::StatusOr<int> value = TorchCall("v", []() -> absl::StatusOr<int> { return 3; });
  EXPECT_EQ(*value, 3);
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  PACT_ASSIGN_OR_RETURN(int half, Half(x));
  PACT_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status Check(int x) {
  PACT_RETURN_WITH_CONTEXT_IF_ERROR(Half(x).status(), "checking ", x);
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_EQ(Check(3).message(), "checking 3: odd");
}

}  // namespace
}  // namespace pact
