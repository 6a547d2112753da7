// Registers DoReFa weight quantization ("dorefa"; Zhou et al. 2016, Eq. 9), the weight
// quantizer the PACT paper pairs with its activations.
#include <memory>

#include "absl/status/statusor.h"
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

void ValidateDorefa(const DorefaOptions& options, Violations& v) {
  const int bits = options.bits();
  v.Check((bits >= 0 && bits <= 16) || bits == 32, "bits",
          "must be in [0, 16] or 32 (0 and 32 = full precision)", bits);
}

absl::StatusOr<std::shared_ptr<const WeightQuantizer>> BuildDorefa(const DorefaOptions& options,
                                                                   const QuantizerContext&) {
  return std::make_shared<DorefaQuantizer>(options.bits());
}

}  // namespace

PACT_REGISTER_WEIGHT_QUANTIZER(dorefa, DorefaOptions, BuildDorefa, ValidateDorefa)

}  // namespace pact::quant
