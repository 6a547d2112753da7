// Training checkpoints: model, optimizer, progress (a TrainingProgress message), RNG state and
// the resolved recipe in one LibTorch archive, written atomically (pact/core/file.h), so an
// interrupted write never replaces a good checkpoint. Also a Python-readable state_dict
// (torch.load gives a dict of tensors named like the module tree, e.g. "layer1.0.conv1.weight").
#ifndef PACT_TRAIN_CHECKPOINT_H_
#define PACT_TRAIN_CHECKPOINT_H_

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pact/train/run_state.pb.h"

namespace pact::train {

// The format SaveCheckpoint writes. Format 1 kept the progress as ten loose "meta.*" values;
// format 2 keeps it as one TrainingProgress message. LoadCheckpoint reads both.
inline constexpr int kCheckpointFormatVersion = 2;
inline constexpr int kOldestReadableCheckpointFormat = 1;

// A fresh run's progress (at epoch 0, no best yet), stamped with kCheckpointFormatVersion.
TrainingProgress NewTrainingProgress(const std::string& recipe_text);

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, const TrainingProgress& progress);

// Restores into an already-built model and optimizer of the same recipe. NotFound when the file
// is missing, FailedPrecondition ("written by format N, this build reads 1 to M") for a format
// this build cannot read, DataLoss when it is unreadable or does not match the model.
absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, TrainingProgress* progress);

// Parameters and buffers as a pickled dict (what Python's torch.load reads as a state_dict).
absl::Status SaveStateDict(const std::string& path, torch::nn::Module& model);

// What LoadMatchingTensors did, by tensor name (module paths, "layer1.0.conv1.weight").
struct InitReport {
  std::string source;  // the file read
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // in the model, not in the file: kept as initialized
  std::vector<std::string> unexpected;  // in the file, not in the model: ignored
};

// Initializes `model` from the tensors of `path` that it has by name (fine-tuning, e.g. a
// quantized model from a full-precision run): a `*_state_dict.pt` (or Python's
// torch.save(model.state_dict())), a checkpoint (`last.pt`, `best.pt`), or a run folder (its
// checkpoints/last.pt). Only tensors move: no optimizer state, no progress. NotFound for a
// missing file; InvalidArgument naming every tensor whose shape differs (then nothing is
// copied); DataLoss for a file that is neither format.
absl::StatusOr<InitReport> LoadMatchingTensors(const std::string& path, torch::nn::Module& model);

}  // namespace pact::train

#endif  // PACT_TRAIN_CHECKPOINT_H_
