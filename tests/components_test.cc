// The menu (each spec's oneof) and the registries agree: every choice a recipe can name is
// linked into binaries built from the aggregators, and nothing registered is missing from
// the menu. This is what fails when a component library loses alwayslink (tests link
// statically, --dynamic_mode=off), or when a spec line is forgotten.
#include "datasets/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model.h"
#include "pact/optim/optimizer.h"
#include "pact/quant/quantizer.h"

namespace pact {
namespace {

using ::testing::UnorderedElementsAreArray;

TEST(ComponentsTest, EveryModelChoiceIsLinked) {
  EXPECT_THAT(models::GetModelRegistry().Names(),
              UnorderedElementsAreArray(models::ModelRegistry::ChoiceNames()));
}

TEST(ComponentsTest, EveryDatasetChoiceIsLinked) {
  EXPECT_THAT(datasets::GetDatasetRegistry().Names(),
              UnorderedElementsAreArray(datasets::DatasetRegistry::ChoiceNames()));
}

TEST(ComponentsTest, EveryActivationQuantizerChoiceIsLinked) {
  EXPECT_THAT(quant::GetActivationQuantizerRegistry().Names(),
              UnorderedElementsAreArray(quant::ActivationQuantizerRegistry::ChoiceNames()));
}

TEST(ComponentsTest, EveryWeightQuantizerChoiceIsLinked) {
  EXPECT_THAT(quant::GetWeightQuantizerRegistry().Names(),
              UnorderedElementsAreArray(quant::WeightQuantizerRegistry::ChoiceNames()));
}

TEST(ComponentsTest, EveryOptimizerChoiceIsLinked) {
  EXPECT_THAT(optim::GetOptimizerRegistry().Names(),
              UnorderedElementsAreArray(optim::OptimizerRegistry::ChoiceNames()));
}

TEST(ComponentsTest, EveryLrScheduleChoiceIsLinked) {
  EXPECT_THAT(optim::GetLrScheduleRegistry().Names(),
              UnorderedElementsAreArray(optim::LrScheduleRegistry::ChoiceNames()));
}

}  // namespace
}  // namespace pact
