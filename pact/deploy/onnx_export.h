// A lowered model (integer_model.h) as a standard ONNX graph (opset 13, IR 7; Debian's ONNX
// 1.12 has no int4 types, so codes travel in int8/uint8 containers):
//   - PACT / LSQ activations: Clip(0, alpha) -> QuantizeLinear(uint8, step, 0) ->
//     DequantizeLinear; full-precision ones Relu or Clip.
//   - Quantized weights: their integer codes (int8; int32 past 7 bits) as an initializer with
//     the scale -> DequantizeLinear (DoReFa: the odd integers v = 2i - L, scale 1/L).
//   - BatchNorm: folded into a per-channel Mul + Add before the activation, never into the
//     low-bit weights.
//   - First/last layers exactly as the recipe had them (float weights stay float).
// The input is "input" [N, C, H, W] (normalized images), the output "logits" [N, classes].
#ifndef PACT_DEPLOY_ONNX_EXPORT_H_
#define PACT_DEPLOY_ONNX_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pact/deploy/integer_model.h"

namespace pact::deploy {

// The serialized onnx.ModelProto. `producer` names the source in the model's metadata.
absl::StatusOr<std::string> ExportOnnx(const IntegerModel& m, const std::string& source);

struct OnnxCheckResult {
  int nodes = 0;
  std::vector<std::string> op_types;  // distinct, sorted
  std::vector<int64_t> output_shape;  // inferred; -1 for the symbolic batch dimension
};

// onnx::checker::check_model, then shape inference in strict mode (type checks, node errors
// thrown, data propagation). InvalidArgument with ONNX's message when either fails.
absl::StatusOr<OnnxCheckResult> CheckOnnx(const std::string& serialized);

}  // namespace pact::deploy

#endif  // PACT_DEPLOY_ONNX_EXPORT_H_
