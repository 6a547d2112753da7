// Everything a run writes into its output folder, behind one interface: the resolved recipe,
// metrics.jsonl/csv, TensorBoard events, curves.png and the checkpoints. Rank 0 of a
// data-parallel job gets the folder's writer, every other rank one that writes nothing, so the
// trainer never asks "am I the writer?".
//
// A folder that already holds a run (checkpoints/last.pt) is never clobbered: CheckRunFolder
// refuses, naming --resume and --overwrite, before anything in it changes.
#ifndef PACT_TRAIN_RUN_OUTPUTS_H_
#define PACT_TRAIN_RUN_OUTPUTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pact/train/run_state.pb.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn
namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace pact::train {

// <output_dir>/checkpoints/<name>.pt
std::string CheckpointPath(const std::string& output_dir, const std::string& name);

// OK when training into `output_dir` loses nothing: it holds no checkpoints/last.pt, or
// `resume` names a checkpoint of that same folder, or `overwrite` starts it over.
// FailedPrecondition naming both ways out otherwise; InvalidArgument for `resume` together with
// `overwrite`. Reads only.
absl::Status CheckRunFolder(const std::string& output_dir, const std::string& resume,
                            bool overwrite);

class RunOutputs {
 public:
  struct Options {
    std::string output_dir;
    // The resolved recipe (text format), written to recipe.pbtxt.
    std::string recipe_text;
    // The PACT alphas' module paths: the CSV's alpha columns, in this order.
    std::vector<std::string> alpha_names;
    // The epoch training starts at (> 0 after a resume): metrics rows of epochs >= it are
    // dropped and TensorBoard purges its steps >= first_epoch + 1.
    int first_epoch = 0;
    // Start the folder over: removes the checkpoints a previous run left there.
    bool overwrite = false;
  };

  // Creates the folder and writes recipe.pbtxt, opens the metrics files and a TensorBoard
  // event file. Call CheckRunFolder first.
  static absl::StatusOr<std::unique_ptr<RunOutputs>> OpenFolder(const Options& options);
  // Writes nothing (the ranks other than 0 of a data-parallel job).
  static std::unique_ptr<RunOutputs> Discard();

  virtual ~RunOutputs() = default;
  // The epoch's metrics rows and TensorBoard scalars (step = epoch + 1), and curves.png of the
  // whole run.
  virtual absl::Status WriteEpoch(const EpochMetrics& metrics) = 0;
  // checkpoints/<name>.pt and checkpoints/<name>_state_dict.pt, atomically.
  virtual absl::Status SaveCheckpoint(const std::string& name, torch::nn::Module& model,
                                      torch::optim::Optimizer& optimizer,
                                      const TrainingProgress& progress) = 0;
};

}  // namespace pact::train

#endif  // PACT_TRAIN_RUN_OUTPUTS_H_
