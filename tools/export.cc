// //tools:export — a trained run as a deployable integer model.
//
//   bazel run //tools:export -- --run=runs/cifar10_resnet20 [--checkpoint=best|last] --out=exp
//
// Reads <run>/recipe.pbtxt and <run>/checkpoints/<checkpoint>.pt (the run folder is only
// read) and writes into --out:
//   model.pim   the packed integer program (pact/deploy/packed_model.h): k-bit weight codes,
//               requantization constants, bits per layer; what //tools:infer runs.
//   model.onnx  the same network as a standard ONNX graph (pact/deploy/onnx_export.h),
//               checked with ONNX's checker and strict shape inference before it is written.
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gflags/gflags.h"
#include "google/protobuf/text_format.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/deploy/engine.h"
#include "pact/deploy/integer_model.h"
#include "pact/deploy/onnx_export.h"
#include "pact/deploy/packed_model.h"
#include "pact/deploy/trained_model.h"
#include "tools/cli.h"
#include "tools/tool_main.h"

DEFINE_string(run, "", "Run folder written by //tools:train (holds recipe.pbtxt, checkpoints/).");
DEFINE_string(checkpoint, "best", "Which checkpoint of the run: best or last.");
DEFINE_string(out, "",
              "Folder to write model.pim and model.onnx into (created; must not be inside "
              "--run).");

namespace {

std::string Canonical(const std::string& path) {
  std::error_code error;
  const std::filesystem::path p = std::filesystem::weakly_canonical(path, error);
  return error ? path : p.string();
}

absl::Status Export() {
  if (FLAGS_run.empty() || FLAGS_out.empty()) {
    return absl::InvalidArgumentError("--run=<run folder> and --out=<folder> are required");
  }
  const std::string run = Canonical(FLAGS_run), out = Canonical(FLAGS_out);
  if (out == run || absl::StartsWith(out, run + "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out=", FLAGS_out,
                     " is inside the run folder; export never writes there: pick "
                     "another folder"));
  }
  PACT_ASSIGN_OR_RETURN(pact::deploy::TrainedModel trained,
                        pact::deploy::LoadTrainedModel(FLAGS_run, FLAGS_checkpoint));
  PACT_ASSIGN_OR_RETURN(const pact::deploy::IntegerModel lowered,
                        pact::deploy::Lower(*trained.model, trained.model_name));
  PACT_ASSIGN_OR_RETURN(pact::deploy::Program program, pact::deploy::Compile(lowered));
  program.info.set_source_run(run);
  program.info.set_source_checkpoint(FLAGS_checkpoint);
  std::string eval_data;
  google::protobuf::TextFormat::PrintToString(trained.recipe.eval_data(), &eval_data);
  program.info.set_eval_data(eval_data);

  // A first check on synthetic images: the integer program against the fake-quant model.
  PACT_ASSIGN_OR_RETURN(
      const double agreement,
      pact::TorchCall("checking the program", [&]() -> absl::StatusOr<double> {
        torch::manual_seed(0);
        std::vector<int64_t> shape = {64};
        for (int64_t d : program.info.input_shape()) shape.push_back(d);
        const torch::Tensor images = torch::randn(shape);
        torch::NoGradGuard no_grad;
        const torch::Tensor expected = trained.model->forward(images);
        PACT_ASSIGN_OR_RETURN(const torch::Tensor logits,
                              pact::deploy::RunProgram(program, images));
        return logits.argmax(1).eq(expected.argmax(1)).to(torch::kDouble).mean().item<double>();
      }));

  PACT_ASSIGN_OR_RETURN(
      const std::string onnx,
      pact::deploy::ExportOnnx(lowered, absl::StrCat(run, " (", FLAGS_checkpoint, ")")));
  PACT_ASSIGN_OR_RETURN(const pact::deploy::OnnxCheckResult onnx_check,
                        pact::deploy::CheckOnnx(onnx));

  PACT_RETURN_IF_ERROR(pact::MakeDirs(FLAGS_out));
  PACT_ASSIGN_OR_RETURN(const std::string bytes, pact::deploy::SerializePackedModel(program));
  const std::string pim = pact::JoinPath(FLAGS_out, "model.pim");
  PACT_RETURN_IF_ERROR(pact::WriteFileAtomically(pim, bytes));
  const std::string onnx_path = pact::JoinPath(FLAGS_out, "model.onnx");
  PACT_RETURN_IF_ERROR(pact::WriteFileAtomically(onnx_path, onnx));

  int64_t float_weight_bytes = 0;
  for (const auto& p : trained.model->named_parameters()) {
    if (p.value().dim() > 1) float_weight_bytes += p.value().numel() * 4;
  }
  std::cout << absl::StrFormat("%-22s %-16s %s\n", "layer", "op", "integers");
  for (const pact::deploy::OpInfo& op : program.info.ops()) {
    std::string what;
    if (op.kind() == "conv" || op.kind() == "linear") {
      what = absl::StrFormat("%d-bit %s weights (scale %.6g)", op.weight_bits(),
                             op.weight_quantizer(), op.weight_scale());
    } else if (op.kind() == "requant") {
      what = absl::StrFormat("%d-bit %s codes (step %.6g), %d input(s)", op.out_bits(),
                             op.activation(), op.out_scale(), op.inputs_size());
    } else if (op.kind() == "float_to_codes") {
      what = absl::StrFormat("%d-bit %s codes from float", op.out_bits(), op.activation());
    } else if (op.kind().rfind("float_", 0) == 0) {
      what = "float (full precision by recipe, or reading such a layer)";
    } else {
      continue;
    }
    std::cout << absl::StrFormat("%-22s %-16s %s\n", op.name(), op.kind(), what);
  }
  std::cout << absl::StrFormat(
      "exported %s (%s, checkpoint %s)\nwrote %s: %d bytes (%.2fx smaller than the %d bytes of "
      "FP32 conv/linear weights)\nwrote %s: %d bytes, %d nodes (%s), passes onnx::checker and "
      "strict shape inference, logits [N, %d]\nsynthetic check: integer and fake-quant arg-max "
      "agree on "
      "%.1f%% of 64 random images (run //tools:infer for the real data)\n",
      trained.model_name, FLAGS_run, FLAGS_checkpoint, pim, bytes.size(),
      static_cast<double>(float_weight_bytes) / static_cast<double>(bytes.size()),
      float_weight_bytes, onnx_path, onnx.size(), onnx_check.nodes,
      absl::StrJoin(onnx_check.op_types, " "), program.info.num_classes(), 100.0 * agreement);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  return pact::tools::RunTool(
      "export",
      "export --run=<run folder> [--checkpoint=best|last] --out=<folder>: a trained run as a "
      "packed integer model",
      argc, argv, Export);
}
