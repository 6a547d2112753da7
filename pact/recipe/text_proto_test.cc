#include "pact/core/text_proto.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/proto/recipe.pb.h"

namespace pact {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseTextProtoTest, ParsesAValidRecipe) {
  Recipe recipe;
  PACT_ASSERT_OK(ParseTextProto(R"pb(
                                  name: "r"
                                  model { resnet20 { depth: 32 } }
                                  lr_schedule { multi_step { milestones: [ 60, 120 ] } }
                                )pb",
                                "r.pbtxt", &recipe));
  EXPECT_EQ(recipe.model().resnet20().depth(), 32);
  EXPECT_THAT(recipe.lr_schedule().multi_step().milestones(), ElementsAre(60, 120));
}

TEST(FieldLocationsTest, RecordsWhereEveryFieldWasWrittenAndFindsTheNearestAncestor) {
  Recipe recipe;
  FieldLocations locations;
  PACT_ASSERT_OK(
      ParseTextProto("name: \"r\"\n"
                     "optimizer { sgd { lr: 0.1 } }\n"
                     "lr_schedule { multi_step { milestones: [60, 120] } }\n"
                     "quantization {\n"
                     "  layer_override { position: FIRST weight_bits: 8 }\n"
                     "  layer_override { name: \"fc\" weight_bits: 4 }\n"
                     "}\n",
                     "x.pbtxt", &recipe, &locations));
  EXPECT_EQ(locations.Find("name"), "x.pbtxt:1:1");
  EXPECT_EQ(locations.Find("optimizer.sgd.lr"), "x.pbtxt:2:19");
  EXPECT_EQ(locations.Find("optimizer.sgd.momentum"), "x.pbtxt:2:13");  // unset: its message
  EXPECT_EQ(locations.Find("quantization.layer_override[1]"), "x.pbtxt:6:3");
  EXPECT_EQ(locations.Find("quantization.layer_override[1].weight_bits"), "x.pbtxt:6:31");
  EXPECT_EQ(locations.Find("train.epochs"), "");
  EXPECT_EQ(locations.Prefix("train.epochs"), "");
  EXPECT_EQ(locations.Prefix("name"), "x.pbtxt:1:1: ");

  // Overrides replace repeated fields: the recipe's elements no longer point at the file.
  PACT_ASSERT_OK(
      MergeTextOverrides("quantization { layer_override { name: \"conv1\" "
                         "weight_bits: 2 } }",
                         "--recipe_overrides", &recipe, &locations));
  ASSERT_EQ(recipe.quantization().layer_override_size(), 1);
  EXPECT_EQ(locations.Find("quantization.layer_override[0].weight_bits"),
            "--recipe_overrides:1:47");
  EXPECT_EQ(locations.Find("quantization.layer_override[1]"), "--recipe_overrides:1:1");
  EXPECT_EQ(locations.Find("optimizer.sgd.lr"), "x.pbtxt:2:19");
}

TEST(ParseTextProtoTest, UnknownFieldReportsPathLineAndColumn) {
  Recipe recipe;
  const absl::Status status =
      ParseTextProto("name: \"r\"\nmodel { resnet20 { dept: 20 } }\n", "recipes/x.pbtxt", &recipe);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "recipes/x.pbtxt:2:20: Message type \"pact.models.CifarResNetOptions\" has no field "
            "named \"dept\".");
}

TEST(ParseTextProtoTest, TwoOneofChoicesAreRejectedWithLocation) {
  Recipe recipe;
  const absl::Status status =
      ParseTextProto("optimizer {\n  sgd {}\n  adam {}\n}\n", "two.pbtxt", &recipe);
  EXPECT_THAT(std::string(status.message()), HasSubstr("two.pbtxt:3:"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("oneof"));
}

TEST(ParseTextProtoTest, BadValueTypeIsLocated) {
  Recipe recipe;
  const absl::Status status = ParseTextProto("train { epochs: \"many\" }", "t.pbtxt", &recipe);
  EXPECT_THAT(std::string(status.message()), HasSubstr("t.pbtxt:1:17: Expected integer"));
}

TEST(ReadTextProtoFileTest, MissingFileIsNotFound) {
  Recipe recipe;
  const absl::Status status = ReadTextProtoFile("/nonexistent/recipe.pbtxt", &recipe);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("/nonexistent/recipe.pbtxt"));
}

TEST(MergeTextOverridesTest, RepeatedFieldsAreReplacedNotAppended) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(
      "lr_schedule { multi_step { milestones: [60, 120] gamma: 0.2 } } train { epochs: 200 }");
  PACT_ASSERT_OK(MergeTextOverrides("lr_schedule { multi_step { milestones: [30] } }",
                                    "--recipe_overrides", &recipe));
  EXPECT_THAT(recipe.lr_schedule().multi_step().milestones(), ElementsAre(30));
  // Fields the override does not mention are kept.
  EXPECT_FLOAT_EQ(recipe.lr_schedule().multi_step().gamma(), 0.2);
  EXPECT_EQ(recipe.train().epochs(), 200);
}

TEST(MergeTextOverridesTest, SingularFieldsAndNestedMessagesMerge) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(
      "train { epochs: 200 batch_size: 128 } optimizer { sgd { lr: 0.1 momentum: 0.9 } }");
  PACT_ASSERT_OK(MergeTextOverrides("train { epochs: 1 } optimizer { sgd { lr: 0.05 } }",
                                    "--recipe_overrides", &recipe));
  EXPECT_EQ(recipe.train().epochs(), 1);
  EXPECT_EQ(recipe.train().batch_size(), 128);
  EXPECT_DOUBLE_EQ(recipe.optimizer().sgd().lr(), 0.05);
  EXPECT_DOUBLE_EQ(recipe.optimizer().sgd().momentum(), 0.9);
}

TEST(MergeTextOverridesTest, SwitchingAOneofDropsTheOldChoice) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>("optimizer { sgd { lr: 0.1 } }");
  PACT_ASSERT_OK(
      MergeTextOverrides("optimizer { adam { lr: 0.001 } }", "--recipe_overrides", &recipe));
  EXPECT_FALSE(recipe.optimizer().has_sgd());
  EXPECT_DOUBLE_EQ(recipe.optimizer().adam().lr(), 0.001);
}

TEST(MergeTextOverridesTest, BadOverrideIsLocatedAndLeavesTheRecipeUntouched) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>("train { epochs: 200 }");
  const absl::Status status =
      MergeTextOverrides("train { epoch: 1 }", "--recipe_overrides", &recipe);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("--recipe_overrides:1:9: Message type \"pact.TrainSpec\" has no field "
                        "named \"epoch\"."));
  EXPECT_EQ(recipe.train().epochs(), 200);
}

}  // namespace
}  // namespace pact
