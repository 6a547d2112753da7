// Registers the step schedule ("step"): lr x gamma every step_epochs epochs.
#include <cmath>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
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

absl::StatusOr<std::shared_ptr<const LrSchedule>> BuildStep(const StepOptions& o,
                                                            const LrScheduleContext&) {
  if (o.step_epochs() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step.step_epochs: must be > 0, got ", o.step_epochs()));
  }
  if (!(o.gamma() > 0 && o.gamma() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step.gamma: must be in (0, 1], got ", o.gamma()));
  }
  return std::make_shared<Step>(o.step_epochs(), o.gamma());
}

}  // namespace

PACT_REGISTER_LR_SCHEDULE(step, StepOptions, BuildStep)

}  // namespace pact::optim
