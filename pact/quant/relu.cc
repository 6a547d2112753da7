// Registers the full-precision baseline activation ("relu").
#include <memory>

#include "absl/status/statusor.h"
#include "pact/quant/layers.h"
#include "pact/quant/quantizer.h"
#include "pact/quant/relu_options.pb.h"

namespace pact::quant {
namespace {

class ReluQuantizer : public ActivationQuantizer {
 public:
  std::shared_ptr<ActivationModule> Create(bool,
                                           std::shared_ptr<const QuantControl>) const override {
    return std::make_shared<ReluActivation>();
  }
};

absl::StatusOr<std::shared_ptr<const ActivationQuantizer>> BuildRelu(const ReluOptions&,
                                                                     const QuantizerContext&) {
  return std::make_shared<ReluQuantizer>();
}

}  // namespace

PACT_REGISTER_ACTIVATION_QUANTIZER(relu, ReluOptions, BuildRelu)

}  // namespace pact::quant
