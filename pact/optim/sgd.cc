// Registers SGD with momentum ("sgd"); the paper's optimizer for CIFAR-10 and ImageNet ResNets.
#include <torch/optim/sgd.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "pact/core/torch_status.h"
#include "pact/optim/optimizer.h"
#include "pact/optim/sgd_options.pb.h"

namespace pact::optim {
namespace {

torch::optim::SGDOptions ToTorch(const SgdOptions& o, double weight_decay) {
  return torch::optim::SGDOptions(o.lr())
      .momentum(o.momentum())
      .dampening(o.dampening())
      .nesterov(o.nesterov())
      .weight_decay(weight_decay);
}

void ValidateSgd(const SgdOptions& o, Violations& v) {
  v.Check(o.lr() > 0, "lr", "must be > 0", o.lr());
  v.Check(o.momentum() >= 0 && o.momentum() < 1, "momentum", "must be in [0, 1)", o.momentum());
  v.Check(o.weight_decay() >= 0, "weight_decay", "must be >= 0", o.weight_decay());
  v.Check(o.dampening() >= 0 && o.dampening() < 1, "dampening", "must be in [0, 1)", o.dampening());
  v.Check(!o.nesterov() || (o.momentum() > 0 && o.dampening() == 0), "nesterov",
          "needs momentum > 0 and dampening 0",
          absl::StrCat("momentum ", o.momentum(), ", dampening ", o.dampening()));
}

absl::StatusOr<std::shared_ptr<Optimizer>> BuildSgd(const SgdOptions& o,
                                                    const OptimizerContext& context) {
  return TorchCall("building sgd", [&] {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!context.decayed.empty()) {
      groups.emplace_back(context.decayed,
                          std::make_unique<torch::optim::SGDOptions>(ToTorch(o, o.weight_decay())));
    }
    if (!context.not_decayed.empty()) {
      groups.emplace_back(context.not_decayed,
                          std::make_unique<torch::optim::SGDOptions>(ToTorch(o, 0.0)));
    }
    auto optimizer = std::make_shared<Optimizer>();
    optimizer->torch_optimizer =
        std::make_shared<torch::optim::SGD>(std::move(groups), ToTorch(o, o.weight_decay()));
    optimizer->base_lr = o.lr();
    optimizer->weight_decay = o.weight_decay();
    return optimizer;
  });
}

}  // namespace

PACT_REGISTER_OPTIMIZER(sgd, SgdOptions, BuildSgd, ValidateSgd)

}  // namespace pact::optim
