// Registers LSQ as an activation quantizer ("lsq"); lsq_weight.cc registers the weight one.
#include "pact/quant/lsq.h"

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <ostream>

#include "absl/status/statusor.h"
#include "glog/logging.h"
#include "pact/quant/layers.h"
#include "pact/quant/lsq_options.pb.h"

namespace pact::quant {
namespace {

bool Initialized(const torch::Tensor& flag) { return flag.item<float>() != 0.0f; }

// Sets `step` from `x` (Sec. 2.1) and marks it initialized.
void InitStep(torch::Tensor& step, torch::Tensor& flag, const torch::Tensor& x, LsqRange range,
              double step_min) {
  torch::NoGradGuard no_grad;
  const double value = LsqInitialStep(x.detach(), range.qp);
  step.fill_(value >= step_min ? value : step_min);  // an all-zero x gives 0
  flag.fill_(1.0f);
}

// g = 1 / sqrt(N * Qp) (Sec. 2.2).
double GradScale(int64_t n, LsqRange range) {
  return 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)) * range.qp);
}

class LsqActivationQuantizer : public ActivationQuantizer {
 public:
  explicit LsqActivationQuantizer(const LsqOptions& options) : options_(options) {}

  // Positions the first/last policy keeps at full precision get a plain ReLU (LSQ has no
  // clipping-only mode).
  std::shared_ptr<ActivationModule> Create(
      bool quantize, std::shared_ptr<const QuantControl> control) const override {
    if (!quantize) return std::make_shared<ReluActivation>();
    return std::make_shared<LsqActivation>(options_.bits(), options_.step_init(),
                                           options_.step_min(), std::move(control));
  }

 private:
  LsqOptions options_;
};

void ValidateLsqActivation(const LsqOptions& o, Violations& v) {
  v.Check(o.bits() >= 1 && o.bits() <= 16, "bits", "must be in [1, 16]", o.bits());
  v.Check(o.step_init() >= 0, "step_init", "must be >= 0 (0 = from the first batch)",
          o.step_init());
  v.Check(o.step_min() > 0, "step_min", "must be > 0", o.step_min());
}

absl::StatusOr<std::shared_ptr<const ActivationQuantizer>> BuildLsqActivation(
    const LsqOptions& options, const QuantizerContext&) {
  return std::make_shared<LsqActivationQuantizer>(options);
}

}  // namespace

LsqActivation::LsqActivation(int bits, double step_init, double step_min,
                             std::shared_ptr<const QuantControl> control)
    : bits_(bits),
      range_(LsqUnsignedRange(bits)),
      step_min_(step_min),
      control_(std::move(control)) {
  step = register_parameter("step", torch::full({1}, step_init > 0 ? step_init : 1.0));
  step_initialized =
      register_buffer("step_initialized", torch::full({1}, step_init > 0 ? 1.0f : 0.0f));
}

torch::Tensor LsqActivation::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (control_ != nullptr && !control_->enabled()) {
    y = torch::relu(x);
  } else {
    if (!Initialized(step_initialized)) {
      if (is_training()) {
        InitStep(step, step_initialized, x, range_, step_min_);
      } else {
        LOG_FIRST_N(WARNING, 1) << "an LSQ activation step is used before a training batch "
                                   "initialized it (it is "
                                << step.item<float>() << ")";
      }
    }
    const int64_t features = x.dim() > 0 && x.size(0) > 0 ? x.numel() / x.size(0) : x.numel();
    y = Lsq(x, step, range_, GradScale(features, range_), step_min_);
  }
  last_output_shape_ = y.sizes().vec();
  return y;
}

void LsqActivation::pretty_print(std::ostream& stream) const {
  stream << "LsqActivation(bits=" << bits_ << ", levels=[0, " << range_.qp << "])";
}

LsqWeight::LsqWeight(int bits, double step_init, double step_min)
    : bits_(bits), range_(LsqSignedRange(bits)), step_min_(step_min) {
  step = register_parameter("step", torch::full({1}, step_init > 0 ? step_init : 1.0));
  step_initialized =
      register_buffer("step_initialized", torch::full({1}, step_init > 0 ? 1.0f : 0.0f));
}

torch::Tensor LsqWeight::forward(const torch::Tensor& weight) {
  // The weights are known at any time, so the first use initializes, in any mode.
  if (!Initialized(step_initialized)) InitStep(step, step_initialized, weight, range_, step_min_);
  return Lsq(weight, step, range_, GradScale(weight.numel(), range_), step_min_);
}

void LsqWeight::pretty_print(std::ostream& stream) const {
  stream << "LsqWeight(bits=" << bits_ << ", levels=[-" << range_.qn << ", " << range_.qp << "])";
}

PACT_REGISTER_ACTIVATION_QUANTIZER(lsq, LsqOptions, BuildLsqActivation, ValidateLsqActivation)

}  // namespace pact::quant
