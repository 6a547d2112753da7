// Per-layer quantization: the recipe's quantizers, its first/last policy and its
// layer_override rules (layer_override.proto) resolved for every layer of a model.
//
// Rules match layers by name ("layer1.0.conv1"), and a layer has a name only once the model
// has registered it. So with rules, BuildPlannedModel builds the model twice: first with the
// recipe's quantizers, to learn each layer's name and position (LayerBuilder::made() in order,
// named through named_modules()), then, from the same seed, with a LayerBuilder that hands
// layer i its resolved quantizers. Models need no change for this: they only have to build the
// same layers in the same order every time, which the second build checks. Without rules the
// model is built once, exactly as before.
#ifndef PACT_QUANT_LAYER_PLAN_H_
#define PACT_QUANT_LAYER_PLAN_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pact/core/violations.h"
#include "pact/quant/layer_override.pb.h"
#include "pact/quant/layers.h"
#include "pact/quant/quantizer_spec.pb.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace pact::quant {

// The quantization part of a recipe, free of the recipe's own proto.
struct QuantizationPolicy {
  std::optional<ActivationQuantizerSpec> activation;  // unset = relu (full precision)
  std::optional<WeightQuantizerSpec> weight;          // unset = none (full precision)
  bool quantize_first_last = false;
  std::vector<LayerOverride> rules;
  // How errors name rules[i], e.g. "recipes/x.pbtxt:14:3: quantization.layer_override[0]";
  // "layer_override[i]" where missing.
  std::vector<std::string> rule_labels;
};

// A layer as a model built it.
struct LayerSite {
  std::string name;  // module path, e.g. "layer1.0.conv1"
  LayerKind kind = LayerKind::kConv;
  LayerPosition position = LayerPosition::kMiddle;
};

// One layer's quantizer specs after the policy and every matching rule.
struct ResolvedLayer {
  // Activations: no choice in the oneof = relu; `quantize` false = the quantizer's full
  // precision behaviour there (PACT: clipping without rounding).
  ActivationQuantizerSpec activation;
  bool quantize = true;
  // Conv/linear: no choice = none (full precision).
  WeightQuantizerSpec weight;
};

// Resolves `sites` in order: the recipe's quantizers, full precision at the first/last
// positions unless quantize_first_last, then each matching rule in turn (last wins).
// InvalidArgument, naming the rule, for a rule that changes no layer (listing every layer) and
// for bits set on a quantizer that has none (relu, none without a recipe weight quantizer).
absl::StatusOr<std::vector<ResolvedLayer>> ResolveLayers(const QuantizationPolicy& policy,
                                                         const std::vector<LayerSite>& sites);

// Builds a model from a LayerBuilder. It must seed its own random generator (both builds must
// initialize identically) and build the same layers in the same order every time.
using ModelFactory = std::function<absl::StatusOr<std::shared_ptr<torch::nn::Module>>(
    std::shared_ptr<const LayerBuilder> layers)>;

struct PlannedModel {
  std::shared_ptr<torch::nn::Module> model;
  std::shared_ptr<const LayerBuilder> layers;  // its QuantControl switches warm-up
};

// The model with every layer's quantizers resolved as above (once built without rules).
absl::StatusOr<PlannedModel> BuildPlannedModel(const QuantizationPolicy& policy,
                                               const ModelFactory& factory);

// The problems of one rule (criteria and settings present, the regular expression compiles,
// bits in range, quantizer specs valid), under `v`'s prefix.
void ValidateLayerOverride(const LayerOverride& rule, Violations& v);

// "conv", "linear" or "activation".
const char* LayerKindName(LayerKind kind);

}  // namespace pact::quant

#endif  // PACT_QUANT_LAYER_PLAN_H_
