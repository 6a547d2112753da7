#include "pact/core/violations.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact {
namespace {

using ::testing::ElementsAre;

TEST(ViolationsTest, CheckAddsOnlyFailuresWithPathRequirementAndValue) {
  Violations v;
  v.Check(true, "lr", "must be > 0", 1);
  v.Check(false, "lr", "must be > 0", 0);
  v.Add("name", "is taken");
  EXPECT_THAT(v.list(), ElementsAre("lr: must be > 0, got 0", "name: is taken"));
}

TEST(ViolationsTest, ScopedViewsPrefixAndShareTheList) {
  Violations v;
  Violations sgd = v.Scoped("optimizer").Scoped("sgd");
  sgd.Check(false, "momentum", "must be in [0, 1)", 1.5);
  sgd.Check(false, "[2]", "must be > 0", -1);
  v.Scoped("model").Add("", "no implementation selected");
  EXPECT_THAT(v.list(), ElementsAre("optimizer.sgd.momentum: must be in [0, 1), got 1.5",
                                    "optimizer.sgd[2]: must be > 0, got -1",
                                    "model: no implementation selected"));
  EXPECT_EQ(sgd.size(), 3) << "views share one list";
}

TEST(ViolationsTest, ToStatusListsEveryProblemOnItsOwnLine) {
  Violations v("sgd");
  EXPECT_TRUE(v.ToStatus("invalid options").ok());
  v.Check(false, "lr", "must be > 0", 0);
  EXPECT_EQ(v.ToStatus("invalid options").message(),
            "invalid options (1 problem):\n  sgd.lr: must be > 0, got 0");
  v.Add("nesterov", "needs momentum > 0");
  const absl::Status status = v.ToStatus("invalid options");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "invalid options (2 problems):\n  sgd.lr: must be > 0, got 0\n  sgd.nesterov: needs "
            "momentum > 0");
}

}  // namespace
}  // namespace pact
