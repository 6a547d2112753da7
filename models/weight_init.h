// Weight initializations of the reference implementations, applied after the LayerBuilder
// created a layer (which starts from PyTorch's default init).
#ifndef PACT_MODELS_WEIGHT_INIT_H_
#define PACT_MODELS_WEIGHT_INIT_H_

#include <torch/nn/init.h>
#include <torch/types.h>

namespace pact::models {

enum class Fan { kIn, kOut };

// He et al. 2015 ("Delving Deep into Rectifiers"): weight ~ N(0, 2 / fan), bias = 0.
// fb.resnet.torch and Distiller's ResNets use fan_out for convs; tensorpack's Conv2D and
// FullyConnected default (variance_scaling_initializer(2.0)) use fan_in.
// `Layer` is a quant::QuantConv2d or quant::QuantLinear holder.
template <typename Layer>
void HeNormalInit(Layer& layer, Fan fan) {
  torch::NoGradGuard no_grad;
  if (fan == Fan::kIn) {
    torch::nn::init::kaiming_normal_(layer->weight, 0.0, torch::kFanIn, torch::kReLU);
  } else {
    torch::nn::init::kaiming_normal_(layer->weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  if (layer->bias.defined()) layer->bias.zero_();
}

}  // namespace pact::models

#endif  // PACT_MODELS_WEIGHT_INIT_H_
