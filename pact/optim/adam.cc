// Registers Adam ("adam"); the paper's optimizer for SVHN and AlexNet.
#include <torch/optim/adam.h>

#include <memory>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "pact/core/torch_status.h"
#include "pact/optim/adam_options.pb.h"
#include "pact/optim/optimizer.h"

namespace pact::optim {
namespace {

torch::optim::AdamOptions ToTorch(const AdamOptions& o, double weight_decay) {
  return torch::optim::AdamOptions(o.lr())
      .betas(std::make_tuple(o.beta1(), o.beta2()))
      .eps(o.eps())
      .amsgrad(o.amsgrad())
      .weight_decay(weight_decay);
}

void ValidateAdam(const AdamOptions& o, Violations& v) {
  v.Check(o.lr() > 0, "lr", "must be > 0", o.lr());
  v.Check(o.beta1() >= 0 && o.beta1() < 1, "beta1", "must be in [0, 1)", o.beta1());
  v.Check(o.beta2() >= 0 && o.beta2() < 1, "beta2", "must be in [0, 1)", o.beta2());
  v.Check(o.eps() > 0, "eps", "must be > 0", o.eps());
  v.Check(o.weight_decay() >= 0, "weight_decay", "must be >= 0", o.weight_decay());
}

absl::StatusOr<std::shared_ptr<Optimizer>> BuildAdam(const AdamOptions& o,
                                                     const OptimizerContext& context) {
  return TorchCall("building adam", [&] {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!context.decayed.empty()) {
      groups.emplace_back(context.decayed, std::make_unique<torch::optim::AdamOptions>(
                                               ToTorch(o, o.weight_decay())));
    }
    if (!context.not_decayed.empty()) {
      groups.emplace_back(context.not_decayed,
                          std::make_unique<torch::optim::AdamOptions>(ToTorch(o, 0.0)));
    }
    auto optimizer = std::make_shared<Optimizer>();
    optimizer->torch_optimizer =
        std::make_shared<torch::optim::Adam>(std::move(groups), ToTorch(o, o.weight_decay()));
    optimizer->base_lr = o.lr();
    optimizer->weight_decay = o.weight_decay();
    return optimizer;
  });
}

}  // namespace

PACT_REGISTER_OPTIMIZER(adam, AdamOptions, BuildAdam, ValidateAdam)

}  // namespace pact::optim
