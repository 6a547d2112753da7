#include "pact/recipe/recipe.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "datasets/dataset.h"
#include "models/model.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/core/violations.h"
#include "pact/optim/optimizer.h"
#include "pact/quant/layer_plan.h"
#include "pact/quant/quantizer.h"

namespace pact {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

// The fields every dataset has; the selected dataset's own options go through its registry.
void CheckDataset(const datasets::DatasetSpec& d, absl::string_view path, Violations& violations) {
  datasets::GetDatasetRegistry().Validate(d, path, violations);
  Violations v = violations.Scoped(path);
  v.Check(d.split() != datasets::SPLIT_UNSPECIFIED, "split", "must be SPLIT_TRAIN or SPLIT_TEST",
          datasets::Split_Name(d.split()));
  v.Check(d.workers() >= 0 && d.workers() <= 256, "workers", "must be in [0, 256]", d.workers());
  if (d.has_normalize()) {
    const auto& n = d.normalize();
    v.Check(n.mean_size() == n.std_size() && n.mean_size() > 0, "normalize",
            "mean and std need the same, non-zero length",
            absl::StrCat(n.mean_size(), " means and ", n.std_size(), " stds"));
    for (int i = 0; i < n.std_size(); ++i) {
      v.Check(n.std(i) > 0, absl::StrCat("normalize.std[", i, "]"), "must be > 0", n.std(i));
    }
  }
}

void CheckQuantization(const QuantizationSpec& q, int epochs, Violations& violations) {
  // Unset quantizers mean full precision, so only set ones are walked.
  if (q.has_activation()) {
    quant::GetActivationQuantizerRegistry().Validate(q.activation(), "quantization.activation",
                                                     violations);
  }
  if (q.has_weight()) {
    quant::GetWeightQuantizerRegistry().Validate(q.weight(), "quantization.weight", violations);
  }
  Violations v = violations.Scoped("quantization");
  if (q.has_lambda_alpha()) {
    v.Check(q.lambda_alpha() >= 0, "lambda_alpha", "must be >= 0", q.lambda_alpha());
  }
  v.Check(q.quant_warmup_epochs() >= 0 && q.quant_warmup_epochs() <= epochs, "quant_warmup_epochs",
          absl::StrCat("must be in [0, train.epochs = ", epochs, "]"), q.quant_warmup_epochs());
  for (int i = 0; i < q.layer_override_size(); ++i) {
    Violations rule = v.Scoped(absl::StrCat("layer_override[", i, "]"));
    quant::ValidateLayerOverride(q.layer_override(i), rule);
  }
}

void CheckTrain(const TrainSpec& t, Violations& violations) {
  Violations v = violations.Scoped("train");
  v.Check(t.epochs() > 0, "epochs", "must be > 0", t.epochs());
  v.Check(t.batch_size() > 0, "batch_size", "must be > 0", t.batch_size());
  v.Check(t.eval_batch_size() > 0, "eval_batch_size", "must be > 0", t.eval_batch_size());
  v.Check(t.device() != DEVICE_UNSPECIFIED, "device", "must be DEVICE_CPU or DEVICE_CUDA",
          Device_Name(t.device()));
  v.Check(t.threads() >= 0, "threads", "must be >= 0 (0 = all cores)", t.threads());
  v.Check(t.eval_every_epochs() > 0, "eval_every_epochs", "must be > 0", t.eval_every_epochs());
  v.Check(t.checkpoint().every_epochs() > 0, "checkpoint.every_epochs", "must be > 0",
          t.checkpoint().every_epochs());
  v.Check(t.log_every_steps() > 0, "log_every_steps", "must be > 0", t.log_every_steps());
}

}  // namespace

namespace {

Violations CollectViolations(const Recipe& recipe) {
  Violations v;
  bool name_ok = !recipe.name().empty();
  for (char c : recipe.name()) name_ok = name_ok && IsNameChar(c);
  v.Check(name_ok, "name", "must be non-empty letters, digits, '_', '-' or '.'",
          absl::StrCat("\"", recipe.name(), "\""));
  models::GetModelRegistry().Validate(recipe.model(), "model", v);
  CheckDataset(recipe.train_data(), "train_data", v);
  CheckDataset(recipe.eval_data(), "eval_data", v);
  optim::GetOptimizerRegistry().Validate(recipe.optimizer(), "optimizer", v);
  // Unset = constant learning rate.
  if (recipe.has_lr_schedule()) {
    optim::GetLrScheduleRegistry().Validate(recipe.lr_schedule(), "lr_schedule", v);
  }
  CheckQuantization(recipe.quantization(), recipe.train().epochs(), v);
  CheckTrain(recipe.train(), v);
  return v;
}

}  // namespace

std::vector<std::string> RecipeViolations(const Recipe& recipe) {
  return CollectViolations(recipe).list();
}

absl::StatusOr<ValidatedRecipe> ValidateRecipe(Recipe recipe, FieldLocations locations) {
  const Violations violations = CollectViolations(recipe);
  if (!violations.empty()) {
    std::vector<std::string> lines;
    for (size_t i = 0; i < violations.size(); ++i) {
      lines.push_back(absl::StrCat(locations.Prefix(violations.paths()[i]), violations.list()[i]));
    }
    return absl::InvalidArgumentError(absl::StrCat("invalid recipe (", lines.size(), " problem",
                                                   lines.size() == 1 ? "" : "s", "):\n  ",
                                                   absl::StrJoin(lines, "\n  ")));
  }
  return ValidatedRecipe(std::move(recipe), std::move(locations));
}

absl::StatusOr<ValidatedRecipe> LoadRecipe(const std::string& path, absl::string_view overrides) {
  Recipe recipe;
  FieldLocations locations;
  PACT_RETURN_IF_ERROR(ReadTextProtoFile(path, &recipe, &locations));
  if (!overrides.empty()) {
    PACT_RETURN_IF_ERROR(MergeTextOverrides(overrides, "--recipe_overrides", &recipe, &locations));
  }
  absl::StatusOr<ValidatedRecipe> validated =
      ValidateRecipe(std::move(recipe), std::move(locations));
  PACT_RETURN_WITH_CONTEXT_IF_ERROR(validated.status(), path);
  return validated;
}

}  // namespace pact
