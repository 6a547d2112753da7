#include <torch/torch.h>

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/optim/optimizer.h"

namespace pact::optim {
namespace {

using ::testing::HasSubstr;
using testing::ParseTextProtoOrDie;

std::shared_ptr<const LrSchedule> Schedule(const std::string& text) {
  auto schedule = GetLrScheduleRegistry().Create(ParseTextProtoOrDie<LrScheduleSpec>(text), {});
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  return schedule.ok() ? *schedule : nullptr;
}

TEST(LrScheduleTest, MultiStepAppliesGammaFromEachMilestoneOn) {
  auto s = Schedule("multi_step { milestones: [60, 120] gamma: 0.1 }");
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(s->Factor(0), 1.0);
  EXPECT_DOUBLE_EQ(s->Factor(59), 1.0);
  EXPECT_DOUBLE_EQ(s->Factor(60), 0.1);
  EXPECT_DOUBLE_EQ(s->Factor(119), 0.1);
  EXPECT_NEAR(s->Factor(120), 0.01, 1e-15);
  EXPECT_NEAR(s->Factor(199), 0.01, 1e-15);
}

TEST(LrScheduleTest, StepHalvesEveryPeriod) {
  auto s = Schedule("step { step_epochs: 50 gamma: 0.5 }");
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(s->Factor(49), 1.0);
  EXPECT_DOUBLE_EQ(s->Factor(50), 0.5);
  EXPECT_DOUBLE_EQ(s->Factor(150), 0.125);
}

TEST(LrScheduleTest, BadOptionsAreRejected) {
  auto bad = GetLrScheduleRegistry().Create(
      ParseTextProtoOrDie<LrScheduleSpec>("multi_step { milestones: [120, 60] }"), {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "lr schedule 'multi_step': multi_step.milestones[1]: must be greater than the previous "
            "milestone (120), got 60");
  auto bad_step = GetLrScheduleRegistry().Create(
      ParseTextProtoOrDie<LrScheduleSpec>("step { step_epochs: 0 }"), {});
  EXPECT_THAT(std::string(bad_step.status().message()),
              HasSubstr("lr schedule 'step': step.step_epochs: must be > 0, got 0"));
}

TEST(OptimizerTest, SgdDecaysOnlyTheDecayedGroup) {
  torch::Tensor w = torch::ones({2}, torch::requires_grad());
  torch::Tensor alpha = torch::ones({1}, torch::requires_grad());
  OptimizerContext context{{w}, {alpha}};
  auto optimizer = GetOptimizerRegistry().Create(
      ParseTextProtoOrDie<OptimizerSpec>("sgd { lr: 0.5 momentum: 0 weight_decay: 0.1 }"), context);
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  w.mutable_grad() = torch::zeros({2});
  alpha.mutable_grad() = torch::zeros({1});
  (*optimizer)->torch_optimizer->step();
  // w -= lr * wd * w; alpha untouched (lambda_alpha acts through the loss instead).
  EXPECT_FLOAT_EQ(w[0].item<float>(), 1.0f - 0.5f * 0.1f);
  EXPECT_FLOAT_EQ(alpha[0].item<float>(), 1.0f);
}

TEST(OptimizerTest, LearningRateIsSetOnEveryGroup) {
  torch::Tensor w = torch::ones({2}, torch::requires_grad());
  torch::Tensor alpha = torch::ones({1}, torch::requires_grad());
  auto optimizer = GetOptimizerRegistry().Create(
      ParseTextProtoOrDie<OptimizerSpec>("adam { lr: 0.001 eps: 1e-5 weight_decay: 5e-6 }"),
      OptimizerContext{{w}, {alpha}});
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  EXPECT_DOUBLE_EQ((*optimizer)->base_lr, 0.001);
  (*optimizer)->SetLearningRate(2e-4);
  for (const auto& group : (*optimizer)->torch_optimizer->param_groups()) {
    EXPECT_DOUBLE_EQ(group.options().get_lr(), 2e-4);
  }
  EXPECT_DOUBLE_EQ((*optimizer)->LearningRate(), 2e-4);
}

TEST(OptimizerTest, BadOptionsAreRejected) {
  auto bad = GetOptimizerRegistry().Create(ParseTextProtoOrDie<OptimizerSpec>("sgd { lr: -1 }"),
                                           OptimizerContext{});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("optimizer 'sgd': sgd.lr: must be > 0"));
}

TEST(LrScheduleTest, ValidatorsReportEveryProblemUnderTheFieldPath) {
  Violations v;
  GetLrScheduleRegistry().Validate(
      ParseTextProtoOrDie<LrScheduleSpec>("multi_step { milestones: [0, 5, 5] gamma: 1.5 }"),
      "lr_schedule", v);
  GetLrScheduleRegistry().Validate(
      ParseTextProtoOrDie<LrScheduleSpec>("step { step_epochs: 10 gamma: 0 }"), "s", v);
  GetLrScheduleRegistry().Validate(ParseTextProtoOrDie<LrScheduleSpec>("step { step_epochs: 1 }"),
                                   "ok", v);
  EXPECT_THAT(v.list(),
              ::testing::ElementsAre(
                  "lr_schedule.multi_step.milestones[0]: must be > 0, got 0",
                  "lr_schedule.multi_step.milestones[2]: must be greater than the previous "
                  "milestone (5), got 5",
                  "lr_schedule.multi_step.gamma: must be in (0, 1], got 1.5",
                  "s.step.gamma: must be in (0, 1], got 0"));
}

TEST(OptimizerTest, ValidatorsReportEveryProblemUnderTheFieldPath) {
  Violations v;
  GetOptimizerRegistry().Validate(
      ParseTextProtoOrDie<OptimizerSpec>(
          "sgd { lr: 0 momentum: 1.5 weight_decay: -1 dampening: 0.5 nesterov: true }"),
      "optimizer", v);
  GetOptimizerRegistry().Validate(
      ParseTextProtoOrDie<OptimizerSpec>(
          "adam { lr: -1 beta1: 1 beta2: -0.1 eps: 0 weight_decay: -2 }"),
      "optimizer", v);
  GetOptimizerRegistry().Validate(ParseTextProtoOrDie<OptimizerSpec>("sgd { lr: 0.1 }"), "ok", v);
  EXPECT_THAT(v.list(),
              ::testing::ElementsAre("optimizer.sgd.lr: must be > 0, got 0",
                                     "optimizer.sgd.momentum: must be in [0, 1), got 1.5",
                                     "optimizer.sgd.weight_decay: must be >= 0, got -1",
                                     "optimizer.sgd.nesterov: needs momentum > 0 and dampening 0, "
                                     "got momentum 1.5, dampening 0.5",
                                     "optimizer.adam.lr: must be > 0, got -1",
                                     "optimizer.adam.beta1: must be in [0, 1), got 1",
                                     "optimizer.adam.beta2: must be in [0, 1), got -0.1",
                                     "optimizer.adam.eps: must be > 0, got 0",
                                     "optimizer.adam.weight_decay: must be >= 0, got -2"));
}

TEST(OptimizerTest, UnknownNameListsKnownOptimizers) {
  EXPECT_EQ(GetOptimizerRegistry().CheckName("rmsprop").message(),
            "unknown optimizer 'rmsprop'; known: [adam, sgd]");
}

}  // namespace
}  // namespace pact::optim
