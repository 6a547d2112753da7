// The generic trainer: runs whatever a validated Recipe names.
//
// Per epoch: quantization on/off (warm-up, paper Option B), LR from the schedule, one pass over
// the shuffled training set (cross-entropy + lambda_alpha/2 * sum(alpha^2)), evaluation
// (loss, top-1, top-5, BN in eval mode), metrics rows, and checkpoints `last` (+ `best`).
// A stop request (SIGINT/SIGTERM) finishes the current step, checkpoints and returns; --resume
// continues bit-identically (CPU, same thread count).
#ifndef PACT_TRAIN_TRAINER_H_
#define PACT_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pact/dist/collectives.h"
#include "pact/proto/recipe.pb.h"
#include "pact/recipe/recipe.h"
#include "pact/train/run_state.pb.h"

namespace pact::train {

struct TrainerOptions {
  // Where outputs go (created if missing). A folder holding a run (checkpoints/last.pt) needs
  // `resume` or `overwrite` (CheckRunFolder in run_outputs.h).
  std::string output_dir;
  // Checkpoint file or output folder (uses its checkpoints/last.pt) to continue; empty = fresh.
  std::string resume;
  // Fine-tuning: a fresh run (epoch 0, new optimizer) whose model starts from the tensors of
  // this state dict, checkpoint or run folder that it has by name (LoadMatchingTensors in
  // checkpoint.h); what was loaded, missing and unexpected is logged. Not with `resume`.
  std::string init_from;
  // Build the model (and load `resume` or `init_from`) and the evaluation data only, for
  // Evaluate(); nothing is written and the output folder is not needed.
  bool evaluate_only = false;
  // Start over in a folder that holds a run: its checkpoints are removed, its metrics rewritten.
  bool overwrite = false;
  // Stop (checkpoint and return kStopped, as on SIGTERM) after this many training steps in
  // this invocation; 0 = no limit. For smoke runs and tests of the resume path.
  int64_t max_steps = 0;
  // When set, progress lines that a terminal shows as a bar are also handed to it every
  // train.log_every_steps steps (tools/train sends them to the run's log file only).
  std::function<void(const std::string&)> log_to_file;
  // This process's data-parallel job (pact/dist); null = one process (dist::LocalCollectives).
  // Every rank runs the same recipe and rank 0 alone writes outputs. train.batch_size stays
  // the global batch: each rank trains on batch_size / size() examples per step.
  std::shared_ptr<dist::Collectives> collectives;
};

enum class RunOutcome { kFinished, kStopped };

class Trainer {
 public:
  // Builds every component and loads the data.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const ValidatedRecipe& recipe,
                                                         const TrainerOptions& options);
  virtual ~Trainer() = default;

  // Trains to train.epochs, or until RequestStop().
  virtual absl::StatusOr<RunOutcome> Run() = 0;
  // Evaluates the model as it stands (after a resume: exactly the evaluation that run made at
  // the end of the checkpoint's epoch, quantization on or off as then) on the eval data, with
  // a progress line; fills eval_loss/top1/top5 and the epoch evaluated.
  virtual absl::StatusOr<EpochMetrics> Evaluate() = 0;
  // The epochs this invocation trained.
  virtual const std::vector<EpochMetrics>& history() const = 0;

  // Async-signal-safe: asks a running trainer to stop after its current step.
  static void RequestStop();
  static bool StopRequested();
};

// Process-wide settings shared by every training binary (//tools:train,
// //tools:train_benchmark): glibc malloc keeps large blocks in the heap instead of mmap'ing and
// unmapping them every step. Call once at the start of main(), before any allocation of note.
void TuneProcessForTraining();

// Builds every component without loading data (datasets are only checked to be linked), runs
// one forward pass on zeros of the model's input shape and returns the per-layer summary.
absl::StatusOr<std::string> DryRun(const ValidatedRecipe& recipe);

}  // namespace pact::train

#endif  // PACT_TRAIN_TRAINER_H_
