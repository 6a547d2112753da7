// A model's inference computation (evaluation mode) as data: a small graph over the modules it
// registered, for tools that must see a network's structure instead of running its forward():
// the exporter and the integer engine (pact/deploy). Each model describes itself
// (Model::Graph); RunInferenceGraph evaluates a graph with the model's own modules, so a test
// can check, for every model, that the description is its forward().
#ifndef PACT_MODELS_INFERENCE_GRAPH_H_
#define PACT_MODELS_INFERENCE_GRAPH_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace pact::models {

struct GraphNode {
  enum class Op {
    kInput,          // the image batch [N, C, H, W]
    kModule,         // a registered module, by path: a QuantConv2d, QuantLinear, BatchNorm1d/2d,
                     // activation (ActivationModule), MaxPool2d or Dropout (the identity here)
    kAdd,            // inputs[0] + inputs[1] (residual connections)
    kFlatten,        // [N, ...] -> [N, -1]
    kGlobalAvgPool,  // the mean over H and W: [N, C, H, W] -> [N, C]
    // CIFAR ResNet's parameter-free shortcut (option A): x[:, :, ::stride, ::stride] with
    // pad_before zero channels in front and pad_after behind.
    kZeroPadShortcut,
  };

  Op op = Op::kInput;
  std::string module;       // kModule: the module's path, e.g. "layer1.0.conv1"
  std::vector<int> inputs;  // indexes of earlier nodes
  int64_t stride = 1;       // kZeroPadShortcut
  int64_t pad_before = 0;   // kZeroPadShortcut
  int64_t pad_after = 0;    // kZeroPadShortcut
};

// Nodes in evaluation order (each node's inputs come before it); the last node is the output
// (the logits).
class InferenceGraph {
 public:
  int Input();
  int Module(const std::string& path, int input);
  int Add(int a, int b);
  int Flatten(int x);
  int GlobalAvgPool(int x);
  int ZeroPadShortcut(int x, int64_t stride, int64_t pad_before, int64_t pad_after);

  const std::vector<GraphNode>& nodes() const { return nodes_; }
  int output() const { return static_cast<int>(nodes_.size()) - 1; }

 private:
  int Append(GraphNode node);

  std::vector<GraphNode> nodes_;
};

// "conv", "add", ... for messages.
const char* OpName(GraphNode::Op op);

// Evaluates `graph` on `images` with `model`'s modules (whatever mode the model is in).
// InvalidArgument naming the node for a path the model does not have, a module type the graph
// cannot run, or inputs out of order. LibTorch errors are thrown (wrap in TorchCall).
absl::StatusOr<torch::Tensor> RunInferenceGraph(torch::nn::Module& model,
                                                const InferenceGraph& graph,
                                                const torch::Tensor& images);

}  // namespace pact::models

#endif  // PACT_MODELS_INFERENCE_GRAPH_H_
