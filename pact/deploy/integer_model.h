// A trained model lowered for deployment: its inference graph (models/inference_graph.h) with
// every quantized tensor as integers and a scale, every BatchNorm as a per-channel affine, and
// every activation as a clip and, where quantized, a step: what the engine (engine.h) compiles
// into the integer program the packed file stores, and what the ONNX exporter writes; nothing
// here depends on the model's code.
//
// Values: a quantized tensor holds integers v with value = v * scale (zero point 0).
//   - PACT activations (Choi et al. 2018, Eq. 1-2): codes a in [0, 2^k - 1], scale alpha/(2^k-1),
//     the clip at alpha (alpha after the positivity guard, rounded to float as training rounds it).
//   - LSQ activations: codes in [0, Qp], scale = the step; LSQ weights: codes in [-Qn, Qp].
//   - DoReFa weights (Zhou et al. 2016, Eq. 9): w = (2i - L) / L with i in [0, L], L = 2^k - 1,
//     so v = 2i - L (odd integers in [-L, L], a (k+1)-bit range) and scale 1/L; the packed file
//     stores i in k bits (encoding "dorefa").
#ifndef PACT_DEPLOY_INTEGER_MODEL_H_
#define PACT_DEPLOY_INTEGER_MODEL_H_

#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pact::models {
class Model;
}  // namespace pact::models

namespace pact::deploy {

// How k-bit codes map to the integers v of a QuantTensor.
enum class Encoding {
  kUnsigned,  // code = v in [0, 2^k - 1]
  kSigned,    // code = v in [-2^(k-1), 2^(k-1) - 1], two's complement
  kDorefa,    // code = i in [0, 2^k - 1], v = 2i - (2^k - 1)
};
const char* EncodingName(Encoding encoding);

struct QuantTensor {
  torch::Tensor values;  // int32, the integers v
  double scale = 0.0;    // value = v * scale
  int bits = 0;          // of the stored codes
  Encoding encoding = Encoding::kUnsigned;
};

struct DeployNode {
  enum class Kind {
    kInput,
    kConv,
    kLinear,
    kBatchNorm,   // y = x * bn_scale[c] + bn_shift[c]
    kActivation,  // y = clip(x, 0, clip_max); then, when out_bits > 0, codes round(y / out_scale)
    kAdd,
    kMaxPool,
    kGlobalAvgPool,
    kFlatten,
    kZeroPadShortcut,
  };

  Kind kind = Kind::kInput;
  std::string name;  // the module path ("layer1.0.conv1"), or "<kind><index>" for other nodes
  std::vector<int> inputs;

  // kConv, kLinear: integer weights, or float ones (full precision by recipe); float bias.
  bool weight_quantized = false;
  QuantTensor weight;
  torch::Tensor float_weight;
  torch::Tensor bias;            // may be undefined
  std::string weight_quantizer;  // "dorefa", "lsq", "none"
  // kConv: stride, padding, dilation (2 each), groups; kMaxPool: kernel, stride, padding.
  std::vector<int64_t> kernel, stride, padding, dilation;
  int64_t groups = 1;
  bool ceil_mode = false;  // kMaxPool: output size rounded up (AlexNet-BN's pools)

  // kBatchNorm
  torch::Tensor bn_scale, bn_shift;  // float, per channel

  // kActivation
  std::string activation;  // "pact", "lsq", "relu"
  double clip_max = std::numeric_limits<double>::infinity();
  int out_bits = 0;          // 0: the output stays float
  double out_scale = 0.0;    // value of code 1
  int64_t out_max_code = 0;  // 2^k - 1 (PACT) or Qp (LSQ)

  // kZeroPadShortcut
  int64_t pad_before = 0, pad_after = 0;
};

struct IntegerModel {
  std::string model;                 // the registry key, e.g. "resnet20"
  std::vector<int64_t> input_shape;  // {C, H, W}
  int64_t num_classes = 0;
  std::vector<DeployNode> nodes;  // evaluation order; the last is the logits
};

// Lowers `model` (its quantizers as they are in evaluation) through Model::Graph. `name` is the
// model's registry key. FailedPrecondition when nothing in it is quantized (there is nothing to
// deploy as integers); Unimplemented, naming the layer, for a module the lowering does not know.
absl::StatusOr<IntegerModel> Lower(models::Model& model, const std::string& name);

// Evaluates `m` with float arithmetic on the dequantized values (weights v * scale; activations
// clipped and rounded to their codes, then multiplied back), the fake-quant model's semantics:
// its logits agree with the trained model's up to float rounding. For tests and for checking an
// export.
absl::StatusOr<torch::Tensor> RunDequantized(const IntegerModel& m, const torch::Tensor& images);

const char* KindName(DeployNode::Kind kind);

}  // namespace pact::deploy

#endif  // PACT_DEPLOY_INTEGER_MODEL_H_
