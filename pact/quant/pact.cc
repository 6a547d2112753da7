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
                                            options_.alpha_min(), std::move(control));
  }

 private:
  PactOptions options_;
};

absl::StatusOr<std::shared_ptr<const ActivationQuantizer>> BuildPact(const PactOptions& options,
                                                                     const QuantizerContext&) {
  if (options.bits() < 0 || options.bits() > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("pact.bits: must be in [0, 16], got ", options.bits()));
  }
  if (!(options.alpha_init() > 0) || !(options.alpha_min() > 0) ||
      options.alpha_min() > options.alpha_init()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pact: need 0 < alpha_min <= alpha_init, got alpha_min ", options.alpha_min(),
                     " and alpha_init ", options.alpha_init()));
  }
  return std::make_shared<PactQuantizer>(options);
}

}  // namespace

PACT_REGISTER_ACTIVATION_QUANTIZER(pact, PactOptions, BuildPact)

}  // namespace pact::quant
