// Registers the multi-step schedule ("multi_step"): lr x gamma at each milestone epoch.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pact/optim/multi_step_options.pb.h"
#include "pact/optim/optimizer.h"

namespace pact::optim {
namespace {

class MultiStep : public LrSchedule {
 public:
  MultiStep(std::vector<int> milestones, double gamma)
      : milestones_(std::move(milestones)), gamma_(gamma) {}
  // Milestone m takes effect from epoch m on (PyTorch's MultiStepLR stepped once per epoch).
  double Factor(int epoch) const override {
    const auto passed =
        std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
    return std::pow(gamma_, static_cast<double>(passed));
  }

 private:
  std::vector<int> milestones_;
  double gamma_;
};

absl::StatusOr<std::shared_ptr<const LrSchedule>> BuildMultiStep(const MultiStepOptions& o,
                                                                 const LrScheduleContext&) {
  std::vector<int> milestones(o.milestones().begin(), o.milestones().end());
  for (size_t i = 0; i < milestones.size(); ++i) {
    if (milestones[i] <= 0 || (i > 0 && milestones[i] <= milestones[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi_step.milestones: must be positive and strictly increasing, got [",
                       absl::StrJoin(milestones, ", "), "]"));
    }
  }
  if (!(o.gamma() > 0 && o.gamma() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("multi_step.gamma: must be in (0, 1], got ", o.gamma()));
  }
  return std::make_shared<MultiStep>(std::move(milestones), o.gamma());
}

}  // namespace

PACT_REGISTER_LR_SCHEDULE(multi_step, MultiStepOptions, BuildMultiStep)

}  // namespace pact::optim
