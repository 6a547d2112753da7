// Optimizer and learning-rate schedule interfaces and their registries.
#ifndef PACT_OPTIM_OPTIMIZER_H_
#define PACT_OPTIM_OPTIMIZER_H_

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <memory>
#include <vector>

#include "pact/core/registry.h"
#include "pact/optim/lr_schedule_spec.pb.h"
#include "pact/optim/optimizer_spec.pb.h"

namespace pact::optim {

// Parameters split by whether the optimizer's weight decay applies. PACT alphas are never
// decayed by the optimizer: lambda_alpha regularizes them in the loss (no double counting).
struct OptimizerContext {
  std::vector<torch::Tensor> decayed;
  std::vector<torch::Tensor> not_decayed;
};

// A torch optimizer whose param groups hold `base_lr` as their initial lr; the trainer sets
// lr = base_lr * schedule factor every epoch.
struct Optimizer {
  std::shared_ptr<torch::optim::Optimizer> torch_optimizer;
  double base_lr = 0.0;
  double weight_decay = 0.0;

  void SetLearningRate(double lr);
  double LearningRate() const;
};

using OptimizerRegistry =
    ComponentRegistry<OptimizerSpec, std::shared_ptr<Optimizer>, OptimizerContext>;
OptimizerRegistry& GetOptimizerRegistry();

// PACT_REGISTER_OPTIMIZER(name, OptionsType, factory[, validator]); see registry.h.
#define PACT_REGISTER_OPTIMIZER(name, OptionsType, ...) \
  PACT_REGISTER_COMPONENT(::pact::optim::GetOptimizerRegistry(), name, OptionsType, __VA_ARGS__)

// Per-epoch learning-rate multiplier.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  // Factor applied to the base LR during 0-based `epoch`.
  virtual double Factor(int epoch) const = 0;
};

struct LrScheduleContext {};

using LrScheduleRegistry =
    ComponentRegistry<LrScheduleSpec, std::shared_ptr<const LrSchedule>, LrScheduleContext>;
LrScheduleRegistry& GetLrScheduleRegistry();

#define PACT_REGISTER_LR_SCHEDULE(name, OptionsType, ...) \
  PACT_REGISTER_COMPONENT(::pact::optim::GetLrScheduleRegistry(), name, OptionsType, __VA_ARGS__)

}  // namespace pact::optim

#endif  // PACT_OPTIM_OPTIMIZER_H_
