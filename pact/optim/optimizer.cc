#include "pact/optim/optimizer.h"

namespace pact::optim {

void Optimizer::SetLearningRate(double lr) {
  for (auto& group : torch_optimizer->param_groups()) group.options().set_lr(lr);
}

double Optimizer::LearningRate() const {
  const auto& groups = torch_optimizer->param_groups();
  return groups.empty() ? 0.0 : groups.front().options().get_lr();
}

OptimizerRegistry& GetOptimizerRegistry() {
  static auto* registry = new OptimizerRegistry("optimizer", "//pact/optim:all_optimizers");
  return *registry;
}

LrScheduleRegistry& GetLrScheduleRegistry() {
  static auto* registry = new LrScheduleRegistry("lr schedule", "//pact/optim:all_lr_schedules");
  return *registry;
}

}  // namespace pact::optim
