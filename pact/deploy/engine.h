// The integer engine: a lowered model (integer_model.h) compiled into an integer program
// (integer_program.proto) and run with integer arithmetic from the quantized input to the
// logits, except in layers that are full precision by recipe.
//
// Compilation keeps every value between two quantized activations as an exact affine form
// sum_t v_t * m_t[c] + b[c] over integer tensors v_t (convolution sums, activation codes): a
// BatchNorm rescales it, a residual add appends a term, a max pool or global sum pool works on
// the integers. A quantized activation then turns the form into its codes in one fixed-point
// step (op "requant": int32 multipliers, a per-channel shift and an int64 offset, Jacob et al.
// 2018 Sec. 2.2), so BatchNorm never touches the low-bit weights and the residual add is in the
// integer domain. Where a value must leave the integers (a full-precision layer, the logits), a
// "dequant" op evaluates the form in float.
//
// The network input is quantized (kInputScale, two int16 parts) when the first layer has integer
// weights, and that conv runs on the int16 x int16 GEMM; conv/linear on u8 codes with weights in
// int8 run on the u8 x s8 kernels (int_kernels.h; 3x3 convs as an implicit GEMM, fused with
// their requantization per image); other integer layers (8-bit DoReFa weights, whose odd codes
// need 9 bits, and the linear layer on pooled sums) on a portable int64-accumulating loop.
#ifndef PACT_DEPLOY_ENGINE_H_
#define PACT_DEPLOY_ENGINE_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "pact/deploy/integer_model.h"
#include "pact/deploy/integer_program.pb.h"

namespace pact::deploy {

// The network input as integers: q = round(x / kInputScale) (2^-20), split into two int16
// parts, high = floor(q / 2^kInputSplitBits) and low = q mod 2^kInputSplitBits, which the first
// layer sums over separately (two int16 GEMMs, two requantization terms). Inputs within +-32
// are held to 2^-21, float32's own rounding of a normalized pixel: a coarser int16 step (2^-12)
// flipped enough 8-bit first-layer codes to change 9% of a W2A2 model's answers.
inline constexpr double kInputScale = 1.0 / (1 << 20);
inline constexpr int kInputSplitBits = 10;

struct Program {
  IntegerProgram info;
  // One per info.tensors entry: int32 integers v for "packed" (the codes decoded), else the
  // dtype itself (int8, int32, int64, float32).
  std::vector<torch::Tensor> tensors;
  // Filled by Prepare(): per op, the GEMM layout of its weights when it runs on the u8 x s8
  // kernel (empty otherwise).
  std::vector<std::vector<int8_t>> gemm_weights;
  // Likewise for the int16 x int16 kernel (a conv on the int16 input codes).
  std::vector<std::vector<int16_t>> gemm16_weights;
  // Per op: the largest |a0 * w0 + a1 * w1| its u8 x s8 products can reach (0 when it has none);
  // a kernel build whose u8_pair_limit is below it is not used for that op.
  std::vector<int64_t> u8_pair_bound;
  // Per op: for the first of consecutive convs that run together with the requant after them
  // (their sums' only reader), that requant's index; else -1.
  std::vector<int> fused_until;
};

// Compiles `m`. Unimplemented naming the layer for what the integer program cannot express
// (dilated integer convolutions); OutOfRange when a layer's integer sums could overflow int32.
absl::StatusOr<Program> Compile(const IntegerModel& m);

// Checks `program` (value and tensor references, types, shapes) and builds its run-time
// layouts. Compile() calls it; a program read from a file needs it before RunProgram().
// InvalidArgument naming the op when the program is inconsistent.
absl::Status Prepare(Program& program);

// The logits [N, num_classes] (float) for normalized images [N, C, H, W]. With `op_seconds`
// (resized to the op count), adds each op's wall time to it (a fused conv's goes to the conv).
absl::StatusOr<torch::Tensor> RunProgram(const Program& program, const torch::Tensor& images,
                                         std::vector<double>* op_seconds = nullptr);

}  // namespace pact::deploy

#endif  // PACT_DEPLOY_ENGINE_H_
