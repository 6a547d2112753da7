#include "tools/cli.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "datasets/dataset.h"
#include "models/model.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/recipe/recipe.h"

namespace pact::tools {
namespace {

// The seed's datasets and the recipes that reproduce its commands.
const std::map<std::string, std::string>& DatasetRecipes() {
  static const auto* recipes = new std::map<std::string, std::string>{
      {"cifar10", "cifar10_resnet20.pbtxt"},
      {"svhn", "svhn_convnet.pbtxt"},
      {"fashion_mnist", "fashion_mnist_quickstart.pbtxt"},
  };
  return *recipes;
}

const std::vector<std::string>& ImagenetModels() {
  static const auto* models =
      new std::vector<std::string>{"alexnet_bn", "resnet18_preact", "resnet50_preact"};
  return *models;
}

// Sets the double field `field` of the selected optimizer's options, or says which fields
// that optimizer has.
absl::Status SetOptimizerOption(const std::string& flag, const std::string& field, double value,
                                optim::OptimizerSpec* spec, FieldLocations* locations) {
  const std::string name = SelectedName(*spec);
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": the recipe selects no optimizer"));
  }
  google::protobuf::Message* options =
      spec->GetReflection()->MutableMessage(spec, spec->GetDescriptor()->FindFieldByName(name));
  const google::protobuf::Descriptor* type = options->GetDescriptor();
  const google::protobuf::FieldDescriptor* f = type->FindFieldByName(field);
  if (f == nullptr || f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE) {
    std::vector<std::string> numbers;
    for (int i = 0; i < type->field_count(); ++i) {
      if (type->field(i)->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE) {
        numbers.push_back(type->field(i)->name());
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": optimizer '", name, "' has no ", field, "; its options are ",
                     absl::StrJoin(numbers, ", "), " (set them with --recipe_overrides)"));
  }
  options->GetReflection()->SetDouble(options, f, value);
  locations->Set(absl::StrCat("optimizer.", name, ".", field), flag);
  return absl::OkStatus();
}

// "30,60,90" as lr_schedule.multi_step.milestones (other schedules have none).
absl::Status SetMilestones(const std::string& list, optim::LrScheduleSpec* spec,
                           FieldLocations* locations) {
  const std::string name = SelectedName(*spec);
  if (!name.empty() && !spec->has_multi_step()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lr-milestones needs lr_schedule.multi_step, but the recipe's schedule is '", name,
        "'; use --recipe_overrides='lr_schedule { multi_step { milestones: [...] } }'"));
  }
  auto* milestones = spec->mutable_multi_step()->mutable_milestones();
  milestones->Clear();
  for (absl::string_view piece : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    int epoch = 0;
    if (!absl::SimpleAtoi(piece, &epoch)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--lr-milestones ", list, ": '", piece, "' is not an epoch number; give e.g. 30,60,90"));
    }
    milestones->Add(epoch);
  }
  FieldLocations from_flag;
  for (int i = 0; i < milestones->size(); ++i) {
    from_flag.Set(absl::StrCat("lr_schedule.multi_step.milestones[", i, "]"), "--lr-milestones");
  }
  from_flag.Set("lr_schedule.multi_step.milestones", "--lr-milestones");
  locations->Override(from_flag);
  return absl::OkStatus();
}

// The optimizer, schedule and logging options of the command line.
absl::Status FoldTrainingOptions(const CommandLine& cl, Recipe* recipe, FieldLocations* locations) {
  if (cl.lr.has_value()) {
    PACT_RETURN_IF_ERROR(
        SetOptimizerOption("--lr", "lr", *cl.lr, recipe->mutable_optimizer(), locations));
  }
  if (cl.weight_decay.has_value()) {
    PACT_RETURN_IF_ERROR(SetOptimizerOption("--wd", "weight_decay", *cl.weight_decay,
                                            recipe->mutable_optimizer(), locations));
  }
  if (cl.momentum.has_value()) {
    PACT_RETURN_IF_ERROR(SetOptimizerOption("--momentum", "momentum", *cl.momentum,
                                            recipe->mutable_optimizer(), locations));
  }
  if (cl.lr_milestones.has_value()) {
    PACT_RETURN_IF_ERROR(
        SetMilestones(*cl.lr_milestones, recipe->mutable_lr_schedule(), locations));
  }
  if (cl.print_freq.has_value()) {
    recipe->mutable_train()->set_log_every_steps(*cl.print_freq);
    locations->Set("train.log_every_steps", "--print-freq");
  }
  return absl::OkStatus();
}

// The quantization options of the command line.
void FoldQuantizationOptions(const CommandLine& cl, Recipe* recipe, FieldLocations* locations) {
  QuantizationSpec* q = recipe->mutable_quantization();
  // The seed's network always uses PACT; --act-bits sets its bits (0 = clipping only).
  if (cl.act_bits.has_value()) {
    q->mutable_activation()->mutable_pact()->set_bits(*cl.act_bits);
    locations->Set("quantization.activation.pact.bits", "--act-bits");
  }
  if (cl.w_bits.has_value()) {
    q->mutable_weight()->mutable_dorefa()->set_bits(*cl.w_bits);
    locations->Set("quantization.weight.dorefa.bits", "--w-bits");
  }
  if (cl.quantize_first_last) {
    q->set_quantize_first_last(true);
    locations->Set("quantization.quantize_first_last", "--quantize-first-last");
  }
  if (cl.first_last_bits.has_value()) {
    quant::LayerOverride* rule = q->add_layer_override();
    rule->add_position(quant::LayerOverride::FIRST);
    rule->add_position(quant::LayerOverride::LAST);
    rule->set_activation_bits(*cl.first_last_bits);
    rule->set_weight_bits(*cl.first_last_bits);
    locations->Set(absl::StrCat("quantization.layer_override[", q->layer_override_size() - 1, "]"),
                   "--first-last-bits");
  }
  if (cl.lambda_alpha.has_value()) {
    q->set_lambda_alpha(*cl.lambda_alpha);
    locations->Set("quantization.lambda_alpha", "--lambda-alpha");
  }
  if (cl.quant_warmup_epochs.has_value()) {
    q->set_quant_warmup_epochs(*cl.quant_warmup_epochs);
    locations->Set("quantization.quant_warmup_epochs", "--quant-warmup-epochs");
  }
}

}  // namespace

absl::Status SelectByName(google::protobuf::Message* spec, const std::string& name) {
  const auto* field = spec->GetDescriptor()->FindFieldByName(name);
  if (field == nullptr || field->containing_oneof() == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("no such choice '", name, "'"));
  }
  spec->GetReflection()->MutableMessage(spec, field);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ShippedRecipeFor(const std::string& dataset,
                                             const std::optional<std::string>& model) {
  if (dataset == "imagenet") {
    if (!model.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("--dataset imagenet needs --model, one of: ",
                                                     absl::StrJoin(ImagenetModels(), ", ")));
    }
    for (const auto& m : ImagenetModels()) {
      if (*model == m) return absl::StrCat("imagenet_", m, ".pbtxt");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--model ", *model,
        ": no ImageNet recipe; choose one of: ", absl::StrJoin(ImagenetModels(), ", ")));
  }
  auto it = DatasetRecipes().find(dataset);
  if (it == DatasetRecipes().end()) {
    std::vector<std::string> names = {"imagenet"};
    for (const auto& [name, file] : DatasetRecipes()) names.push_back(name);
    std::sort(names.begin(), names.end());
    return absl::InvalidArgumentError(absl::StrCat(
        "--dataset ", dataset, ": unknown dataset; choose one of: ", absl::StrJoin(names, ", ")));
  }
  return it->second;
}

absl::StatusOr<ValidatedRecipe> ResolveRecipe(const CommandLine& cl,
                                              const std::string& recipes_dir) {
  std::string path = cl.recipe;
  if (path.empty()) {
    if (!cl.dataset.has_value()) {
      return absl::InvalidArgumentError(
          "give --recipe=<file.pbtxt> (see recipes/) or --dataset (cifar10, fashion_mnist, "
          "imagenet, svhn)");
    }
    PACT_ASSIGN_OR_RETURN(std::string file, ShippedRecipeFor(*cl.dataset, cl.model));
    path = absl::StrCat(recipes_dir, "/", file);
  }
  Recipe recipe;
  FieldLocations locations;
  PACT_RETURN_IF_ERROR(ReadTextProtoFile(path, &recipe, &locations));

  if (cl.dataset.has_value()) {
    // Datasets must be linked; the registry lists the valid names otherwise.
    PACT_RETURN_WITH_CONTEXT_IF_ERROR(datasets::GetDatasetRegistry().CheckName(*cl.dataset),
                                      "--dataset");
    const std::string current = SelectedName(recipe.train_data());
    if (!cl.recipe.empty() && current != *cl.dataset) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dataset ", *cl.dataset, " conflicts with ", path, ", which trains on ",
                       current, "; drop --dataset or pick a recipe for ", *cl.dataset));
    }
  }
  if (cl.model.has_value()) {
    PACT_RETURN_WITH_CONTEXT_IF_ERROR(models::GetModelRegistry().CheckName(*cl.model), "--model");
    if (SelectedName(recipe.model()) != *cl.model) {
      recipe.clear_model();
      PACT_RETURN_IF_ERROR(SelectByName(recipe.mutable_model(), *cl.model));
      locations.Set("model", "--model");
    }
  }
  if (cl.data_root.has_value()) {
    recipe.mutable_train_data()->set_data_root(*cl.data_root);
    recipe.mutable_eval_data()->set_data_root(*cl.data_root);
    locations.Set("train_data.data_root", "--data-root");
    locations.Set("eval_data.data_root", "--data-root");
  }
  if (cl.workers.has_value()) {
    recipe.mutable_train_data()->set_workers(*cl.workers);
    recipe.mutable_eval_data()->set_workers(*cl.workers);
    locations.Set("train_data.workers", "--workers");
    locations.Set("eval_data.workers", "--workers");
  }
  if (cl.batch_size.has_value()) {
    recipe.mutable_train()->set_batch_size(*cl.batch_size);
    locations.Set("train.batch_size", "--batch-size");
  }
  if (cl.epochs.has_value()) {
    recipe.mutable_train()->set_epochs(*cl.epochs);
    locations.Set("train.epochs", "--epochs");
  }
  if (cl.threads.has_value()) {
    recipe.mutable_train()->set_threads(*cl.threads);
    locations.Set("train.threads", "--threads");
  }
  PACT_RETURN_IF_ERROR(FoldTrainingOptions(cl, &recipe, &locations));
  if (cl.dist.distributed() && recipe.train().threads() == 0) {
    recipe.mutable_train()->set_threads(dist::ThreadsPerProcess(0, cl.dist));
  }
  if (cl.seed.has_value()) {
    recipe.set_seed(*cl.seed);
    locations.Set("seed", "--seed");
  }
  FoldQuantizationOptions(cl, &recipe, &locations);
  if (cl.device.has_value()) {
    const std::string device = absl::AsciiStrToLower(*cl.device);
    if (device == "cpu") {
      recipe.mutable_train()->set_device(DEVICE_CPU);
    } else if (device == "cuda" || device == "cuda:0" || device == "gpu") {
      recipe.mutable_train()->set_device(DEVICE_CUDA);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--device ", *cl.device, ": must be cpu or cuda"));
    }
  }
  if (!cl.recipe_overrides.empty()) {
    PACT_RETURN_IF_ERROR(
        MergeTextOverrides(cl.recipe_overrides, "--recipe_overrides", &recipe, &locations));
  }
  absl::StatusOr<ValidatedRecipe> validated =
      ValidateRecipe(std::move(recipe), std::move(locations));
  PACT_RETURN_WITH_CONTEXT_IF_ERROR(validated.status(), path);
  return validated;
}

std::string OutputDir(const std::string& flag, const Recipe& recipe) {
  if (!flag.empty()) return flag;
  return recipe.output().dir().empty() ? "runs/" + recipe.name() : recipe.output().dir();
}

std::vector<std::string> NormalizeFlagNames(const std::vector<std::string>& args) {
  static const auto* aliases = new std::map<std::string, std::string>{{"b", "batch_size"},
                                                                      {"j", "workers"},
                                                                      {"h", "help"},
                                                                      {"wd", "weight_decay"},
                                                                      {"test_only", "evaluate"}};
  std::vector<std::string> out;
  out.reserve(args.size());
  bool after_double_dash = false;
  for (const std::string& arg : args) {
    const bool is_long = absl::StartsWith(arg, "--") && arg != "--";
    const bool is_short = !is_long && arg.size() >= 2 && arg[0] == '-' && arg[1] != '-';
    if (after_double_dash || !(is_long || is_short)) {
      after_double_dash = after_double_dash || arg == "--";
      out.push_back(arg);
      continue;
    }
    const size_t start = is_long ? 2 : 1;
    const size_t eq = arg.find('=');
    std::string name = arg.substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    for (char& c : name) c = c == '-' ? '_' : c;
    auto alias = aliases->find(name);
    // Short flags other than the aliases (e.g. glog's -v) pass through unchanged.
    if (is_short && (alias == aliases->end() || name.size() != 1)) {
      out.push_back(arg);
      continue;
    }
    if (alias != aliases->end()) name = alias->second;
    out.push_back(absl::StrCat("--", name, eq == std::string::npos ? "" : arg.substr(eq)));
  }
  return out;
}

}  // namespace pact::tools
