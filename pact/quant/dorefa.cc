// Registers DoReFa weight quantization ("dorefa"; Zhou et al. 2016, Eq. 9), the weight
// quantizer the PACT paper pairs with its activations.
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "pact/quant/dorefa_options.pb.h"
#include "pact/quant/pact_ops.h"
#include "pact/quant/quantizer.h"

namespace pact::quant {
namespace {

class DorefaQuantizer : public WeightQuantizer {
 public:
  explicit DorefaQuantizer(int bits) : bits_(bits) {}
  torch::Tensor Quantize(const torch::Tensor& weight) const override {
    return DorefaWeight(weight, bits_);
  }
  int bits() const override { return bits_ == 0 ? kFullPrecisionBits : bits_; }
  std::string kind() const override { return "dorefa"; }

 private:
  int bits_;
};

absl::StatusOr<std::shared_ptr<const WeightQuantizer>> BuildDorefa(const DorefaOptions& options,
                                                                   const QuantizerContext&) {
  const int bits = options.bits();
  if (!((bits >= 0 && bits <= 16) || bits == 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dorefa.bits: must be in [0, 16] or 32, got ", bits));
  }
  return std::make_shared<DorefaQuantizer>(bits);
}

}  // namespace

PACT_REGISTER_WEIGHT_QUANTIZER(dorefa, DorefaOptions, BuildDorefa)

}  // namespace pact::quant
