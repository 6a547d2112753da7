#include "pact/quant/layer_plan.h"

#include <torch/nn/module.h>

#include <map>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "google/protobuf/message.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/quant/quantizer.h"
#include "re2/re2.h"

namespace pact::quant {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr int kMaxRuleBits = 16;

const char* PositionName(LayerPosition position) {
  switch (position) {
    case LayerPosition::kFirst:
      return "first";
    case LayerPosition::kLast:
      return "last";
    case LayerPosition::kMiddle:
      return "middle";
  }
  return "?";
}

bool MatchesPosition(const LayerOverride& rule, LayerPosition position) {
  if (rule.position_size() == 0) return true;
  for (int p : rule.position()) {
    if ((p == LayerOverride::FIRST && position == LayerPosition::kFirst) ||
        (p == LayerOverride::LAST && position == LayerPosition::kLast)) {
      return true;
    }
  }
  return false;
}

bool SetsActivation(const LayerOverride& rule) {
  return rule.has_activation() || rule.has_activation_bits();
}
bool SetsWeight(const LayerOverride& rule) { return rule.has_weight() || rule.has_weight_bits(); }

// The selected options of a quantizer spec's `oneof impl`; null when nothing is selected.
Message* SelectedOptions(Message* spec) {
  const auto* oneof = spec->GetDescriptor()->FindOneofByName("impl");
  const FieldDescriptor* field = spec->GetReflection()->GetOneofFieldDescriptor(*spec, oneof);
  return field == nullptr ? nullptr : spec->GetReflection()->MutableMessage(spec, field);
}

// Sets the selected quantizer's int32 `bits`; false when it has none.
bool SetBits(Message* spec, int bits) {
  Message* options = SelectedOptions(spec);
  if (options == nullptr) return false;
  const FieldDescriptor* field = options->GetDescriptor()->FindFieldByName("bits");
  if (field == nullptr || field->cpp_type() != FieldDescriptor::CPPTYPE_INT32 ||
      field->is_repeated()) {
    return false;
  }
  options->GetReflection()->SetInt32(options, field, bits);
  return true;
}

std::string ChoiceOrDefault(const Message& spec, absl::string_view unset) {
  const auto* oneof = spec.GetDescriptor()->FindOneofByName("impl");
  const FieldDescriptor* field = spec.GetReflection()->GetOneofFieldDescriptor(spec, oneof);
  return field == nullptr ? std::string(unset) : field->name();
}

std::string SiteList(const std::vector<LayerSite>& sites) {
  std::vector<std::string> names;
  names.reserve(sites.size());
  for (const LayerSite& site : sites) {
    names.push_back(site.position == LayerPosition::kMiddle
                        ? absl::StrCat(site.name, " (", LayerKindName(site.kind), ")")
                        : absl::StrCat(site.name, " (", LayerKindName(site.kind), ", ",
                                       PositionName(site.position), ")"));
  }
  return absl::StrJoin(names, ", ");
}

// Applies `rule` to an activation site.
absl::Status ApplyToActivation(const LayerOverride& rule, const std::string& label,
                               const LayerSite& site, ResolvedLayer& layer) {
  if (rule.has_activation()) {
    layer.activation = rule.activation();
    layer.quantize = true;
  }
  if (!rule.has_activation_bits()) return absl::OkStatus();
  if (rule.activation_bits() == 0) {
    layer.quantize = false;
    return absl::OkStatus();
  }
  if (!SetBits(&layer.activation, rule.activation_bits())) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": activation_bits: ", rule.activation_bits(), " needs a quantizer with bits, but '",
        site.name, "' has '", ChoiceOrDefault(layer.activation, "relu"),
        "'; give the rule a quantizer too, e.g. activation { pact { bits: ", rule.activation_bits(),
        " } }"));
  }
  layer.quantize = true;
  return absl::OkStatus();
}

// Applies `rule` to a conv/linear site.
absl::Status ApplyToWeight(const LayerOverride& rule, const std::string& label,
                           const LayerSite& site, const QuantizationPolicy& policy,
                           ResolvedLayer& layer) {
  if (rule.has_weight()) layer.weight = rule.weight();
  if (!rule.has_weight_bits()) return absl::OkStatus();
  if (rule.weight_bits() == 0) {
    layer.weight.Clear();  // none: full precision
    return absl::OkStatus();
  }
  if (SetBits(&layer.weight, rule.weight_bits())) return absl::OkStatus();
  // A full-precision layer (the paper's first/last) takes the recipe's weight quantizer.
  WeightQuantizerSpec from_recipe = policy.weight.value_or(WeightQuantizerSpec());
  if (SetBits(&from_recipe, rule.weight_bits())) {
    layer.weight = std::move(from_recipe);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      label, ": weight_bits: ", rule.weight_bits(), " needs a weight quantizer with bits, but '",
      site.name, "' has '", ChoiceOrDefault(layer.weight, "none"), "' and the recipe's is '",
      policy.weight.has_value() ? ChoiceOrDefault(*policy.weight, "none") : "none",
      "'; give the rule a quantizer too, e.g. weight { dorefa { bits: ", rule.weight_bits(),
      " } }"));
}

// Builds quantizers once per distinct spec (they are stateless; per-layer state lives in the
// modules they create).
class QuantizerCache {
 public:
  absl::StatusOr<std::shared_ptr<const ActivationQuantizer>> Activation(
      const ActivationQuantizerSpec& spec) {
    if (ChoiceOrDefault(spec, "").empty()) return nullptr;  // relu
    auto& slot = activations_[spec.SerializeAsString()];
    if (slot == nullptr) {
      PACT_ASSIGN_OR_RETURN(slot, GetActivationQuantizerRegistry().Create(spec, {}));
    }
    return slot;
  }
  absl::StatusOr<std::shared_ptr<const WeightQuantizer>> Weight(const WeightQuantizerSpec& spec) {
    if (ChoiceOrDefault(spec, "").empty()) return nullptr;  // none
    auto& slot = weights_[spec.SerializeAsString()];
    if (slot == nullptr) {
      PACT_ASSIGN_OR_RETURN(slot, GetWeightQuantizerRegistry().Create(spec, {}));
    }
    return slot;
  }

 private:
  std::map<std::string, std::shared_ptr<const ActivationQuantizer>> activations_;
  std::map<std::string, std::shared_ptr<const WeightQuantizer>> weights_;
};

// The layers `layers` made, named by where `model` registered them.
absl::StatusOr<std::vector<LayerSite>> NameSites(const LayerBuilder& layers,
                                                 torch::nn::Module& model) {
  std::unordered_map<const torch::nn::Module*, std::string> names;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    names.emplace(item.value().get(), item.key());  // the first path wins for shared modules
  }
  std::vector<LayerSite> sites;
  for (size_t i = 0; i < layers.made().size(); ++i) {
    const LayerBuilder::Made& made = layers.made()[i];
    auto it = names.find(made.module);
    if (it == names.end()) {
      return absl::InternalError(absl::StrCat("layer ", i, " (", LayerKindName(made.kind),
                                              ") was built but not registered in the model, so "
                                              "per-layer rules cannot name it"));
    }
    sites.push_back({it->second, made.kind, made.position});
  }
  return sites;
}

}  // namespace

const char* LayerKindName(LayerKind kind) {
  switch (kind) {
    case LayerKind::kConv:
      return "conv";
    case LayerKind::kLinear:
      return "linear";
    case LayerKind::kActivation:
      return "activation";
  }
  return "?";
}

absl::StatusOr<std::vector<ResolvedLayer>> ResolveLayers(const QuantizationPolicy& policy,
                                                         const std::vector<LayerSite>& sites) {
  std::vector<ResolvedLayer> resolved(sites.size());
  for (size_t i = 0; i < sites.size(); ++i) {
    const bool quantized =
        policy.quantize_first_last || sites[i].position == LayerPosition::kMiddle;
    if (policy.activation.has_value()) resolved[i].activation = *policy.activation;
    resolved[i].quantize = quantized;
    if (quantized && policy.weight.has_value()) resolved[i].weight = *policy.weight;
  }
  for (size_t r = 0; r < policy.rules.size(); ++r) {
    const LayerOverride& rule = policy.rules[r];
    const std::string label = r < policy.rule_labels.size() && !policy.rule_labels[r].empty()
                                  ? policy.rule_labels[r]
                                  : absl::StrCat("layer_override[", r, "]");
    std::unique_ptr<RE2> name;
    if (rule.has_name()) {
      name = std::make_unique<RE2>(rule.name(), RE2::Quiet);
      if (!name->ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            label, ": name: invalid regular expression \"", rule.name(), "\": ", name->error()));
      }
    }
    int changed = 0;
    for (size_t i = 0; i < sites.size(); ++i) {
      const LayerSite& site = sites[i];
      if (name != nullptr && !RE2::FullMatch(site.name, *name)) continue;
      if (!MatchesPosition(rule, site.position)) continue;
      if (site.kind == LayerKind::kActivation) {
        if (!SetsActivation(rule)) continue;
        PACT_RETURN_IF_ERROR(ApplyToActivation(rule, label, site, resolved[i]));
      } else {
        if (!SetsWeight(rule)) continue;
        PACT_RETURN_IF_ERROR(ApplyToWeight(rule, label, site, policy, resolved[i]));
      }
      ++changed;
    }
    if (changed == 0) {
      const std::string what = SetsActivation(rule) && SetsWeight(rule) ? "layer"
                               : SetsActivation(rule)                   ? "activation"
                                                                        : "conv/linear layer";
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": matches no ", what, " of the model (name \"", rule.name(), "\", ",
                       rule.position_size(), " position(s)); its layers are: ", SiteList(sites)));
    }
  }
  return resolved;
}

absl::StatusOr<PlannedModel> BuildPlannedModel(const QuantizationPolicy& policy,
                                               const ModelFactory& factory) {
  QuantizerCache cache;
  PACT_ASSIGN_OR_RETURN(auto activation,
                        cache.Activation(policy.activation.value_or(ActivationQuantizerSpec())));
  PACT_ASSIGN_OR_RETURN(auto weight, cache.Weight(policy.weight.value_or(WeightQuantizerSpec())));
  auto layers = std::make_shared<LayerBuilder>(activation, weight, policy.quantize_first_last);
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<torch::nn::Module> model,
                        TorchCall("building the model", [&] { return factory(layers); }));
  if (policy.rules.empty()) return PlannedModel{std::move(model), std::move(layers)};

  PACT_ASSIGN_OR_RETURN(const std::vector<LayerSite> sites, NameSites(*layers, *model));
  PACT_ASSIGN_OR_RETURN(const std::vector<ResolvedLayer> resolved, ResolveLayers(policy, sites));
  std::vector<LayerChoice> plan(sites.size());
  for (size_t i = 0; i < sites.size(); ++i) {
    const absl::Status status = [&]() -> absl::Status {
      if (sites[i].kind == LayerKind::kActivation) {
        PACT_ASSIGN_OR_RETURN(plan[i].activation, cache.Activation(resolved[i].activation));
        plan[i].quantize = resolved[i].quantize;
      } else {
        PACT_ASSIGN_OR_RETURN(plan[i].weight, cache.Weight(resolved[i].weight));
      }
      return absl::OkStatus();
    }();
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("layer '", sites[i].name, "': ", status.message()));
    }
  }
  model.reset();
  auto planned = std::make_shared<LayerBuilder>(std::move(plan));
  PACT_ASSIGN_OR_RETURN(model, TorchCall("building the model with per-layer quantizers",
                                         [&] { return factory(planned); }));
  PACT_ASSIGN_OR_RETURN(const std::vector<LayerSite> rebuilt, NameSites(*planned, *model));
  bool same = rebuilt.size() == sites.size();
  for (size_t i = 0; same && i < sites.size(); ++i) {
    same = rebuilt[i].name == sites[i].name && rebuilt[i].kind == sites[i].kind &&
           rebuilt[i].position == sites[i].position;
  }
  if (!same) {
    return absl::InternalError(
        "the model built different layers the second time; per-layer rules need a model that "
        "builds the same layers in the same order every time");
  }
  VLOG(1) << "per-layer plan applied to " << sites.size() << " layers";
  return PlannedModel{std::move(model), std::move(planned)};
}

void ValidateLayerOverride(const LayerOverride& rule, Violations& v) {
  if (!rule.has_name() && rule.position_size() == 0) {
    v.Add("",
          "needs `name` (a regular expression) or `position` (FIRST, LAST) to say which "
          "layers it matches");
  }
  if (rule.has_name()) {
    RE2 name(rule.name(), RE2::Quiet);
    v.Check(name.ok(), "name",
            absl::StrCat("must be a valid RE2 regular expression (", name.error(), ")"),
            absl::StrCat("\"", rule.name(), "\""));
  }
  for (int i = 0; i < rule.position_size(); ++i) {
    v.Check(rule.position(i) != LayerOverride::POSITION_UNSPECIFIED,
            absl::StrCat("position[", i, "]"), "must be FIRST or LAST", "POSITION_UNSPECIFIED");
  }
  if (!SetsActivation(rule) && !SetsWeight(rule)) {
    v.Add("", "sets nothing; give activation, activation_bits, weight or weight_bits");
  }
  if (rule.has_activation_bits()) {
    v.Check(rule.activation_bits() >= 0 && rule.activation_bits() <= kMaxRuleBits,
            "activation_bits", "must be in [0, 16] (0 = full precision)", rule.activation_bits());
  }
  if (rule.has_weight_bits()) {
    v.Check(rule.weight_bits() >= 0 && rule.weight_bits() <= kMaxRuleBits, "weight_bits",
            "must be in [0, 16] (0 = full precision)", rule.weight_bits());
  }
  if (rule.has_activation()) {
    GetActivationQuantizerRegistry().Validate(rule.activation(), "activation", v);
  }
  if (rule.has_weight()) GetWeightQuantizerRegistry().Validate(rule.weight(), "weight", v);
}

}  // namespace pact::quant
