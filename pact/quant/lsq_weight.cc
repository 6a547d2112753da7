// Registers LSQ as a weight quantizer ("lsq"): a learned step per conv/linear layer, in the
// layer's child module "weight_quant" (lsq.h).
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "pact/quant/lsq.h"
#include "pact/quant/lsq_options.pb.h"
#include "pact/quant/quantizer.h"

namespace pact::quant {
namespace {

class LsqWeightQuantizer : public WeightQuantizer {
 public:
  explicit LsqWeightQuantizer(const LsqOptions& options) : options_(options) {}
  // A module per layer: each learns its own step.
  std::shared_ptr<WeightQuantModule> Create() const override {
    return std::make_shared<LsqWeight>(options_.bits(), options_.step_init(), options_.step_min());
  }
  int bits() const override { return options_.bits(); }
  std::string kind() const override { return "lsq"; }

 private:
  LsqOptions options_;
};

void ValidateLsqWeight(const LsqOptions& o, Violations& v) {
  v.Check(o.bits() >= 2 && o.bits() <= 16, "bits",
          "must be in [2, 16] (weights are signed: 2 bits are the levels -2, -1, 0, 1)", o.bits());
  v.Check(o.step_init() >= 0, "step_init", "must be >= 0 (0 = from the weights)", o.step_init());
  v.Check(o.step_min() > 0, "step_min", "must be > 0", o.step_min());
}

absl::StatusOr<std::shared_ptr<const WeightQuantizer>> BuildLsqWeight(const LsqOptions& options,
                                                                      const QuantizerContext&) {
  return std::make_shared<LsqWeightQuantizer>(options);
}

}  // namespace

PACT_REGISTER_WEIGHT_QUANTIZER(lsq, LsqOptions, BuildLsqWeight, ValidateLsqWeight)

}  // namespace pact::quant
