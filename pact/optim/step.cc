// Registers the step schedule ("step"): lr x gamma every step_epochs epochs.
#include <cmath>
#include <memory>

#include "absl/status/statusor.h"
#include "pact/optim/optimizer.h"
#include "pact/optim/step_options.pb.h"

namespace pact::optim {
namespace {

class Step : public LrSchedule {
 public:
  Step(int step_epochs, double gamma) : step_epochs_(step_epochs), gamma_(gamma) {}
  double Factor(int epoch) const override {
    return std::pow(gamma_, static_cast<double>(epoch / step_epochs_));
  }

 private:
  int step_epochs_;
  double gamma_;
};

void ValidateStep(const StepOptions& o, Violations& v) {
  v.Check(o.step_epochs() > 0, "step_epochs", "must be > 0", o.step_epochs());
  v.Check(o.gamma() > 0 && o.gamma() <= 1, "gamma", "must be in (0, 1]", o.gamma());
}

absl::StatusOr<std::shared_ptr<const LrSchedule>> BuildStep(const StepOptions& o,
                                                            const LrScheduleContext&) {
  return std::make_shared<Step>(o.step_epochs(), o.gamma());
}

}  // namespace

PACT_REGISTER_LR_SCHEDULE(step, StepOptions, BuildStep, ValidateStep)

}  // namespace pact::optim
