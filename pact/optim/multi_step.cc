// Registers the multi-step schedule ("multi_step"): lr x gamma at each milestone epoch.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
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

void ValidateMultiStep(const MultiStepOptions& o, Violations& v) {
  for (int i = 0; i < o.milestones_size(); ++i) {
    const std::string field = absl::StrCat("milestones[", i, "]");
    v.Check(o.milestones(i) > 0, field, "must be > 0", o.milestones(i));
    if (i > 0) {
      v.Check(
          o.milestones(i) > o.milestones(i - 1), field,
          absl::StrCat("must be greater than the previous milestone (", o.milestones(i - 1), ")"),
          o.milestones(i));
    }
  }
  v.Check(o.gamma() > 0 && o.gamma() <= 1, "gamma", "must be in (0, 1]", o.gamma());
}

absl::StatusOr<std::shared_ptr<const LrSchedule>> BuildMultiStep(const MultiStepOptions& o,
                                                                 const LrScheduleContext&) {
  std::vector<int> milestones(o.milestones().begin(), o.milestones().end());
  return std::make_shared<MultiStep>(std::move(milestones), o.gamma());
}

}  // namespace

PACT_REGISTER_LR_SCHEDULE(multi_step, MultiStepOptions, BuildMultiStep, ValidateMultiStep)

}  // namespace pact::optim
