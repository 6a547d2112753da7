// //tools:infer — evaluates an exported integer model (//tools:export) on a dataset's eval
// split with the integer engine, against the trainer's fake-quant model of the run it came from.
//
//   bazel run //tools:infer -- --model=exp --dataset=cifar10 --data-root=data/cifar10 \
//       [--compare-with=runs/cifar10_resnet20]
//
// Prints, last, one line: top1 <x>% top5 <y>% agreement <z>% (agreement: the share of images
// on which the integer model's arg-max is the fake-quant model's).
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "datasets/dataset.h"
#include "gflags/gflags.h"
#include "google/protobuf/text_format.h"
#include "pact/core/file.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/deploy/engine.h"
#include "pact/deploy/int_kernels.h"
#include "pact/deploy/packed_model.h"
#include "pact/deploy/trained_model.h"
#include "pact/train/components.h"
#include "tools/cli.h"
#include "tools/tool_main.h"

DEFINE_string(model, "", "Export folder (holds model.pim) or the .pim file.");
DEFINE_string(dataset, "", "Dataset to evaluate on (its eval split), e.g. cifar10.");
DEFINE_string(data_root, "", "The dataset's folder (default: the run's, or the dataset's own).");
DEFINE_string(compare_with, "",
              "Run folder whose fake-quant model gives the reference arg-max (default: the run "
              "the model was exported from, when it is still there).");
DEFINE_string(checkpoint, "",
              "Checkpoint of --compare-with: best or last (default: the exported one).");
DEFINE_int32(batch_size, 256, "Images per integer forward.");
DEFINE_int64(limit, 0, "Evaluate only the first this many images (0 = all).");
DEFINE_bool(profile, false, "Print the integer engine's time per op kind.");
DEFINE_string(kernels, "", "Integer kernel build: generic or avx512_vnni (default: the best one).");

namespace {

absl::StatusOr<pact::datasets::DatasetSpec> EvalSpec(const pact::deploy::Program& program) {
  using pact::datasets::DatasetSpec;
  DatasetSpec spec;
  DatasetSpec stored;
  if (!program.info.eval_data().empty() &&
      google::protobuf::TextFormat::ParseFromString(program.info.eval_data(), &stored) &&
      pact::SelectedName(stored) == FLAGS_dataset) {
    spec = stored;  // the run's own eval split, normalization included
  } else {
    if (!pact::tools::SelectByName(&spec, FLAGS_dataset).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown --dataset '", FLAGS_dataset,
          "'; known: ", absl::StrJoin(pact::datasets::GetDatasetRegistry().Names(), ", ")));
    }
  }
  spec.set_split(pact::datasets::SPLIT_TEST);
  spec.set_augment(false);
  spec.set_workers(0);
  if (!FLAGS_data_root.empty()) spec.set_data_root(FLAGS_data_root);
  return spec;
}

absl::Status Infer() {
  if (FLAGS_model.empty() || FLAGS_dataset.empty()) {
    return absl::InvalidArgumentError("--model=<export folder> and --dataset=<name> are required");
  }
  if (FLAGS_batch_size <= 0) return absl::InvalidArgumentError("--batch_size must be > 0");
  if (!FLAGS_kernels.empty() && !pact::deploy::kernels::SetIntKernels(FLAGS_kernels)) {
    std::vector<std::string> names;
    for (const auto* k : pact::deploy::kernels::SupportedIntKernels()) names.push_back(k->name);
    return absl::InvalidArgumentError(
        absl::StrCat("--kernels=", FLAGS_kernels,
                     " is not available here; this CPU runs: ", absl::StrJoin(names, ", ")));
  }
  const std::string path =
      pact::IsDirectory(FLAGS_model) ? pact::JoinPath(FLAGS_model, "model.pim") : FLAGS_model;
  PACT_ASSIGN_OR_RETURN(const pact::deploy::Program program, pact::deploy::ReadPackedModel(path));
  PACT_ASSIGN_OR_RETURN(const pact::datasets::DatasetSpec spec, EvalSpec(program));
  PACT_ASSIGN_OR_RETURN(const std::shared_ptr<const pact::datasets::Dataset> dataset,
                        pact::train::BuildDataset(spec));
  const std::vector<int64_t> shape = dataset->image_shape();
  const std::vector<int64_t> expected(program.info.input_shape().begin(),
                                      program.info.input_shape().end());
  if (shape != expected || dataset->num_classes() != program.info.num_classes()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dataset->Describe(), " has images [", absl::StrJoin(shape, ", "), "] and ",
                     dataset->num_classes(), " classes; ", path, " takes [",
                     absl::StrJoin(expected, ", "), "] and gives ", program.info.num_classes()));
  }

  // The reference: the fake-quant model of the run.
  std::string run = FLAGS_compare_with;
  if (run.empty() && !program.info.source_run().empty() &&
      pact::IsDirectory(program.info.source_run())) {
    run = program.info.source_run();
  }
  std::shared_ptr<pact::models::Model> reference;
  if (!run.empty()) {
    const std::string checkpoint = !FLAGS_checkpoint.empty() ? FLAGS_checkpoint
                                   : !program.info.source_checkpoint().empty()
                                       ? program.info.source_checkpoint()
                                       : "best";
    PACT_ASSIGN_OR_RETURN(pact::deploy::TrainedModel trained,
                          pact::deploy::LoadTrainedModel(run, checkpoint));
    if (trained.model_name != program.info.model()) {
      return absl::InvalidArgumentError(absl::StrCat("--compare-with=", run, " trained a ",
                                                     trained.model_name, ", ", path, " is a ",
                                                     program.info.model()));
    }
    reference = trained.model;
    std::cerr << "reference: " << trained.checkpoint << " (fake-quant, evaluation mode)\n";
  }
  std::cerr << "integer model: " << path << " (" << program.info.model() << "), kernels "
            << pact::deploy::kernels::ActiveIntKernels().name << "\n"
            << "data: " << dataset->Describe() << "\n";

  const int64_t total =
      FLAGS_limit > 0 ? std::min<int64_t>(FLAGS_limit, dataset->size()) : dataset->size();
  int64_t top1 = 0, top5 = 0, agree = 0, ref_top1 = 0;
  absl::Duration engine_time;
  std::vector<double> op_seconds;
  std::mt19937_64 rng(0);  // unused: the eval split is not augmented
  const int64_t per_image = shape[0] * shape[1] * shape[2];
  for (int64_t start = 0; start < total; start += FLAGS_batch_size) {
    const int64_t n = std::min<int64_t>(FLAGS_batch_size, total - start);
    torch::Tensor images = torch::empty({n, shape[0], shape[1], shape[2]});
    torch::Tensor labels = torch::empty({n}, torch::kInt64);
    for (int64_t i = 0; i < n; ++i) {
      labels[i] = dataset->Get(start + i, rng, images.data_ptr<float>() + i * per_image);
    }
    const absl::Time t0 = absl::Now();
    PACT_ASSIGN_OR_RETURN(const torch::Tensor logits,
                          pact::deploy::RunProgram(program, images, &op_seconds));
    engine_time += absl::Now() - t0;
    PACT_RETURN_IF_ERROR(pact::TorchCall("scoring", [&]() -> absl::Status {
      const torch::Tensor best5 = std::get<1>(logits.topk(std::min<int64_t>(5, logits.size(1)), 1));
      const torch::Tensor hit = best5.eq(labels.unsqueeze(1));
      top1 += hit.select(1, 0).sum().item<int64_t>();
      top5 += hit.any(1).sum().item<int64_t>();
      if (reference != nullptr) {
        torch::NoGradGuard no_grad;
        const torch::Tensor ref = reference->forward(images).argmax(1);
        agree += ref.eq(logits.argmax(1)).sum().item<int64_t>();
        ref_top1 += ref.eq(labels).sum().item<int64_t>();
      }
      return absl::OkStatus();
    }));
  }
  const double seconds = absl::ToDoubleSeconds(engine_time);
  std::cerr << absl::StrFormat("integer engine: %d images in %.2f s (%.0f images/s, batch %d)\n",
                               total, seconds, seconds > 0 ? total / seconds : 0.0,
                               FLAGS_batch_size);
  if (FLAGS_profile) {
    std::map<std::string, double> by_kind;
    for (size_t i = 0; i < op_seconds.size(); ++i) {
      const std::string& kind = program.info.ops(static_cast<int>(i)).kind();
      const bool fused = kind == "conv" && program.fused_until[i] >= 0;
      by_kind[fused ? "conv+requant" : kind] += op_seconds[i];
    }
    for (const auto& [kind, s] : by_kind) {
      std::cerr << absl::StrFormat("  %-24s %8.3f s  %5.1f%%\n", kind, s, 100.0 * s / seconds);
    }
  }
  const auto pct = [&](int64_t k) { return 100.0 * static_cast<double>(k) / total; };
  if (reference != nullptr) {
    std::cerr << absl::StrFormat("fake-quant reference top1 %.2f%%\n", pct(ref_top1));
    std::cout << absl::StrFormat("top1 %.2f%% top5 %.2f%% agreement %.2f%%", pct(top1), pct(top5),
                                 pct(agree))
              << std::endl;
  } else {
    std::cerr << "no reference run (--compare-with) and the exported run is not here: agreement "
                 "not measured\n";
    std::cout << absl::StrFormat("top1 %.2f%% top5 %.2f%% agreement n/a", pct(top1), pct(top5))
              << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  return pact::tools::RunTool("infer",
                              "infer --model=<export folder> --dataset=<name> [--data-root=<dir>] "
                              "[--compare-with=<run folder>]: integer-model accuracy and agreement",
                              argc, argv, Infer);
}
