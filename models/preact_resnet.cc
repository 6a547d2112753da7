// Full pre-activation ResNets for ImageNet (He et al. 2016, "Identity Mappings in Deep
// Residual Networks"), registered as "resnet18_preact" and "resnet50_preact" (PACT Sec. 5,
// Table 1; paper-and-peers.md section 4.5). Layout as fb.resnet.torch preresnet.lua and
// Distiller's preresnet_imagenet.py:
//   conv1 7x7/2 64 (first) -> bn1 -> act1 (first) -> maxpool 3/2
//   layer1..layer4 (64, 128, 256, 512 planes; stride 2 at the start of layers 2-4):
//     pre_bn -> pre_act -> conv1 -> bn1 -> act1 -> conv2 [-> bn2 -> act2 -> conv3], + shortcut
//   final_bn -> final_act (last) -> global average pool -> fc (last)
// The first block (layer1.0) has no pre-activation: conv1's bn1 -> act1 plays that role, so
// act1 is the "first" activation position (Distiller's PACT convention keeps conv1, the first
// block's pre-activation ReLU, the final BN-ReLU and fc at full precision). Shortcuts are
// identities, or 1x1 (strided) projection convs without BN on the pre-activated input where
// the shape changes. The stride sits on the 3x3 conv of bottlenecks. Global average pooling
// (instead of a fixed 7x7 pool) lets tests run at reduced resolution.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/pooling.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "models/model.h"
#include "models/resnet18_preact_options.pb.h"
#include "models/resnet50_preact_options.pb.h"
#include "models/weight_init.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using quant::ActivationModule;
using quant::LayerBuilder;
using quant::LayerPosition;

quant::QuantConv2d HeConv(const LayerBuilder& layers, int64_t in, int64_t out, int64_t kernel,
                          int64_t stride, LayerPosition position = LayerPosition::kMiddle) {
  quant::QuantConv2d conv = layers.Conv(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false),
      position);
  HeNormalInit(conv, Fan::kOut);  // fb.resnet.torch / Distiller
  return conv;
}

// A basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1 x4) pre-activation block.
class PreactBlock : public torch::nn::Module {
 public:
  PreactBlock(const LayerBuilder& layers, bool bottleneck, int64_t in, int64_t planes,
              int64_t stride, bool preactivate)
      : bottleneck_(bottleneck), preactivate_(preactivate) {
    const int64_t out = bottleneck ? 4 * planes : planes;
    if (preactivate_) {
      pre_bn_ = register_module("pre_bn", torch::nn::BatchNorm2d(in));
      pre_act_ = register_module("pre_act", layers.Activation(LayerPosition::kMiddle));
    }
    if (bottleneck_) {
      conv1_ = register_module("conv1", HeConv(layers, in, planes, 1, 1));
      bn1_ = register_module("bn1", torch::nn::BatchNorm2d(planes));
      act1_ = register_module("act1", layers.Activation(LayerPosition::kMiddle));
      conv2_ = register_module("conv2", HeConv(layers, planes, planes, 3, stride));
      bn2_ = register_module("bn2", torch::nn::BatchNorm2d(planes));
      act2_ = register_module("act2", layers.Activation(LayerPosition::kMiddle));
      conv3_ = register_module("conv3", HeConv(layers, planes, out, 1, 1));
    } else {
      conv1_ = register_module("conv1", HeConv(layers, in, planes, 3, stride));
      bn1_ = register_module("bn1", torch::nn::BatchNorm2d(planes));
      act1_ = register_module("act1", layers.Activation(LayerPosition::kMiddle));
      conv2_ = register_module("conv2", HeConv(layers, planes, out, 3, 1));
    }
    if (stride != 1 || in != out) {
      shortcut_ = register_module("shortcut", HeConv(layers, in, out, 1, stride));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor p = preactivate_ ? pre_act_->ForwardBatchNorm(*pre_bn_, x) : x;
    torch::Tensor out = act1_->ForwardBatchNorm(*bn1_, conv1_->forward(p));
    out = conv2_->forward(out);
    if (bottleneck_) out = conv3_->forward(act2_->ForwardBatchNorm(*bn2_, out));
    return out + (shortcut_.is_empty() ? x : shortcut_->forward(p));
  }

  // This block's part of the graph, its modules under `path` ("layer1.0"); returns its output.
  int Describe(InferenceGraph& g, const std::string& path, int x) const {
    const auto m = [&](const char* name, int input) {
      return g.Module(absl::StrCat(path, ".", name), input);
    };
    const int p = preactivate_ ? m("pre_act", m("pre_bn", x)) : x;
    int out = m("conv2", m("act1", m("bn1", m("conv1", p))));
    if (bottleneck_) out = m("conv3", m("act2", m("bn2", out)));
    return g.Add(out, shortcut_.is_empty() ? x : m("shortcut", p));
  }

 private:
  const bool bottleneck_;
  const bool preactivate_;
  torch::nn::BatchNorm2d pre_bn_{nullptr};
  std::shared_ptr<ActivationModule> pre_act_;
  quant::QuantConv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::shared_ptr<ActivationModule> act1_;
  quant::QuantConv2d conv2_{nullptr};
  torch::nn::BatchNorm2d bn2_{nullptr};
  std::shared_ptr<ActivationModule> act2_;
  quant::QuantConv2d conv3_{nullptr};
  quant::QuantConv2d shortcut_{nullptr};
};

struct PreactResNetConfig {
  bool bottleneck = false;
  std::vector<int> blocks;  // per stage
  int num_classes = 1000;
};

class PreactResNet : public Model {
 public:
  PreactResNet(const PreactResNetConfig& config, const LayerBuilder& layers)
      : num_classes_(config.num_classes) {
    conv1_ = register_module("conv1", HeConv(layers, 3, 64, 7, 2, LayerPosition::kFirst));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
    act1_ = register_module("act1", layers.Activation(LayerPosition::kFirst));
    maxpool_ = register_module(
        "maxpool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
    int64_t in = 64;
    for (size_t stage = 0; stage < config.blocks.size(); ++stage) {
      auto list = register_module(absl::StrCat("layer", stage + 1), torch::nn::ModuleList());
      const int64_t planes = int64_t{64} << stage;
      for (int i = 0; i < config.blocks[stage]; ++i) {
        auto block = std::make_shared<PreactBlock>(layers, config.bottleneck, in, planes,
                                                   /*stride=*/(stage > 0 && i == 0) ? 2 : 1,
                                                   /*preactivate=*/!(stage == 0 && i == 0));
        list->push_back(block);
        blocks_.push_back(std::move(block));
        block_paths_.push_back(absl::StrCat("layer", stage + 1, ".", i));
        in = config.bottleneck ? 4 * planes : planes;
      }
    }
    final_bn_ = register_module("final_bn", torch::nn::BatchNorm2d(in));
    final_act_ = register_module("final_act", layers.Activation(LayerPosition::kLast));
    fc_ = register_module("fc", layers.Linear(torch::nn::LinearOptions(in, config.num_classes),
                                              LayerPosition::kLast));
  }

  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor x = maxpool_->forward(act1_->ForwardBatchNorm(*bn1_, conv1_->forward(images)));
    for (const auto& block : blocks_) x = block->forward(x);
    x = final_act_->ForwardBatchNorm(*final_bn_, x);
    return fc_->forward(x.mean({2, 3}));
  }

  absl::StatusOr<InferenceGraph> Graph() const override {
    InferenceGraph g;
    int x = g.Module("maxpool", g.Module("act1", g.Module("bn1", g.Module("conv1", g.Input()))));
    for (size_t b = 0; b < blocks_.size(); ++b) x = blocks_[b]->Describe(g, block_paths_[b], x);
    x = g.Module("final_act", g.Module("final_bn", x));
    g.Module("fc", g.GlobalAvgPool(x));
    return g;
  }

  std::vector<int64_t> input_shape() const override { return {3, 224, 224}; }
  int64_t num_classes() const override { return num_classes_; }

 private:
  const int64_t num_classes_;
  quant::QuantConv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::shared_ptr<ActivationModule> act1_;
  torch::nn::MaxPool2d maxpool_{nullptr};
  std::vector<std::shared_ptr<PreactBlock>> blocks_;
  std::vector<std::string> block_paths_;  // "layer1.0", ...: where each block is registered
  torch::nn::BatchNorm2d final_bn_{nullptr};
  std::shared_ptr<ActivationModule> final_act_;
  quant::QuantLinear fc_{nullptr};
};

// Both variants' options have only num_classes.
template <typename Options>
void ValidatePreact(const Options& options, Violations& v) {
  v.Check(options.num_classes() > 0, "num_classes", "must be > 0", options.num_classes());
}

absl::StatusOr<std::shared_ptr<Model>> Build(absl::string_view name, PreactResNetConfig config,
                                             const BuildContext& context) {
  if (context.layers == nullptr) return absl::InvalidArgumentError("no layer builder given");
  return TorchCall(absl::StrCat("building ", name), [&]() -> std::shared_ptr<Model> {
    return std::make_shared<PreactResNet>(config, *context.layers);
  });
}

absl::StatusOr<std::shared_ptr<Model>> BuildResNet18Preact(const ResNet18PreactOptions& options,
                                                           const BuildContext& context) {
  return Build("resnet18_preact", {/*bottleneck=*/false, {2, 2, 2, 2}, options.num_classes()},
               context);
}

absl::StatusOr<std::shared_ptr<Model>> BuildResNet50Preact(const ResNet50PreactOptions& options,
                                                           const BuildContext& context) {
  return Build("resnet50_preact", {/*bottleneck=*/true, {3, 4, 6, 3}, options.num_classes()},
               context);
}

}  // namespace

PACT_REGISTER_MODEL(resnet18_preact, ResNet18PreactOptions, BuildResNet18Preact,
                    ValidatePreact<ResNet18PreactOptions>)
PACT_REGISTER_MODEL(resnet50_preact, ResNet50PreactOptions, BuildResNet50Preact,
                    ValidatePreact<ResNet50PreactOptions>)

}  // namespace pact::models
