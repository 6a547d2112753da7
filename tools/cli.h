// The seed's command line folded into a Recipe (kept free of gflags so it can be tested).
//
// Precedence: the recipe file < command-line options < --recipe_overrides. Without --recipe,
// --dataset (and --model for imagenet) picks the matching shipped recipe, so
// `train --dataset cifar10 --output-dir runs/cifar10` behaves like the seed's train.py.
#ifndef PACT_TOOLS_CLI_H_
#define PACT_TOOLS_CLI_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "pact/dist/env.h"
#include "pact/proto/recipe.pb.h"
#include "pact/recipe/recipe.h"

namespace pact::tools {

// Options the user gave; unset ones leave the recipe alone.
struct CommandLine {
  std::string recipe;            // path; empty = pick by --dataset/--model
  std::string recipe_overrides;  // text format, repeated fields replaced
  std::optional<std::string> dataset;
  std::optional<std::string> model;
  std::optional<std::string> data_root;
  std::optional<int> batch_size;
  std::optional<int> workers;
  std::optional<int> epochs;
  std::optional<int> act_bits;
  std::optional<int> w_bits;
  bool quantize_first_last = false;
  // Bits of the first conv / last linear weights and the first / last activations: appends
  // layer_override { position: [FIRST, LAST] activation_bits: N weight_bits: N } (0 = full
  // precision there).
  std::optional<int> first_last_bits;
  std::optional<double> lambda_alpha;
  std::optional<int> quant_warmup_epochs;
  std::optional<std::string> device;
  std::optional<uint64_t> seed;
  std::optional<int> threads;
  // The selected optimizer's options of these names (an optimizer without one is an error).
  std::optional<double> lr;
  std::optional<double> weight_decay;
  std::optional<double> momentum;
  // Comma-separated epochs for lr_schedule.multi_step.milestones (replaces them).
  std::optional<std::string> lr_milestones;
  // train.log_every_steps (torchvision's --print-freq).
  std::optional<int> print_freq;
  // This process's place in a data-parallel job: train.threads 0 ("all cores") is split among
  // the workers of one machine.
  dist::DistEnv dist;
};

// The output folder: `flag` when given, else the recipe's output.dir, else runs/<name>.
std::string OutputDir(const std::string& flag, const Recipe& recipe);

// The shipped recipe file name for a dataset/model pair ("cifar10_resnet20.pbtxt"), or
// InvalidArgument/NotFound with the valid choices.
absl::StatusOr<std::string> ShippedRecipeFor(const std::string& dataset,
                                             const std::optional<std::string>& model);

// Loads the recipe (from `command_line.recipe`, or the shipped one under `recipes_dir`), folds
// the options in, applies the overrides and validates. Every error is one actionable message.
absl::StatusOr<ValidatedRecipe> ResolveRecipe(const CommandLine& command_line,
                                              const std::string& recipes_dir);

// Rewrites "--output-dir=x" as "--output_dir=x" (the seed spells flags with dashes) and the
// short or alternative spellings torchvision's reference scripts use: "-b" = --batch_size,
// "-j" = --workers, "--wd" = --weight_decay, "--test-only" = --evaluate, "-h" = --help. Values and
// non-flag arguments are left alone.
// Switches `spec`'s `oneof impl` to `name` with default options (keeps the choice if already
// there). InvalidArgument "no such choice '<name>'" when `spec` has no such choice.
absl::Status SelectByName(google::protobuf::Message* spec, const std::string& name);

std::vector<std::string> NormalizeFlagNames(const std::vector<std::string>& args);

}  // namespace pact::tools

#endif  // PACT_TOOLS_CLI_H_
