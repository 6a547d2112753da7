#include "pact/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/core/torch_status.h"
#include "pact/train/pickled_state_dict.h"

namespace pact::train {
namespace {

std::string ShapeString(torch::IntArrayRef sizes) {
  return absl::StrCat("[", absl::StrJoin(sizes, ", "), "]");
}

// Format 1's loose values, read into the message (LibTorch throws on a missing key).
void ReadFormat1Progress(torch::serialize::InputArchive& archive, TrainingProgress* p) {
  c10::IValue value;
  const auto read_int = [&](const char* key) {
    archive.read(key, value);
    return value.toInt();
  };
  const auto read_double = [&](const char* key) {
    archive.read(key, value);
    return value.toDouble();
  };
  p->set_epoch(read_int("meta.epoch"));
  p->set_step_in_epoch(read_int("meta.step_in_epoch"));
  p->set_global_step(read_int("meta.global_step"));
  p->set_best_top1(read_double("meta.best_top1"));
  p->set_best_epoch(read_int("meta.best_epoch"));
  p->set_partial_loss_sum(read_double("meta.partial_loss_sum"));
  p->set_partial_correct(read_int("meta.partial_correct"));
  p->set_partial_seen(read_int("meta.partial_seen"));
  p->set_partial_seconds(read_double("meta.partial_seconds"));
  archive.read("meta.recipe", value);
  p->set_recipe_text(value.toStringRef());
}

void ReadModel(torch::serialize::InputArchive& archive, torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    torch::Tensor saved;
    archive.read("model." + item.key(), saved);
    TORCH_CHECK(saved.sizes() == item.value().sizes(), "parameter ", item.key(), " has shape ",
                saved.sizes(), " in the checkpoint but ", item.value().sizes(), " in the model");
    item.value().copy_(saved);
  }
  for (auto& item : model.named_buffers(/*recurse=*/true)) {
    torch::Tensor saved;
    archive.read("model." + item.key(), saved, /*is_buffer=*/true);
    TORCH_CHECK(saved.sizes() == item.value().sizes(), "buffer ", item.key(), " has shape ",
                saved.sizes(), " in the checkpoint but ", item.value().sizes(), " in the model");
    item.value().copy_(saved);
  }
}

// The tensors of a checkpoint's model ("model.<name>" entries) or of a pickled state dict
// (ours or Python's torch.save), by name. Throws (c10::Error) when the file is neither.
std::map<std::string, torch::Tensor> ReadNamedTensors(const std::string& path) {
  std::map<std::string, torch::Tensor> tensors;
  bool is_checkpoint = false;
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    c10::IValue version;
    is_checkpoint = archive.try_read("meta.format_version", version);
  } catch (const c10::Error&) {
    is_checkpoint = false;  // not a LibTorch archive: a pickled dict, below
  }
  if (is_checkpoint) {
    static constexpr absl::string_view kModel = "model.";
    for (const std::string& key : archive.keys()) {
      if (!absl::StartsWith(key, kModel)) continue;
      torch::Tensor tensor;
      if (!archive.try_read(key, tensor) && !archive.try_read(key, tensor, /*is_buffer=*/true)) {
        continue;
      }
      tensors[key.substr(kModel.size())] = tensor;
    }
    return tensors;
  }
  absl::StatusOr<std::map<std::string, torch::Tensor>> dict = ReadPickledStateDict(path);
  TORCH_CHECK(dict.ok(), std::string(dict.status().message()));
  tensors = *std::move(dict);
  return tensors;
}

}  // namespace

TrainingProgress NewTrainingProgress(const std::string& recipe_text) {
  TrainingProgress progress;
  progress.set_format_version(kCheckpointFormatVersion);
  progress.set_best_top1(-1.0);
  progress.set_best_epoch(-1);
  progress.set_recipe_text(recipe_text);
  return progress;
}

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, const TrainingProgress& p) {
  TrainingProgress progress = p;
  progress.set_format_version(kCheckpointFormatVersion);
  return WriteFileAtomicallyWith(path, [&](const std::string& tmp) {
    return TorchCall(absl::StrCat("writing checkpoint ", tmp), [&] {
      torch::serialize::OutputArchive archive;
      for (const auto& item : model.named_parameters(/*recurse=*/true)) {
        archive.write("model." + item.key(), item.value().detach().cpu());
      }
      for (const auto& item : model.named_buffers(/*recurse=*/true)) {
        archive.write("model." + item.key(), item.value().detach().cpu(), /*is_buffer=*/true);
      }
      torch::serialize::OutputArchive optimizer_archive;
      optimizer.save(optimizer_archive);
      archive.write("optimizer", optimizer_archive);
      // The version stays a plain value so that any build can say which format it found.
      archive.write("meta.format_version", c10::IValue(int64_t{kCheckpointFormatVersion}));
      archive.write("meta.progress", c10::IValue(ToTextProto(progress)));
      archive.write("meta.cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
      archive.save_to(tmp);
    });
  });
}

absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, TrainingProgress* p) {
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", path, " does not exist"));
  }
  int64_t version = 0;
  torch::serialize::InputArchive archive;
  absl::Status status = TorchCall("reading", [&] {
    archive.load_from(path);
    c10::IValue value;
    archive.read("meta.format_version", value);
    version = value.toInt();
  });
  if (status.ok() &&
      (version < kOldestReadableCheckpointFormat || version > kCheckpointFormatVersion)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", path, " was written by format ", version, "; this build reads formats ",
        kOldestReadableCheckpointFormat, " to ", kCheckpointFormatVersion,
        version > kCheckpointFormatVersion ? " (resume it with the newer build that wrote it)"
                                           : ""));
  }
  if (status.ok()) {
    status = TorchCall("reading", [&] {
      ReadModel(archive, model);
      torch::serialize::InputArchive optimizer_archive;
      archive.read("optimizer", optimizer_archive);
      optimizer.load(optimizer_archive);
      TrainingProgress progress;
      if (version == 1) {
        ReadFormat1Progress(archive, &progress);
      } else {
        c10::IValue value;
        archive.read("meta.progress", value);
        TORCH_CHECK(google::protobuf::TextFormat::ParseFromString(value.toStringRef(), &progress),
                    "meta.progress is not a pact.train.TrainingProgress");
      }
      progress.set_format_version(kCheckpointFormatVersion);
      torch::Tensor rng;
      archive.read("meta.cpu_rng_state", rng);
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(rng);
      *p = std::move(progress);
    });
  }
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path,
                     " is unreadable or does not match this recipe's model: ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status SaveStateDict(const std::string& path, torch::nn::Module& model) {
  PACT_ASSIGN_OR_RETURN(std::vector<char> bytes, TorchCall("pickling the state_dict", [&] {
                          c10::Dict<std::string, at::Tensor> dict;
                          for (const auto& item : model.named_parameters(/*recurse=*/true)) {
                            dict.insert(item.key(), item.value().detach().cpu());
                          }
                          for (const auto& item : model.named_buffers(/*recurse=*/true)) {
                            dict.insert(item.key(), item.value().detach().cpu());
                          }
                          return torch::pickle_save(c10::IValue(dict));
                        }));
  return WriteFileAtomically(path, absl::string_view(bytes.data(), bytes.size()));
}

}  // namespace pact::train

namespace pact::train {

absl::StatusOr<InitReport> LoadMatchingTensors(const std::string& path, torch::nn::Module& model) {
  InitReport report;
  report.source = IsDirectory(path) ? JoinPath(path, "checkpoints/last.pt") : path;
  if (!PathExists(report.source)) {
    return absl::NotFoundError(absl::StrCat(
        report.source, " does not exist",
        IsDirectory(path) ? " (a run folder is read through its checkpoints/last.pt)" : ""));
  }
  std::map<std::string, torch::Tensor> source;
  const absl::Status read = TorchCall("reading", [&] { source = ReadNamedTensors(report.source); });
  if (!read.ok()) {
    return absl::DataLossError(
        absl::StrCat(report.source, " is not a checkpoint or a state dict: ", read.message()));
  }
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (model tensor, source)
  std::vector<std::string> mismatches;
  std::set<std::string> seen;
  const auto match = [&](const std::string& name, const torch::Tensor& target) {
    seen.insert(name);
    auto it = source.find(name);
    if (it == source.end()) {
      report.missing.push_back(name);
      return;
    }
    if (it->second.sizes() != target.sizes()) {
      mismatches.push_back(absl::StrCat(name, " is ", ShapeString(it->second.sizes()),
                                        " there but ", ShapeString(target.sizes()),
                                        " in this model"));
      return;
    }
    copies.emplace_back(target, it->second);
    report.loaded.push_back(name);
  };
  for (const auto& item : model.named_parameters(/*recurse=*/true)) match(item.key(), item.value());
  for (const auto& item : model.named_buffers(/*recurse=*/true)) match(item.key(), item.value());
  if (!mismatches.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(report.source, ": ", mismatches.size(),
                                                   " tensor", mismatches.size() == 1 ? "" : "s",
                                                   " of another shape (the recipe builds "
                                                   "another architecture?): ",
                                                   absl::StrJoin(mismatches, "; ")));
  }
  for (const auto& [name, tensor] : source) {
    if (seen.count(name) == 0) report.unexpected.push_back(name);
  }
  PACT_RETURN_IF_ERROR(TorchCall("copying the tensors", [&] {
    torch::NoGradGuard no_grad;
    for (auto& [target, value] : copies) target.copy_(value);
  }));
  return report;
}

}  // namespace pact::train
