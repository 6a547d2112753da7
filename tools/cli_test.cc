#include "tools/cli.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string RecipesDir() { return std::string(std::getenv("TEST_SRCDIR")) + "/pact_qat/recipes"; }

TEST(NormalizeFlagNamesTest, DashesBecomeUnderscoresInNamesOnly) {
  EXPECT_THAT(NormalizeFlagNames({"train", "--output-dir=runs/my-run", "--act-bits", "3",
                                  "--recipe_overrides=train { epochs: 1 }", "-v", "--", "--x-y"}),
              ElementsAre("train", "--output_dir=runs/my-run", "--act_bits", "3",
                          "--recipe_overrides=train { epochs: 1 }", "-v", "--", "--x-y"));
}

TEST(NormalizeFlagNamesTest, TorchvisionShortFlagsAndAliases) {
  EXPECT_THAT(NormalizeFlagNames({"train", "-b", "64", "-j=3", "--wd", "1e-4", "-h", "--lr=0.1",
                                  "--lambda-alpha", "-1", "-b64", "-wd", "--", "-b"}),
              ElementsAre("train", "--batch_size", "64", "--workers=3", "--weight_decay", "1e-4",
                          "--help", "--lr=0.1", "--lambda_alpha", "-1", "-b64", "-wd", "--", "-b"));
}

TEST(ResolveRecipeTest, OptimizerScheduleAndLoggingFlags) {
  CommandLine cl;
  cl.dataset = "cifar10";  // sgd + multi_step
  cl.lr = 0.05;
  cl.weight_decay = 1e-3;
  cl.momentum = 0.8;
  cl.lr_milestones = "5, 7";
  cl.print_freq = 7;
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe recipe, ResolveRecipe(cl, RecipesDir()));
  EXPECT_DOUBLE_EQ(recipe->optimizer().sgd().lr(), 0.05);
  EXPECT_DOUBLE_EQ(recipe->optimizer().sgd().weight_decay(), 1e-3);
  EXPECT_DOUBLE_EQ(recipe->optimizer().sgd().momentum(), 0.8);
  EXPECT_THAT(recipe->lr_schedule().multi_step().milestones(), ElementsAre(5, 7));
  EXPECT_EQ(recipe->train().log_every_steps(), 7);
}

TEST(ResolveRecipeTest, OptimizerFlagsNameWhatTheOptimizerHas) {
  CommandLine cl;
  cl.dataset = "fashion_mnist";  // adam: no momentum
  cl.momentum = 0.9;
  EXPECT_EQ(ResolveRecipe(cl, RecipesDir()).status().message(),
            "--momentum: optimizer 'adam' has no momentum; its options are lr, beta1, beta2, eps, "
            "weight_decay (set them with --recipe_overrides)");
  cl.momentum.reset();
  cl.lr = 3e-4;
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe adam, ResolveRecipe(cl, RecipesDir()));
  EXPECT_DOUBLE_EQ(adam->optimizer().adam().lr(), 3e-4);
  cl.lr = -1;  // folded, then validation says why it is wrong
  EXPECT_THAT(std::string(ResolveRecipe(cl, RecipesDir()).status().message()),
              HasSubstr("optimizer.adam.lr: must be > 0, got -1"));
  cl.lr.reset();
  cl.lr_milestones = "3,x";
  EXPECT_THAT(std::string(ResolveRecipe(cl, RecipesDir()).status().message()),
              HasSubstr("--lr-milestones 3,x: 'x' is not an epoch number"));
}

TEST(ShippedRecipeForTest, MapsTheSeedsDatasets) {
  EXPECT_EQ(*ShippedRecipeFor("cifar10", std::nullopt), "cifar10_resnet20.pbtxt");
  EXPECT_EQ(*ShippedRecipeFor("imagenet", std::string("resnet50_preact")),
            "imagenet_resnet50_preact.pbtxt");
  EXPECT_THAT(std::string(ShippedRecipeFor("imagenet", std::nullopt).status().message()),
              HasSubstr("--dataset imagenet needs --model, one of: alexnet_bn, resnet18_preact, "
                        "resnet50_preact"));
  EXPECT_THAT(std::string(ShippedRecipeFor("mnist", std::nullopt).status().message()),
              HasSubstr("choose one of: cifar10, fashion_mnist, imagenet, svhn"));
}

TEST(ResolveRecipeTest, FlagsAreFoldedIntoTheShippedRecipe) {
  CommandLine cl;
  cl.dataset = "cifar10";
  cl.data_root = "/data/c10";
  cl.batch_size = 64;
  cl.workers = 3;
  cl.epochs = 1;
  cl.act_bits = 0;
  cl.w_bits = 0;
  cl.quantize_first_last = true;
  cl.lambda_alpha = 0.5;
  cl.quant_warmup_epochs = 1;
  cl.seed = 9;
  cl.device = "CPU";
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe validated, ResolveRecipe(cl, RecipesDir()));
  const Recipe& recipe = *validated;
  EXPECT_EQ(recipe.name(), "cifar10_resnet20");
  EXPECT_EQ(recipe.train_data().data_root(), "/data/c10");
  EXPECT_EQ(recipe.eval_data().data_root(), "/data/c10");
  EXPECT_EQ(recipe.train_data().workers(), 3);
  EXPECT_EQ(recipe.train().batch_size(), 64);
  EXPECT_EQ(recipe.train().epochs(), 1);
  EXPECT_EQ(recipe.quantization().activation().pact().bits(), 0);
  EXPECT_EQ(recipe.quantization().weight().dorefa().bits(), 0);
  EXPECT_TRUE(recipe.quantization().quantize_first_last());
  EXPECT_DOUBLE_EQ(recipe.quantization().lambda_alpha(), 0.5);
  EXPECT_EQ(recipe.quantization().quant_warmup_epochs(), 1);
  EXPECT_EQ(recipe.seed(), 9u);
  EXPECT_EQ(recipe.train().device(), DEVICE_CPU);
}

TEST(ResolveRecipeTest, DataParallelWorkersSplitAllCoresButKeepAnExplicitCount) {
  CommandLine cl;
  cl.dataset = "fashion_mnist";
  cl.dist.world_size = 4;
  cl.dist.local_world_size = 2;
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe split, ResolveRecipe(cl, RecipesDir()));
  EXPECT_EQ(split->train().threads(), dist::ThreadsPerProcess(0, cl.dist));
  EXPECT_GE(split->train().threads(), 1);
  cl.threads = 3;
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe kept, ResolveRecipe(cl, RecipesDir()));
  EXPECT_EQ(kept->train().threads(), 3);
  cl.threads.reset();
  cl.dist = dist::DistEnv();  // one process: 0 stays "all cores"
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe single, ResolveRecipe(cl, RecipesDir()));
  EXPECT_EQ(single->train().threads(), 0);
}

TEST(OutputDirTest, FlagThenRecipeThenRunsName) {
  Recipe recipe;
  recipe.set_name("r20");
  EXPECT_EQ(OutputDir("", recipe), "runs/r20");
  recipe.mutable_output()->set_dir("/data/runs/x");
  EXPECT_EQ(OutputDir("", recipe), "/data/runs/x");
  EXPECT_EQ(OutputDir("mine", recipe), "mine");
}

TEST(ResolveRecipeTest, OverridesComeLastAndReplaceRepeatedFields) {
  CommandLine cl;
  cl.dataset = "cifar10";
  cl.epochs = 5;
  cl.recipe_overrides = "train { epochs: 7 } lr_schedule { multi_step { milestones: [3] } }";
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe validated, ResolveRecipe(cl, RecipesDir()));
  const Recipe& recipe = *validated;
  EXPECT_EQ(recipe.train().epochs(), 7);
  EXPECT_THAT(recipe.lr_schedule().multi_step().milestones(), ElementsAre(3));
}

TEST(ResolveRecipeTest, ModelFlagSwitchesTheModel) {
  CommandLine cl;
  cl.recipe = RecipesDir() + "/cifar10_resnet20.pbtxt";
  cl.model = "resnet20";
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe validated, ResolveRecipe(cl, RecipesDir()));
  const Recipe& recipe = *validated;
  EXPECT_EQ(recipe.model().resnet20().depth(), 20);  // kept: same model
}

TEST(ResolveRecipeTest, BadInputsAreOneActionableMessage) {
  CommandLine cl;
  EXPECT_THAT(std::string(ResolveRecipe(cl, RecipesDir()).status().message()),
              HasSubstr("give --recipe=<file.pbtxt>"));
  cl.dataset = "fashion_mnist";
  cl.act_bits = 99;
  EXPECT_THAT(std::string(ResolveRecipe(cl, RecipesDir()).status().message()),
              HasSubstr("quantization.activation.pact.bits: must be in [0, 16] (0 = clipping "
                        "without quantization), got 99"));
  cl.act_bits.reset();
  cl.device = "tpu";
  EXPECT_EQ(ResolveRecipe(cl, RecipesDir()).status().message(),
            "--device tpu: must be cpu or cuda");
  cl.device.reset();
  cl.recipe = RecipesDir() + "/cifar10_resnet20.pbtxt";
  EXPECT_THAT(std::string(ResolveRecipe(cl, RecipesDir()).status().message()),
              HasSubstr("--dataset fashion_mnist conflicts with"));
  cl.recipe = "/no/such/recipe.pbtxt";
  EXPECT_EQ(ResolveRecipe(cl, RecipesDir()).status().code(), absl::StatusCode::kNotFound);
}

TEST(ResolveRecipeTest, EveryComponentViolationIsListedWithItsPathAndTheRecipe) {
  CommandLine cl;
  cl.recipe = RecipesDir() + "/cifar10_resnet20.pbtxt";
  cl.recipe_overrides = "optimizer { sgd { lr: 0 momentum: 1.5 } }";
  const absl::Status status = ResolveRecipe(cl, RecipesDir()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            cl.recipe +
                ": invalid recipe (2 problems):\n"
                "  --recipe_overrides:1:19: optimizer.sgd.lr: must be > 0, got 0\n"
                "  --recipe_overrides:1:25: optimizer.sgd.momentum: must be in "
                "[0, 1), got 1.5");
}

}  // namespace
}  // namespace pact::tools
