#include "pact/recipe/recipe.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kValid[] = R"pb(
  name: "ok"
  model { resnet20 {} }
  train_data {
    split: SPLIT_TRAIN
    synthetic {}
  }
  eval_data {
    split: SPLIT_TEST
    synthetic {}
  }
  optimizer { sgd { lr: 0.1 momentum: 0.9 weight_decay: 2e-4 } }
  lr_schedule { multi_step { milestones: [ 60, 120 ] } }
  quantization {
    activation { pact { bits: 4 } }
    weight { dorefa { bits: 4 } }
  }
  train { epochs: 200 }
)pb";

std::string WriteRecipe(const std::string& name, const std::string& text) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(RecipeTest, ValidRecipeHasNoViolations) {
  EXPECT_THAT(RecipeViolations(testing::ParseTextProtoOrDie<Recipe>(kValid)), IsEmpty());
}

TEST(RecipeTest, EveryViolationIsReportedWithPathAndValue) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kValid);
  recipe.set_name("");
  recipe.clear_model();
  recipe.mutable_optimizer()->mutable_sgd()->set_lr(-0.1);
  recipe.mutable_optimizer()->mutable_sgd()->set_momentum(1.5);
  recipe.mutable_lr_schedule()->mutable_multi_step()->add_milestones(100);
  recipe.mutable_quantization()->mutable_activation()->mutable_pact()->set_bits(99);
  recipe.mutable_quantization()->set_quant_warmup_epochs(300);
  recipe.mutable_train()->set_batch_size(0);
  EXPECT_THAT(
      RecipeViolations(recipe),
      UnorderedElementsAre(
          "name: must be non-empty letters, digits, '_', '-' or '.', got \"\"",
          "model: no implementation selected; set exactly one of {resnet20, fashion_convnet, "
          "svhn_convnet, alexnet_bn, resnet18_preact, resnet50_preact}",
          "optimizer.sgd.lr: must be > 0, got -0.1",
          "optimizer.sgd.momentum: must be in [0, 1), got 1.5",
          "lr_schedule.multi_step.milestones[2]: must be greater than the previous milestone "
          "(120), got 100",
          "quantization.activation.pact.bits: must be in [0, 16] (0 = clipping without "
          "quantization), got 99",
          "quantization.quant_warmup_epochs: must be in [0, train.epochs = 200], got 300",
          "train.batch_size: must be > 0, got 0"));
}

TEST(RecipeTest, EverySelectedComponentIsWalkedThroughItsRegistry) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kValid);
  recipe.mutable_model()->mutable_resnet20()->set_depth(21);
  recipe.mutable_train_data()->mutable_synthetic()->set_channels(0);
  recipe.mutable_eval_data()->clear_synthetic();
  recipe.mutable_optimizer()->mutable_adam()->set_eps(0);
  recipe.mutable_lr_schedule()->mutable_step()->set_step_epochs(0);
  recipe.mutable_quantization()->mutable_weight()->mutable_dorefa()->set_bits(17);
  EXPECT_THAT(
      RecipeViolations(recipe),
      UnorderedElementsAre(
          "model.resnet20.depth: must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got 21",
          "train_data.synthetic.channels: must be in [1, 64], got 0",
          HasSubstr("eval_data: no implementation selected; set exactly one of {"),
          "optimizer.adam.eps: must be > 0, got 0",
          "lr_schedule.step.step_epochs: must be > 0, got 0",
          "quantization.weight.dorefa.bits: must be in [0, 16] or 32 (0 and 32 = full precision), "
          "got 17"));
}

TEST(RecipeTest, UnsetOptionalComponentsAreNotViolations) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kValid);
  recipe.clear_lr_schedule();
  recipe.clear_quantization();
  EXPECT_THAT(RecipeViolations(recipe), IsEmpty());
  recipe.mutable_lr_schedule();  // set, but nothing selected
  EXPECT_THAT(RecipeViolations(recipe),
              UnorderedElementsAre(HasSubstr("lr_schedule: no implementation selected")));
}

TEST(RecipeTest, ValidateRecipeKeepsTheRecipe) {
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe validated,
                            ValidateRecipe(testing::ParseTextProtoOrDie<Recipe>(kValid)));
  EXPECT_EQ(validated->name(), "ok");
  EXPECT_EQ((*validated).train().epochs(), 200);
  EXPECT_EQ(validated.proto().optimizer().sgd().lr(), 0.1);
}

TEST(RecipeTest, ValidateRecipeListsAllProblemsInOneStatus) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kValid);
  recipe.mutable_train()->set_epochs(0);
  recipe.mutable_train_data()->set_workers(-1);
  const absl::Status status = ValidateRecipe(recipe).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("invalid recipe (2 problems)"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("train.epochs: must be > 0, got 0"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("train_data.workers: must be in [0, 256], got -1"));
}

TEST(RecipeTest, LoadRecipeAppliesOverridesBeforeValidating) {
  const std::string path = WriteRecipe("valid.pbtxt", kValid);
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe recipe,
                            LoadRecipe(path,
                                       "train { epochs: 1 } "
                                       "quantization { quant_warmup_epochs: 1 }"));
  EXPECT_EQ(recipe->train().epochs(), 1);
  // An override that breaks the recipe is caught by validation; each problem points at the
  // text that set its field (or the nearest enclosing one it set).
  const auto bad = LoadRecipe(path, "train { epochs: -3 }");
  EXPECT_EQ(bad.status().message(),
            path + ": invalid recipe (2 problems):\n  " + path +
                ":14:3: quantization.quant_warmup_epochs: must be in [0, train.epochs = -3], got "
                "0\n  --recipe_overrides:1:9: train.epochs: must be > 0, got -3");
}

TEST(RecipeTest, LoadRecipeReportsTyposWithLocation) {
  const std::string path = WriteRecipe("typo.pbtxt", "name: \"x\"\ntrain {\n  epocs: 3\n}\n");
  const auto result = LoadRecipe(path, "");
  EXPECT_EQ(result.status().message(),
            path + ":3:3: Message type \"pact.TrainSpec\" has no field named \"epocs\".");
}

}  // namespace
}  // namespace pact
