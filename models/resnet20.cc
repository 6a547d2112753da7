// CIFAR ResNet (He et al. 2016, "Deep Residual Learning", Sec. 4.2; the pre-activation
// variant from He et al. 2016, "Identity Mappings"), registered as "resnet20" (the PACT
// paper's CIFAR-10 network; depth is an option).
//
// Original blocks, option A (the default; 269,722 weights+biases at depth 20):
//   conv1 3x3 16 -> bn1 -> act1 (first) ->
//   layer{1,2,3}.{0..n-1}: conv1 3x3 -> bn1 -> act1 -> conv2 3x3 -> bn2 -> (+ shortcut) -> act2
//   -> global average pool -> fc (last)
// The act2 of the last block feeds the classifier, so it is the "last" activation position.
// Pre-activation blocks: conv1 (first) -> blocks pre_bn -> pre_act -> conv1 -> bn1 -> act1 ->
// conv2 (+ shortcut) -> final_bn -> final_act (last) -> pool -> fc (last); the first block's
// pre_act is the "first" activation position (Distiller's PACT convention).
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "models/model.h"
#include "models/resnet20_options.pb.h"
#include "models/weight_init.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using quant::ActivationModule;
using quant::LayerBuilder;
using quant::LayerPosition;

struct CifarResNetConfig {
  int blocks_per_stage = 3;
  int num_classes = 10;
  int base_width = 16;
  bool projection = false;
  bool preact = false;
};

torch::nn::Conv2dOptions Conv3x3(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false);
}

quant::QuantConv2d HeConv(const LayerBuilder& layers, const torch::nn::Conv2dOptions& options,
                          LayerPosition position) {
  quant::QuantConv2d conv = layers.Conv(options, position);
  HeNormalInit(conv, Fan::kOut);  // fb.resnet.torch / Distiller
  return conv;
}

// One basic block (two 3x3 convs). `pre_act_position` is the position of a pre-activation
// block's pre_act (first in the first block), `out_act_position` that of an original block's
// output act2 (last in the last block); act1 is always a middle position.
class BasicBlock : public torch::nn::Module {
 public:
  BasicBlock(const LayerBuilder& layers, int64_t in, int64_t out, int64_t stride,
             const CifarResNetConfig& config, LayerPosition pre_act_position,
             LayerPosition out_act_position)
      : preact_(config.preact),
        downsample_(stride != 1 || in != out),
        stride_(stride),
        pad_before_((out - in) / 2),
        pad_after_(out - in - (out - in) / 2) {
    if (preact_) {
      pre_bn_ = register_module("pre_bn", torch::nn::BatchNorm2d(in));
      pre_act_ = register_module("pre_act", layers.Activation(pre_act_position));
    }
    conv1_ =
        register_module("conv1", HeConv(layers, Conv3x3(in, out, stride), LayerPosition::kMiddle));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(out));
    act1_ = register_module("act1", layers.Activation(LayerPosition::kMiddle));
    conv2_ = register_module("conv2", HeConv(layers, Conv3x3(out, out, 1), LayerPosition::kMiddle));
    if (!preact_) bn2_ = register_module("bn2", torch::nn::BatchNorm2d(out));
    if (downsample_ && config.projection) {
      // Option B: 1x1 projection (+ BN for original blocks; pre-act blocks project the
      // already normalized input, fb.resnet.torch preresnet.lua).
      shortcut_conv_ = register_module(
          "shortcut_conv",
          HeConv(layers, torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false),
                 LayerPosition::kMiddle));
      if (!preact_) shortcut_bn_ = register_module("shortcut_bn", torch::nn::BatchNorm2d(out));
    }
    if (!preact_) act2_ = register_module("act2", layers.Activation(out_act_position));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    if (preact_) {
      const torch::Tensor p = pre_act_->ForwardBatchNorm(*pre_bn_, x);
      torch::Tensor out = conv2_->forward(act1_->ForwardBatchNorm(*bn1_, conv1_->forward(p)));
      // Downsampling shortcuts see the pre-activated input ("both_preact").
      return out + (downsample_ ? Shortcut(p) : x);
    }
    // Each bn -> (+ shortcut) -> act runs as one fused op (ActivationModule::ForwardBatchNorm).
    const torch::Tensor out = act1_->ForwardBatchNorm(*bn1_, conv1_->forward(x));
    return act2_->ForwardBatchNorm(*bn2_, conv2_->forward(out), downsample_ ? Shortcut(x) : x);
  }

  // This block's part of the graph, its modules under `path` ("layer1.0"); returns its output.
  int Describe(InferenceGraph& g, const std::string& path, int x) const {
    const auto m = [&](const char* name, int input) {
      return g.Module(absl::StrCat(path, ".", name), input);
    };
    const auto shortcut = [&](int input) {
      if (shortcut_conv_.is_empty()) {
        return g.ZeroPadShortcut(input, stride_, pad_before_, pad_after_);
      }
      const int y = m("shortcut_conv", input);
      return shortcut_bn_.is_empty() ? y : m("shortcut_bn", y);
    };
    if (preact_) {
      const int p = m("pre_act", m("pre_bn", x));
      const int out = m("conv2", m("act1", m("bn1", m("conv1", p))));
      return g.Add(out, downsample_ ? shortcut(p) : x);
    }
    const int out = m("act1", m("bn1", m("conv1", x)));
    return m("act2", g.Add(m("bn2", m("conv2", out)), downsample_ ? shortcut(x) : x));
  }

 private:
  torch::Tensor Shortcut(const torch::Tensor& x) {
    if (!shortcut_conv_.is_empty()) {
      torch::Tensor y = shortcut_conv_->forward(x);
      return shortcut_bn_.is_empty() ? y : shortcut_bn_->forward(y);
    }
    // Option A: subsample, then zero-pad the new channels on both sides (parameter-free).
    torch::Tensor y = x;
    if (stride_ != 1) y = y.slice(2, 0, c10::nullopt, stride_).slice(3, 0, c10::nullopt, stride_);
    return torch::constant_pad_nd(y, {0, 0, 0, 0, pad_before_, pad_after_}, 0);
  }

  const bool preact_;
  const bool downsample_;
  const int64_t stride_;
  const int64_t pad_before_;
  const int64_t pad_after_;
  torch::nn::BatchNorm2d pre_bn_{nullptr};
  std::shared_ptr<ActivationModule> pre_act_;
  quant::QuantConv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::shared_ptr<ActivationModule> act1_;
  quant::QuantConv2d conv2_{nullptr};
  torch::nn::BatchNorm2d bn2_{nullptr};
  quant::QuantConv2d shortcut_conv_{nullptr};
  torch::nn::BatchNorm2d shortcut_bn_{nullptr};
  std::shared_ptr<ActivationModule> act2_;
};

class CifarResNet : public Model {
 public:
  CifarResNet(const CifarResNetConfig& config, const LayerBuilder& layers)
      : preact_(config.preact), num_classes_(config.num_classes) {
    const int64_t width = config.base_width;
    conv1_ = register_module("conv1", HeConv(layers, Conv3x3(3, width, 1), LayerPosition::kFirst));
    if (!preact_) {
      bn1_ = register_module("bn1", torch::nn::BatchNorm2d(width));
      act1_ = register_module("act1", layers.Activation(LayerPosition::kFirst));
    }
    int64_t in = width;
    const int n = config.blocks_per_stage;
    for (int stage = 0; stage < 3; ++stage) {
      auto list = register_module(absl::StrCat("layer", stage + 1), torch::nn::ModuleList());
      const int64_t out = width << stage;
      for (int i = 0; i < n; ++i) {
        const bool first_block = stage == 0 && i == 0;
        const bool last_block = stage == 2 && i == n - 1;
        auto block = std::make_shared<BasicBlock>(
            layers, in, out, /*stride=*/(stage > 0 && i == 0) ? 2 : 1, config,
            first_block ? LayerPosition::kFirst : LayerPosition::kMiddle,
            last_block ? LayerPosition::kLast : LayerPosition::kMiddle);
        list->push_back(block);
        blocks_.push_back(std::move(block));
        block_paths_.push_back(absl::StrCat("layer", stage + 1, ".", i));
        in = out;
      }
    }
    if (preact_) {
      final_bn_ = register_module("final_bn", torch::nn::BatchNorm2d(in));
      final_act_ = register_module("final_act", layers.Activation(LayerPosition::kLast));
    }
    fc_ = register_module("fc", layers.Linear(torch::nn::LinearOptions(in, config.num_classes),
                                              LayerPosition::kLast));
  }

  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor x = conv1_->forward(images);
    if (!preact_) x = act1_->ForwardBatchNorm(*bn1_, x);
    for (const auto& block : blocks_) x = block->forward(x);
    if (preact_) x = final_act_->ForwardBatchNorm(*final_bn_, x);
    return fc_->forward(x.mean({2, 3}));
  }

  absl::StatusOr<InferenceGraph> Graph() const override {
    InferenceGraph g;
    int x = g.Module("conv1", g.Input());
    if (!preact_) x = g.Module("act1", g.Module("bn1", x));
    for (size_t b = 0; b < blocks_.size(); ++b) x = blocks_[b]->Describe(g, block_paths_[b], x);
    if (preact_) x = g.Module("final_act", g.Module("final_bn", x));
    g.Module("fc", g.GlobalAvgPool(x));
    return g;
  }

  std::vector<int64_t> input_shape() const override { return {3, 32, 32}; }
  int64_t num_classes() const override { return num_classes_; }

 private:
  const bool preact_;
  const int64_t num_classes_;
  quant::QuantConv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::shared_ptr<ActivationModule> act1_;
  std::vector<std::shared_ptr<BasicBlock>> blocks_;
  std::vector<std::string> block_paths_;  // "layer1.0", ...: where each block is registered
  torch::nn::BatchNorm2d final_bn_{nullptr};
  std::shared_ptr<ActivationModule> final_act_;
  quant::QuantLinear fc_{nullptr};
};

void ValidateCifarResNet(const CifarResNetOptions& options, Violations& v) {
  v.Check(options.depth() >= 8 && (options.depth() - 2) % 6 == 0, "depth",
          "must be 6n+2 with n >= 1 (20, 32, 44, 56, 110)", options.depth());
  v.Check(options.num_classes() > 0, "num_classes", "must be > 0", options.num_classes());
  v.Check(options.base_width() > 0, "base_width", "must be > 0", options.base_width());
  v.Check(options.shortcut() != CifarResNetOptions::SHORTCUT_UNSPECIFIED, "shortcut",
          "must be SHORTCUT_ZERO_PAD or SHORTCUT_PROJECTION",
          CifarResNetOptions::Shortcut_Name(options.shortcut()));
  v.Check(options.block() != CifarResNetOptions::BLOCK_UNSPECIFIED, "block",
          "must be BLOCK_ORIGINAL or BLOCK_PREACT",
          CifarResNetOptions::Block_Name(options.block()));
}

absl::StatusOr<std::shared_ptr<Model>> BuildCifarResNet(const CifarResNetOptions& options,
                                                        const BuildContext& context) {
  if (context.layers == nullptr) return absl::InvalidArgumentError("no layer builder given");
  CifarResNetConfig config;
  config.blocks_per_stage = (options.depth() - 2) / 6;
  config.num_classes = options.num_classes();
  config.base_width = options.base_width();
  config.projection = options.shortcut() == CifarResNetOptions::SHORTCUT_PROJECTION;
  config.preact = options.block() == CifarResNetOptions::BLOCK_PREACT;
  VLOG(1) << "building CIFAR ResNet-" << options.depth() << " ("
          << (config.preact ? "pre-activation" : "original") << " blocks, option "
          << (config.projection ? "B" : "A") << " shortcuts)";
  return TorchCall("building resnet20", [&]() -> std::shared_ptr<Model> {
    return std::make_shared<CifarResNet>(config, *context.layers);
  });
}

}  // namespace

PACT_REGISTER_MODEL(resnet20, CifarResNetOptions, BuildCifarResNet, ValidateCifarResNet)

}  // namespace pact::models
