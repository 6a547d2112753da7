#include "pact/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "pact/core/file.h"
#include "pact/core/torch_status.h"

namespace pact::train {
namespace {

constexpr int64_t kFormatVersion = 1;

absl::Status RenameInto(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::PermissionDeniedError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, const TrainingProgress& p) {
  const std::string tmp = path + ".tmp";
  absl::Status status = TorchCall(absl::StrCat("writing checkpoint ", tmp), [&] {
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
    archive.write("meta.format_version", c10::IValue(kFormatVersion));
    archive.write("meta.epoch", c10::IValue(p.epoch));
    archive.write("meta.step_in_epoch", c10::IValue(p.step_in_epoch));
    archive.write("meta.global_step", c10::IValue(p.global_step));
    archive.write("meta.best_top1", c10::IValue(p.best_top1));
    archive.write("meta.best_epoch", c10::IValue(p.best_epoch));
    archive.write("meta.partial_loss_sum", c10::IValue(p.partial_loss_sum));
    archive.write("meta.partial_correct", c10::IValue(p.partial_correct));
    archive.write("meta.partial_seen", c10::IValue(p.partial_seen));
    archive.write("meta.partial_seconds", c10::IValue(p.partial_seconds));
    archive.write("meta.recipe", c10::IValue(p.recipe_text));
    archive.write("meta.cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
    archive.save_to(tmp);
  });
  if (!status.ok()) {
    std::remove(tmp.c_str());
    return status;
  }
  return RenameInto(tmp, path);
}

absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, TrainingProgress* p) {
  if (!std::ifstream(path).good()) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", path, " does not exist"));
  }
  absl::Status status = TorchCall("reading", [&] {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue value;
    archive.read("meta.format_version", value);
    TORCH_CHECK(value.toInt() == kFormatVersion, "unsupported checkpoint format ", value.toInt());
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
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    archive.read("meta.epoch", value);
    p->epoch = value.toInt();
    archive.read("meta.step_in_epoch", value);
    p->step_in_epoch = value.toInt();
    archive.read("meta.global_step", value);
    p->global_step = value.toInt();
    archive.read("meta.best_top1", value);
    p->best_top1 = value.toDouble();
    archive.read("meta.best_epoch", value);
    p->best_epoch = value.toInt();
    archive.read("meta.partial_loss_sum", value);
    p->partial_loss_sum = value.toDouble();
    archive.read("meta.partial_correct", value);
    p->partial_correct = value.toInt();
    archive.read("meta.partial_seen", value);
    p->partial_seen = value.toInt();
    archive.read("meta.partial_seconds", value);
    p->partial_seconds = value.toDouble();
    archive.read("meta.recipe", value);
    p->recipe_text = value.toStringRef();
    torch::Tensor rng;
    archive.read("meta.cpu_rng_state", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
  });
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path,
                                            " is unreadable or does not match this recipe's "
                                            "model: ",
                                            status.message()));
  }
  return absl::OkStatus();
}

absl::Status SaveStateDict(const std::string& path, torch::nn::Module& model) {
  auto bytes = TorchCall("pickling the state_dict", [&] {
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& item : model.named_parameters(/*recurse=*/true)) {
      dict.insert(item.key(), item.value().detach().cpu());
    }
    for (const auto& item : model.named_buffers(/*recurse=*/true)) {
      dict.insert(item.key(), item.value().detach().cpu());
    }
    return torch::pickle_save(c10::IValue(dict));
  });
  if (!bytes.ok()) return bytes.status();
  return WriteFileAtomically(path, absl::string_view(bytes->data(), bytes->size()));
}

}  // namespace pact::train
