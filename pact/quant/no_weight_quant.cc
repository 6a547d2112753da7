// Registers full-precision weights ("none").
#include <memory>

#include "absl/status/statusor.h"
#include "pact/quant/layers.h"
#include "pact/quant/no_weight_quant_options.pb.h"
#include "pact/quant/quantizer.h"

namespace pact::quant {
namespace {

absl::StatusOr<std::shared_ptr<const WeightQuantizer>> BuildNone(const NoWeightQuantOptions&,
                                                                 const QuantizerContext&) {
  return std::make_shared<NoWeightQuantizer>();
}

}  // namespace

PACT_REGISTER_WEIGHT_QUANTIZER(none, NoWeightQuantOptions, BuildNone)

}  // namespace pact::quant
