#include "pact/deploy/trained_model.h"

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pact/core/file.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/recipe/recipe.h"
#include "pact/train/checkpoint.h"
#include "pact/train/components.h"

namespace pact::deploy {

absl::StatusOr<TrainedModel> LoadTrainedModel(const std::string& run_dir,
                                              const std::string& checkpoint) {
  if (checkpoint != "best" && checkpoint != "last") {
    return absl::InvalidArgumentError(
        absl::StrCat("--checkpoint must be best or last, not '", checkpoint, "'"));
  }
  if (!IsDirectory(run_dir)) {
    return absl::NotFoundError(absl::StrCat(run_dir, ": no such run folder"));
  }
  const std::string recipe_path = JoinPath(run_dir, "recipe.pbtxt");
  if (!PathExists(recipe_path)) {
    return absl::NotFoundError(absl::StrCat(recipe_path, ": not found; is ", run_dir,
                                            " a run folder written by //tools:train?"));
  }
  PACT_ASSIGN_OR_RETURN(ValidatedRecipe validated, LoadRecipe(recipe_path, ""));
  TrainedModel trained;
  trained.recipe = validated.proto();
  trained.recipe.mutable_train()->set_device(DEVICE_CPU);
  trained.model_name = SelectedName(trained.recipe.model());
  trained.checkpoint = JoinPath(JoinPath(run_dir, "checkpoints"), checkpoint + ".pt");
  if (!PathExists(trained.checkpoint)) {
    std::vector<std::string> present;
    for (const char* name : {"best", "last"}) {
      if (PathExists(JoinPath(JoinPath(run_dir, "checkpoints"), absl::StrCat(name, ".pt")))) {
        present.push_back(name);
      }
    }
    return absl::NotFoundError(
        absl::StrCat(trained.checkpoint, ": not found; the run has ",
                     present.empty() ? "no checkpoint yet" : absl::StrJoin(present, " and ")));
  }
  PACT_ASSIGN_OR_RETURN(train::Components components,
                        train::BuildComponents(trained.recipe, &validated.locations()));
  trained.model = components.model;
  PACT_ASSIGN_OR_RETURN(const train::InitReport report,
                        train::LoadMatchingTensors(trained.checkpoint, *trained.model));
  if (!report.missing.empty()) {
    return absl::DataLossError(
        absl::StrCat(trained.checkpoint, " lacks ", report.missing.size(),
                     " tensors of the recipe's model: ", absl::StrJoin(report.missing, ", ")));
  }
  trained.model->eval();
  return trained;
}

}  // namespace pact::deploy
