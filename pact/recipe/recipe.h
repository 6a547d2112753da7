// Loading and validating pact.Recipe text protos.
//
// Validation collects every violation at once; each reads
// `<field path>: <what is required>, got <value>` so a user can fix a recipe in one pass.
// Recipe-level fields are checked here; each selected component's options are checked by the
// validator it registered (registry.h), under its field path ("optimizer.sgd.lr"). What needs
// the file system (a dataset's files) is checked when the component is built.
#ifndef PACT_RECIPE_RECIPE_H_
#define PACT_RECIPE_RECIPE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pact/core/text_proto.h"
#include "pact/proto/recipe.pb.h"

namespace pact {

class ValidatedRecipe;

// `recipe` if it has no violations, else InvalidArgument listing every one (one per line),
// each prefixed with where its field was written when `locations` knows
// ("recipes/x.pbtxt:12:5: optimizer.sgd.lr: must be > 0, got 0").
absl::StatusOr<ValidatedRecipe> ValidateRecipe(Recipe recipe, FieldLocations locations = {});

// A Recipe that passed ValidateRecipe; only ValidateRecipe makes one, so code that takes a
// ValidatedRecipe need not validate again.
class ValidatedRecipe {
 public:
  const Recipe& proto() const { return recipe_; }
  const Recipe& operator*() const { return recipe_; }
  const Recipe* operator->() const { return &recipe_; }
  // Where its fields came from (file:line:col or a flag), for errors found later.
  const FieldLocations& locations() const { return locations_; }

 private:
  ValidatedRecipe(Recipe recipe, FieldLocations locations)
      : recipe_(std::move(recipe)), locations_(std::move(locations)) {}
  friend absl::StatusOr<ValidatedRecipe> ValidateRecipe(Recipe recipe, FieldLocations locations);

  Recipe recipe_;
  FieldLocations locations_;
};

// Reads `path`, merges `overrides` (text format, repeated fields replaced; may be empty) and
// validates the result; errors are prefixed with `path`.
absl::StatusOr<ValidatedRecipe> LoadRecipe(const std::string& path, absl::string_view overrides);

// All violations of `recipe`, each "<field path>: <problem>"; empty when valid. Components
// that are selected but not linked into the binary are violations too.
std::vector<std::string> RecipeViolations(const Recipe& recipe);

}  // namespace pact

#endif  // PACT_RECIPE_RECIPE_H_
