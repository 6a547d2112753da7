#include "models/inference_graph.h"

#include <torch/torch.h>

#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pact/quant/layers.h"
#include "pact/quant/quantizer.h"

namespace pact::models {

int InferenceGraph::Append(GraphNode node) {
  nodes_.push_back(std::move(node));
  return output();
}

int InferenceGraph::Input() { return Append(GraphNode{}); }

int InferenceGraph::Module(const std::string& path, int input) {
  GraphNode node;
  node.op = GraphNode::Op::kModule;
  node.module = path;
  node.inputs = {input};
  return Append(std::move(node));
}

int InferenceGraph::Add(int a, int b) {
  GraphNode node;
  node.op = GraphNode::Op::kAdd;
  node.inputs = {a, b};
  return Append(std::move(node));
}

int InferenceGraph::Flatten(int x) {
  GraphNode node;
  node.op = GraphNode::Op::kFlatten;
  node.inputs = {x};
  return Append(std::move(node));
}

int InferenceGraph::GlobalAvgPool(int x) {
  GraphNode node;
  node.op = GraphNode::Op::kGlobalAvgPool;
  node.inputs = {x};
  return Append(std::move(node));
}

int InferenceGraph::ZeroPadShortcut(int x, int64_t stride, int64_t pad_before, int64_t pad_after) {
  GraphNode node;
  node.op = GraphNode::Op::kZeroPadShortcut;
  node.inputs = {x};
  node.stride = stride;
  node.pad_before = pad_before;
  node.pad_after = pad_after;
  return Append(std::move(node));
}

const char* OpName(GraphNode::Op op) {
  switch (op) {
    case GraphNode::Op::kInput:
      return "input";
    case GraphNode::Op::kModule:
      return "module";
    case GraphNode::Op::kAdd:
      return "add";
    case GraphNode::Op::kFlatten:
      return "flatten";
    case GraphNode::Op::kGlobalAvgPool:
      return "global_avg_pool";
    case GraphNode::Op::kZeroPadShortcut:
      return "zero_pad_shortcut";
  }
  return "?";
}

namespace {

// One registered module applied to `x`.
absl::StatusOr<torch::Tensor> ApplyModule(torch::nn::Module* module, const std::string& path,
                                          const torch::Tensor& x) {
  if (auto* conv = dynamic_cast<quant::QuantConv2dImpl*>(module)) return conv->forward(x);
  if (auto* linear = dynamic_cast<quant::QuantLinearImpl*>(module)) return linear->forward(x);
  if (auto* act = dynamic_cast<quant::ActivationModule*>(module)) return act->forward(x);
  if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(module)) return bn->forward(x);
  if (auto* bn = dynamic_cast<torch::nn::BatchNorm1dImpl*>(module)) return bn->forward(x);
  if (auto* pool = dynamic_cast<torch::nn::MaxPool2dImpl*>(module)) return pool->forward(x);
  if (auto* dropout = dynamic_cast<torch::nn::DropoutImpl*>(module)) return dropout->forward(x);
  return absl::InvalidArgumentError(absl::StrCat("inference graph: module '", path, "' (",
                                                 module->name(),
                                                 ") is not a kind the graph can run"));
}

}  // namespace

absl::StatusOr<torch::Tensor> RunInferenceGraph(torch::nn::Module& model,
                                                const InferenceGraph& graph,
                                                const torch::Tensor& images) {
  std::map<std::string, torch::nn::Module*> modules;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    modules.emplace(item.key(), item.value().get());
  }
  std::vector<torch::Tensor> values;
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const GraphNode& node = graph.nodes()[i];
    for (int input : node.inputs) {
      if (input < 0 || input >= static_cast<int>(i)) {
        return absl::InvalidArgumentError(absl::StrCat("inference graph: node ", i, " (",
                                                       OpName(node.op), ") reads node ", input,
                                                       ", which does not come before it"));
      }
    }
    const auto in = [&](int k) { return values[node.inputs[k]]; };
    switch (node.op) {
      case GraphNode::Op::kInput:
        values.push_back(images);
        break;
      case GraphNode::Op::kModule: {
        auto it = modules.find(node.module);
        if (it == modules.end()) {
          return absl::InvalidArgumentError(absl::StrCat("inference graph: node ", i,
                                                         " names module '", node.module,
                                                         "', which the model "
                                                         "does not have"));
        }
        absl::StatusOr<torch::Tensor> y = ApplyModule(it->second, node.module, in(0));
        if (!y.ok()) return y.status();
        values.push_back(*std::move(y));
        break;
      }
      case GraphNode::Op::kAdd:
        values.push_back(in(0) + in(1));
        break;
      case GraphNode::Op::kFlatten:
        values.push_back(in(0).flatten(1));
        break;
      case GraphNode::Op::kGlobalAvgPool:
        values.push_back(in(0).mean({2, 3}));
        break;
      case GraphNode::Op::kZeroPadShortcut: {
        torch::Tensor y = in(0);
        if (node.stride != 1) {
          y = y.slice(2, 0, c10::nullopt, node.stride).slice(3, 0, c10::nullopt, node.stride);
        }
        values.push_back(
            torch::constant_pad_nd(y, {0, 0, 0, 0, node.pad_before, node.pad_after}, 0));
        break;
      }
    }
  }
  if (values.empty()) return absl::InvalidArgumentError("inference graph: no nodes");
  return values.back();
}

}  // namespace pact::models
