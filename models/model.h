// The model interface and its registry.
//
// A model is a torch::nn::Module built from a LayerBuilder: every conv, linear and activation
// comes from the builder, so full precision vs PACT and the first/last policy come from the
// recipe, never from model code. Register with PACT_REGISTER_MODEL in the model's .cc.
#ifndef PACT_MODELS_MODEL_H_
#define PACT_MODELS_MODEL_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/inference_graph.h"
#include "models/model_spec.pb.h"
#include "pact/core/registry.h"
#include "pact/quant/layers.h"

namespace pact::models {

class Model : public torch::nn::Module {
 public:
  // Logits [N, num_classes] for images [N, C, H, W].
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  // The input the architecture is defined for: {C, H, W}.
  virtual std::vector<int64_t> input_shape() const = 0;
  virtual int64_t num_classes() const = 0;
  // The evaluation-mode computation as a graph over this model's modules
  // (inference_graph.h), for the exporter and the integer engine; Unimplemented for a model
  // that does not describe itself.
  virtual absl::StatusOr<InferenceGraph> Graph() const;
};

struct BuildContext {
  std::shared_ptr<const quant::LayerBuilder> layers = quant::LayerBuilder::FullPrecision();
};

using ModelRegistry = ComponentRegistry<ModelSpec, std::shared_ptr<Model>, BuildContext>;
ModelRegistry& GetModelRegistry();

// PACT_REGISTER_MODEL(name, OptionsType, factory[, validator]); see registry.h.
#define PACT_REGISTER_MODEL(name, OptionsType, ...) \
  PACT_REGISTER_COMPONENT(::pact::models::GetModelRegistry(), name, OptionsType, __VA_ARGS__)

// One row per quantizable layer (conv, linear, activation) in module-tree order, after at
// least one forward (output shapes are recorded then).
struct LayerSummary {
  std::string name;  // module path, e.g. "layer1.0.conv1"
  std::string kind;  // "conv", "linear", "pact", "relu"
  std::vector<int64_t> output_shape;
  int64_t params = 0;       // parameters of this module itself (alpha included)
  int weight_bits = 0;      // conv/linear only; 32 = FP
  int activation_bits = 0;  // activations only; 32 = FP, 0 = clipping only
};
std::vector<LayerSummary> SummarizeLayers(Model& model);
// Human-readable table of SummarizeLayers plus totals.
std::string FormatSummary(Model& model);

// Parameters excluding the quantizers' own (PACT alphas, LSQ steps): the paper's parameter
// counts, whatever the quantizers.
int64_t CountWeights(Model& model);

}  // namespace pact::models

#endif  // PACT_MODELS_MODEL_H_
