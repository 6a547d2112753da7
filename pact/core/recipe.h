// Loading and validating pact.Recipe text protos.
//
// Validation collects every violation at once; each reads
// `<field path>: <what is required>, got <value>` so a user can fix a recipe in one pass.
// Component-specific options (a model's depth, a dataset's files) are checked by the
// component's factory when --dry_run builds it.
#ifndef PACT_CORE_RECIPE_H_
#define PACT_CORE_RECIPE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pact/proto/recipe.pb.h"

namespace pact {

// Reads `path`, merges `overrides` (text format, repeated fields replaced; may be empty) and
// validates the result.
absl::StatusOr<Recipe> LoadRecipe(const std::string& path, absl::string_view overrides);

// All violations of `recipe`, each "<field path>: <problem>"; empty when valid.
std::vector<std::string> RecipeViolations(const Recipe& recipe);

// InvalidArgument listing every violation (one per line), or OK.
absl::Status ValidateRecipe(const Recipe& recipe);

// lambda_alpha with its documented default: the optimizer's weight decay when unset.
double EffectiveLambdaAlpha(const Recipe& recipe);

// The optimizer's weight decay (0 when no optimizer is selected).
double OptimizerWeightDecay(const Recipe& recipe);

}  // namespace pact

#endif  // PACT_CORE_RECIPE_H_
