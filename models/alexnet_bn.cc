// AlexNet with BatchNorm as used by DoReFa-Net and PACT (Sec. 5, Table 1), registered as
// "alexnet_bn". Architecture from tensorpack examples/DoReFa-Net/alexnet-dorefa.py
// (paper-and-peers.md section 4.4); 224x224x3 input; BN momentum 0.9 (TF decay) and eps 1e-4;
// no LRN; convs have no bias except conv0:
//   conv0 96 12x12/4 VALID, bias -> act0 (first)                        54x54
//   conv1 256 5x5 SAME, groups 2 -> bn1 -> pool1 3/2 SAME -> act1        27x27
//   conv2 384 3x3 SAME -> bn2 -> pool2 3/2 SAME -> act2                  14x14
//   conv3 384 3x3 SAME, groups 2 -> bn3 -> act3                          14x14
//   conv4 256 3x3 SAME, groups 2 -> bn4 -> pool4 3/2 VALID -> act4       6x6
//   fc0 4096, bias -> bnfc0 -> actfc0
//   fc1 4096, no bias -> bnfc1 -> actfc1 (last)
//   fct num_classes, bias (last)
// TF's SAME pooling pads (0, 1) at 54 -> 27 (= PyTorch ceil_mode) and (1, 1) at 27 -> 14
// (= padding 1). DoReFa ends fc1 with an unquantized clip; here actfc1 is the "last"
// activation position, which the default policy clips without rounding.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/pooling.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "models/alexnet_bn_options.pb.h"
#include "models/model.h"
#include "models/weight_init.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using quant::ActivationModule;
using quant::LayerBuilder;
using quant::LayerPosition;

constexpr double kBnEps = 1e-4;      // tensorpack BatchNorm(epsilon=1e-4)
constexpr double kBnMomentum = 0.1;  // = 1 - tensorpack's momentum (decay) 0.9

class AlexNetBn : public Model {
 public:
  AlexNetBn(int num_classes, const LayerBuilder& layers) : num_classes_(num_classes) {
    constexpr auto kMiddle = LayerPosition::kMiddle;
    const auto conv = [&](int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                          int64_t groups, LayerPosition position) {
      quant::QuantConv2d c = layers.Conv(torch::nn::Conv2dOptions(in, out, kernel)
                                             .stride(stride)
                                             .padding(padding)
                                             .groups(groups)
                                             .bias(position == LayerPosition::kFirst),
                                         position);
      HeNormalInit(c, Fan::kIn);  // tensorpack's variance_scaling_initializer(2.0)
      return c;
    };
    const auto linear = [&](int64_t in, int64_t out, bool bias, LayerPosition position) {
      quant::QuantLinear l = layers.Linear(torch::nn::LinearOptions(in, out).bias(bias), position);
      HeNormalInit(l, Fan::kIn);
      return l;
    };
    const auto bn2d = [](int64_t c) {
      return torch::nn::BatchNorm2d(
          torch::nn::BatchNorm2dOptions(c).eps(kBnEps).momentum(kBnMomentum));
    };
    const auto bn1d = [](int64_t c) {
      return torch::nn::BatchNorm1d(
          torch::nn::BatchNorm1dOptions(c).eps(kBnEps).momentum(kBnMomentum));
    };
    const auto pool = [](int64_t padding, bool ceil_mode) {
      return torch::nn::MaxPool2d(
          torch::nn::MaxPool2dOptions(3).stride(2).padding(padding).ceil_mode(ceil_mode));
    };

    conv0_ = register_module("conv0", conv(3, 96, 12, 4, 0, 1, LayerPosition::kFirst));
    act0_ = register_module("act0", layers.Activation(LayerPosition::kFirst));
    conv1_ = register_module("conv1", conv(96, 256, 5, 1, 2, 2, kMiddle));
    bn1_ = register_module("bn1", bn2d(256));
    pool1_ = register_module("pool1", pool(0, /*ceil_mode=*/true));
    act1_ = register_module("act1", layers.Activation(kMiddle));
    conv2_ = register_module("conv2", conv(256, 384, 3, 1, 1, 1, kMiddle));
    bn2_ = register_module("bn2", bn2d(384));
    pool2_ = register_module("pool2", pool(1, /*ceil_mode=*/false));
    act2_ = register_module("act2", layers.Activation(kMiddle));
    conv3_ = register_module("conv3", conv(384, 384, 3, 1, 1, 2, kMiddle));
    bn3_ = register_module("bn3", bn2d(384));
    act3_ = register_module("act3", layers.Activation(kMiddle));
    conv4_ = register_module("conv4", conv(384, 256, 3, 1, 1, 2, kMiddle));
    bn4_ = register_module("bn4", bn2d(256));
    pool4_ = register_module("pool4", pool(0, /*ceil_mode=*/false));
    act4_ = register_module("act4", layers.Activation(kMiddle));
    fc0_ = register_module("fc0", linear(256 * 6 * 6, 4096, /*bias=*/true, kMiddle));
    bnfc0_ = register_module("bnfc0", bn1d(4096));
    actfc0_ = register_module("actfc0", layers.Activation(kMiddle));
    fc1_ = register_module("fc1", linear(4096, 4096, /*bias=*/false, kMiddle));
    bnfc1_ = register_module("bnfc1", bn1d(4096));
    actfc1_ = register_module("actfc1", layers.Activation(LayerPosition::kLast));
    fct_ = register_module("fct", linear(4096, num_classes, /*bias=*/true, LayerPosition::kLast));
  }

  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor x = act0_->forward(conv0_->forward(images));
    x = act1_->forward(pool1_->forward(bn1_->forward(conv1_->forward(x))));
    x = act2_->forward(pool2_->forward(bn2_->forward(conv2_->forward(x))));
    x = act3_->ForwardBatchNorm(*bn3_, conv3_->forward(x));
    x = act4_->forward(pool4_->forward(bn4_->forward(conv4_->forward(x))));
    x = actfc0_->forward(bnfc0_->forward(fc0_->forward(x.flatten(1))));
    x = actfc1_->forward(bnfc1_->forward(fc1_->forward(x)));
    return fct_->forward(x);
  }

  absl::StatusOr<InferenceGraph> Graph() const override {
    InferenceGraph g;
    int x = g.Module("act0", g.Module("conv0", g.Input()));
    x = g.Module("act1", g.Module("pool1", g.Module("bn1", g.Module("conv1", x))));
    x = g.Module("act2", g.Module("pool2", g.Module("bn2", g.Module("conv2", x))));
    x = g.Module("act3", g.Module("bn3", g.Module("conv3", x)));
    x = g.Module("act4", g.Module("pool4", g.Module("bn4", g.Module("conv4", x))));
    x = g.Module("actfc0", g.Module("bnfc0", g.Module("fc0", g.Flatten(x))));
    x = g.Module("actfc1", g.Module("bnfc1", g.Module("fc1", x)));
    g.Module("fct", x);
    return g;
  }

  std::vector<int64_t> input_shape() const override { return {3, 224, 224}; }
  int64_t num_classes() const override { return num_classes_; }

 private:
  const int64_t num_classes_;
  quant::QuantConv2d conv0_{nullptr}, conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr},
      conv4_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr}, bn4_{nullptr};
  torch::nn::MaxPool2d pool1_{nullptr}, pool2_{nullptr}, pool4_{nullptr};
  quant::QuantLinear fc0_{nullptr}, fc1_{nullptr}, fct_{nullptr};
  torch::nn::BatchNorm1d bnfc0_{nullptr}, bnfc1_{nullptr};
  std::shared_ptr<ActivationModule> act0_, act1_, act2_, act3_, act4_, actfc0_, actfc1_;
};

void ValidateAlexNetBn(const AlexNetBnOptions& options, Violations& v) {
  v.Check(options.num_classes() > 0, "num_classes", "must be > 0", options.num_classes());
}

absl::StatusOr<std::shared_ptr<Model>> BuildAlexNetBn(const AlexNetBnOptions& options,
                                                      const BuildContext& context) {
  if (context.layers == nullptr) return absl::InvalidArgumentError("no layer builder given");
  return TorchCall("building alexnet_bn", [&]() -> std::shared_ptr<Model> {
    return std::make_shared<AlexNetBn>(options.num_classes(), *context.layers);
  });
}

}  // namespace

PACT_REGISTER_MODEL(alexnet_bn, AlexNetBnOptions, BuildAlexNetBn, ValidateAlexNetBn)

}  // namespace pact::models
