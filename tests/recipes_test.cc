// Every shipped recipe parses, validates, uses no test-only dataset, and dry-runs: every
// component builds and the model runs one forward pass. One test per recipe (sharded).
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/recipe/recipe.h"
#include "pact/train/trainer.h"

namespace pact {
namespace {

std::vector<std::string> RecipeFiles() {
  std::vector<std::string> files;
  const std::string dir = std::string(std::getenv("TEST_SRCDIR")) + "/pact_qat/recipes";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".pbtxt") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class RecipesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecipesTest, ParsesValidatesAndDryRuns) {
  absl::StatusOr<ValidatedRecipe> loaded = LoadRecipe(GetParam(), "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Recipe& recipe = **loaded;
  EXPECT_FALSE(recipe.train_data().has_synthetic()) << "shipped recipes may not use synthetic";
  EXPECT_FALSE(recipe.eval_data().has_synthetic()) << "shipped recipes may not use synthetic";
  EXPECT_EQ(recipe.name(), std::filesystem::path(GetParam()).stem().string())
      << "a recipe's name is its file name";
  absl::StatusOr<std::string> summary = train::DryRun(*loaded);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(*summary, ::testing::HasSubstr("quantizer parameters (PACT alphas, LSQ steps)"));
}

TEST(RecipesListTest, AllPaperRecipesAreShipped) {
  std::vector<std::string> names;
  for (const auto& file : RecipeFiles()) {
    names.push_back(std::filesystem::path(file).stem().string());
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf({"cifar10_resnet20", "cifar10_resnet20_fl8",
                                              "fashion_mnist_quickstart", "svhn_convnet",
                                              "imagenet_alexnet_bn", "imagenet_resnet18_preact",
                                              "imagenet_resnet50_preact"}));
}

INSTANTIATE_TEST_SUITE_P(Shipped, RecipesTest, ::testing::ValuesIn(RecipeFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return std::filesystem::path(info.param).stem().string();
                         });

}  // namespace
}  // namespace pact
