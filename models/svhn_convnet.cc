// The DoReFa-Net SVHN ConvNet used by PACT (Sec. 5, Table 1), registered as "svhn_convnet".
// Architecture from tensorpack examples/DoReFa-Net/svhn-digit-dorefa.py (paper-and-peers.md
// section 4.3); 40x40x3 input; BN momentum 0.9 (TF decay) and eps 1e-4; convs have no bias
// except conv0:
//   conv0 48 5x5 VALID, bias -> pool0 2 -> act0 (first)   36 -> 18
//   conv1 64 3x3 SAME -> bn1 -> act1                        18
//   conv2 64 3x3 SAME -> bn2 -> pool1 2 -> act2             9
//   conv3 128 3x3 VALID -> bn3 -> act3                      7
//   conv4 128 3x3 SAME -> bn4 -> act4                       7
//   conv5 128 3x3 VALID -> bn5 -> act5                      5
//   dropout 0.5 -> conv6 512 5x5 VALID -> bn6 -> act6 (last)  1
//   fc num_classes (last)
// DoReFa ends conv6 with an unquantized clipped-abs; here act6 is the "last" activation
// position, which the default policy clips without rounding.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "models/model.h"
#include "models/svhn_convnet_options.pb.h"
#include "models/weight_init.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using quant::ActivationModule;
using quant::LayerBuilder;
using quant::LayerPosition;

// tensorpack's BatchNorm(momentum=0.9, epsilon=1e-4); PyTorch's momentum is 1 - TF's decay.
torch::nn::BatchNorm2d Bn(int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).eps(1e-4).momentum(0.1));
}

class SvhnConvNet : public Model {
 public:
  SvhnConvNet(int num_classes, double dropout, const LayerBuilder& layers)
      : num_classes_(num_classes) {
    const auto conv = [&](int64_t in, int64_t out, int64_t kernel, bool same,
                          LayerPosition position) {
      quant::QuantConv2d c = layers.Conv(torch::nn::Conv2dOptions(in, out, kernel)
                                             .padding(same ? kernel / 2 : 0)
                                             .bias(position == LayerPosition::kFirst),
                                         position);
      HeNormalInit(c, Fan::kIn);  // tensorpack's variance_scaling_initializer(2.0)
      return c;
    };
    const auto act = [&](LayerPosition position) { return layers.Activation(position); };
    constexpr auto kMiddle = LayerPosition::kMiddle;

    conv0_ = register_module("conv0", conv(3, 48, 5, false, LayerPosition::kFirst));
    pool0_ = register_module("pool0", torch::nn::MaxPool2d(2));
    act0_ = register_module("act0", act(LayerPosition::kFirst));
    conv1_ = register_module("conv1", conv(48, 64, 3, true, kMiddle));
    bn1_ = register_module("bn1", Bn(64));
    act1_ = register_module("act1", act(kMiddle));
    conv2_ = register_module("conv2", conv(64, 64, 3, true, kMiddle));
    bn2_ = register_module("bn2", Bn(64));
    pool1_ = register_module("pool1", torch::nn::MaxPool2d(2));
    act2_ = register_module("act2", act(kMiddle));
    conv3_ = register_module("conv3", conv(64, 128, 3, false, kMiddle));
    bn3_ = register_module("bn3", Bn(128));
    act3_ = register_module("act3", act(kMiddle));
    conv4_ = register_module("conv4", conv(128, 128, 3, true, kMiddle));
    bn4_ = register_module("bn4", Bn(128));
    act4_ = register_module("act4", act(kMiddle));
    conv5_ = register_module("conv5", conv(128, 128, 3, false, kMiddle));
    bn5_ = register_module("bn5", Bn(128));
    act5_ = register_module("act5", act(kMiddle));
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
    conv6_ = register_module("conv6", conv(128, 512, 5, false, kMiddle));
    bn6_ = register_module("bn6", Bn(512));
    act6_ = register_module("act6", act(LayerPosition::kLast));
    fc_ = register_module(
        "fc", layers.Linear(torch::nn::LinearOptions(512, num_classes), LayerPosition::kLast));
    HeNormalInit(fc_, Fan::kIn);
  }

  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor x = act0_->forward(pool0_->forward(conv0_->forward(images)));
    x = act1_->ForwardBatchNorm(*bn1_, conv1_->forward(x));
    x = act2_->forward(pool1_->forward(bn2_->forward(conv2_->forward(x))));
    x = act3_->ForwardBatchNorm(*bn3_, conv3_->forward(x));
    x = act4_->ForwardBatchNorm(*bn4_, conv4_->forward(x));
    x = act5_->ForwardBatchNorm(*bn5_, conv5_->forward(x));
    x = act6_->ForwardBatchNorm(*bn6_, conv6_->forward(dropout_->forward(x)));
    return fc_->forward(x.flatten(1));
  }

  absl::StatusOr<InferenceGraph> Graph() const override {
    InferenceGraph g;
    int x = g.Module("act0", g.Module("pool0", g.Module("conv0", g.Input())));
    x = g.Module("act1", g.Module("bn1", g.Module("conv1", x)));
    x = g.Module("act2", g.Module("pool1", g.Module("bn2", g.Module("conv2", x))));
    for (const char* i : {"3", "4", "5"}) {
      x = g.Module(absl::StrCat("act", i),
                   g.Module(absl::StrCat("bn", i), g.Module(absl::StrCat("conv", i), x)));
    }
    x = g.Module("act6", g.Module("bn6", g.Module("conv6", g.Module("dropout", x))));
    g.Module("fc", g.Flatten(x));
    return g;
  }

  std::vector<int64_t> input_shape() const override { return {3, 40, 40}; }
  int64_t num_classes() const override { return num_classes_; }

 private:
  const int64_t num_classes_;
  quant::QuantConv2d conv0_{nullptr}, conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr},
      conv4_{nullptr}, conv5_{nullptr}, conv6_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr}, bn4_{nullptr}, bn5_{nullptr},
      bn6_{nullptr};
  torch::nn::MaxPool2d pool0_{nullptr}, pool1_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  std::shared_ptr<ActivationModule> act0_, act1_, act2_, act3_, act4_, act5_, act6_;
  quant::QuantLinear fc_{nullptr};
};

void ValidateSvhnConvNet(const SvhnConvNetOptions& options, Violations& v) {
  v.Check(options.num_classes() > 0, "num_classes", "must be > 0", options.num_classes());
  v.Check(options.dropout() >= 0 && options.dropout() < 1, "dropout", "must be in [0, 1)",
          options.dropout());
}

absl::StatusOr<std::shared_ptr<Model>> BuildSvhnConvNet(const SvhnConvNetOptions& options,
                                                        const BuildContext& context) {
  if (context.layers == nullptr) return absl::InvalidArgumentError("no layer builder given");
  return TorchCall("building svhn_convnet", [&]() -> std::shared_ptr<Model> {
    return std::make_shared<SvhnConvNet>(options.num_classes(), options.dropout(), *context.layers);
  });
}

}  // namespace

PACT_REGISTER_MODEL(svhn_convnet, SvhnConvNetOptions, BuildSvhnConvNet, ValidateSvhnConvNet)

}  // namespace pact::models
