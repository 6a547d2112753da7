// Small ConvNet for 28x28x1 inputs (Fashion-MNIST), registered as "fashion_convnet": the
// README quick start, sized to train to >= 89% test top-1 within minutes on 2 CPU cores
// (1.42 M multiply-adds per image with the defaults). Not a paper network:
//   conv1 5x5 c1 pad 2 (first) -> bn1 -> pool1 2 -> act1 (first)   28 -> 14
//   conv2 3x3 c2 pad 1 -> bn2 -> pool2 2 -> act2                    14 -> 7
//   fc1 hidden, no bias -> bn3 -> act3 (last) -> fc2 num_classes (last)
// Max pooling commutes with the monotone activation, so pooling before it gives the same
// network while quantizing 4x fewer values.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/pooling.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "models/fashion_convnet_options.pb.h"
#include "models/model.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

using quant::ActivationModule;
using quant::LayerBuilder;
using quant::LayerPosition;

struct FashionConvNetConfig {
  int64_t channels1 = 16;
  int64_t channels2 = 32;
  int64_t hidden = 128;
  int64_t num_classes = 10;
};

class FashionConvNet : public Model {
 public:
  FashionConvNet(const FashionConvNetConfig& config, const LayerBuilder& layers)
      : num_classes_(config.num_classes) {
    // Layers keep PyTorch's default init (the LayerBuilder's).
    conv1_ = register_module(
        "conv1",
        layers.Conv(torch::nn::Conv2dOptions(1, config.channels1, 5).padding(2).bias(false),
                    LayerPosition::kFirst));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(config.channels1));
    pool1_ = register_module("pool1", torch::nn::MaxPool2d(2));
    act1_ = register_module("act1", layers.Activation(LayerPosition::kFirst));
    conv2_ = register_module(
        "conv2",
        layers.Conv(
            torch::nn::Conv2dOptions(config.channels1, config.channels2, 3).padding(1).bias(false),
            LayerPosition::kMiddle));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(config.channels2));
    pool2_ = register_module("pool2", torch::nn::MaxPool2d(2));
    act2_ = register_module("act2", layers.Activation(LayerPosition::kMiddle));
    fc1_ = register_module(
        "fc1",
        layers.Linear(torch::nn::LinearOptions(config.channels2 * 7 * 7, config.hidden).bias(false),
                      LayerPosition::kMiddle));
    bn3_ = register_module("bn3", torch::nn::BatchNorm1d(config.hidden));
    act3_ = register_module("act3", layers.Activation(LayerPosition::kLast));
    fc2_ = register_module(
        "fc2", layers.Linear(torch::nn::LinearOptions(config.hidden, config.num_classes),
                             LayerPosition::kLast));
  }

  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor x = act1_->forward(pool1_->forward(bn1_->forward(conv1_->forward(images))));
    x = act2_->forward(pool2_->forward(bn2_->forward(conv2_->forward(x))));
    x = act3_->forward(bn3_->forward(fc1_->forward(x.flatten(1))));
    return fc2_->forward(x);
  }

  absl::StatusOr<InferenceGraph> Graph() const override {
    InferenceGraph g;
    int x = g.Input();
    for (const char* stage : {"1", "2"}) {
      for (const char* module : {"conv", "bn", "pool", "act"}) {
        x = g.Module(absl::StrCat(module, stage), x);
      }
    }
    x = g.Module("act3", g.Module("bn3", g.Module("fc1", g.Flatten(x))));
    g.Module("fc2", x);
    return g;
  }

  std::vector<int64_t> input_shape() const override { return {1, 28, 28}; }
  int64_t num_classes() const override { return num_classes_; }

 private:
  const int64_t num_classes_;
  quant::QuantConv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::MaxPool2d pool1_{nullptr}, pool2_{nullptr};
  quant::QuantLinear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::BatchNorm1d bn3_{nullptr};
  std::shared_ptr<ActivationModule> act1_, act2_, act3_;
};

void ValidateFashionConvNet(const FashionConvNetOptions& options, Violations& v) {
  const std::pair<const char*, int> positive[] = {{"channels1", options.channels1()},
                                                  {"channels2", options.channels2()},
                                                  {"hidden", options.hidden()},
                                                  {"num_classes", options.num_classes()}};
  for (const auto& [field, value] : positive) v.Check(value > 0, field, "must be > 0", value);
}

absl::StatusOr<std::shared_ptr<Model>> BuildFashionConvNet(const FashionConvNetOptions& options,
                                                           const BuildContext& context) {
  if (context.layers == nullptr) return absl::InvalidArgumentError("no layer builder given");
  FashionConvNetConfig config;
  config.channels1 = options.channels1();
  config.channels2 = options.channels2();
  config.hidden = options.hidden();
  config.num_classes = options.num_classes();
  return TorchCall("building fashion_convnet", [&]() -> std::shared_ptr<Model> {
    return std::make_shared<FashionConvNet>(config, *context.layers);
  });
}

}  // namespace

PACT_REGISTER_MODEL(fashion_convnet, FashionConvNetOptions, BuildFashionConvNet,
                    ValidateFashionConvNet)

}  // namespace pact::models
