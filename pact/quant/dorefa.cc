// Registers DoReFa weight quantization ("dorefa"; Zhou et al. 2016, Eq. 9), the weight
// quantizer the PACT paper pairs with its activations.
#include <memory>

#include "absl/status/statusor.h"
#include "pact/quant/dorefa_options.pb.h"
#include "pact/quant/pact_ops.h"
#include "pact/quant/quantizer.h"

namespace pact::quant {
namespace {

class DorefaWeightModule : public WeightQuantModule {
 public:
  explicit DorefaWeightModule(int bits) : bits_(bits) {}
  torch::Tensor forward(const torch::Tensor& weight) override {
    return DorefaWeight(weight, bits_);
  }

 private:
  int bits_;
};

// Stateless: every layer shares one transform.
class DorefaQuantizer : public WeightQuantizer {
 public:
  explicit DorefaQuantizer(int bits)
      : bits_(bits), transform_(std::make_shared<DorefaWeightModule>(bits)) {}
  std::shared_ptr<WeightQuantModule> Create() const override { return transform_; }
  int bits() const override { return bits_ == 0 ? kFullPrecisionBits : bits_; }
  std::string kind() const override { return "dorefa"; }

 private:
  int bits_;
  std::shared_ptr<WeightQuantModule> transform_;
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
