// Registers the PACT activation quantizer ("pact"): learnable clipping level alpha per layer,
// k-bit uniform quantization on [0, alpha] (Choi et al. 2018, Eq. 1-3).
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "pact/quant/layers.h"
#include "pact/quant/pact_options.pb.h"
#include "pact/quant/quantizer.h"

namespace pact::quant {
namespace {

class PactQuantizer : public ActivationQuantizer {
 public:
  explicit PactQuantizer(const PactOptions& options) : options_(options) {}

  // Positions kept at full precision by the first/last policy still clip with a learnable
  // alpha (bits 0), as in the paper.
  std::shared_ptr<ActivationModule> Create(
      bool quantize, std::shared_ptr<const QuantControl> control) const override {
    return std::make_shared<PactActivation>(quantize ? options_.bits() : 0, options_.alpha_init(),
                                            options_.alpha_min(), std::move(control),
                                            options_.alpha_init_percentile());
  }

 private:
  PactOptions options_;
};

void ValidatePact(const PactOptions& p, Violations& v) {
  v.Check(p.bits() >= 0 && p.bits() <= 16, "bits",
          "must be in [0, 16] (0 = clipping without quantization)", p.bits());
  v.Check(p.alpha_init() > 0, "alpha_init", "must be > 0", p.alpha_init());
  v.Check(p.alpha_min() > 0, "alpha_min", "must be > 0", p.alpha_min());
  v.Check(p.alpha_min() <= p.alpha_init(), "alpha_min",
          absl::StrCat("must be <= alpha_init (", p.alpha_init(), ")"), p.alpha_min());
  if (p.has_alpha_init_percentile()) {
    v.Check(p.alpha_init_percentile() > 0 && p.alpha_init_percentile() <= 100,
            "alpha_init_percentile", "must be in (0, 100]", p.alpha_init_percentile());
  }
}

absl::StatusOr<std::shared_ptr<const ActivationQuantizer>> BuildPact(const PactOptions& options,
                                                                     const QuantizerContext&) {
  return std::make_shared<PactQuantizer>(options);
}

}  // namespace

PACT_REGISTER_ACTIVATION_QUANTIZER(pact, PactOptions, BuildPact, ValidatePact)

}  // namespace pact::quant
