#include "pact/train/run_outputs.h"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"
#include "pact/train/checkpoint.h"
#include "pact/train/metrics_writer.h"
#include "pact/train/plot.h"
#include "pact/train/tensorboard_writer.h"

namespace pact::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCheckpointNames[] = {"last", "best"};

// The folder `path` names with symbolic links and "." resolved, for comparing two spellings.
std::string Canonical(const std::string& path) {
  std::error_code error;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(path, error), error);
  return error ? path : canonical.string();
}

std::string ResumedCheckpointFolder(const std::string& resume) {
  if (IsDirectory(resume)) return Canonical(JoinPath(resume, "checkpoints"));
  return Canonical(fs::path(resume).parent_path().string());
}

class FolderOutputs : public RunOutputs {
 public:
  explicit FolderOutputs(Options options) : options_(std::move(options)) {}

  absl::Status Open() {
    const std::string& dir = options_.output_dir;
    PACT_RETURN_IF_ERROR(MakeDirs(JoinPath(dir, "checkpoints")));
    if (options_.overwrite) PACT_RETURN_IF_ERROR(RemoveCheckpoints());
    PACT_RETURN_IF_ERROR(WriteFileAtomically(
        JoinPath(dir, "recipe.pbtxt"),
        absl::StrCat("# proto-file: pact/proto/recipe.proto\n# proto-message: pact.Recipe\n"
                     "# The resolved recipe of this run (flags and overrides applied).\n",
                     options_.recipe_text)));
    PACT_RETURN_IF_ERROR(metrics_.Open(dir, options_.alpha_names, options_.first_epoch));
    history_ = metrics_.earlier();
    return tensorboard_.Open(dir, options_.first_epoch + 1);
  }

  absl::Status WriteEpoch(const EpochMetrics& m) override {
    PACT_RETURN_IF_ERROR(metrics_.Write(m));
    const int64_t step = m.epoch() + 1;
    for (const auto& [tag, value] : TensorBoardScalars(m)) {
      PACT_RETURN_IF_ERROR(tensorboard_.AddScalar(tag, value, step));
    }
    PACT_RETURN_IF_ERROR(tensorboard_.Flush());
    history_.push_back(m);
    return WriteCurvesPng(JoinPath(options_.output_dir, "curves.png"), history_);
  }

  absl::Status SaveCheckpoint(const std::string& name, torch::nn::Module& model,
                              torch::optim::Optimizer& optimizer,
                              const TrainingProgress& progress) override {
    PACT_RETURN_IF_ERROR(train::SaveCheckpoint(CheckpointPath(options_.output_dir, name), model,
                                               optimizer, progress));
    return SaveStateDict(CheckpointPath(options_.output_dir, name + "_state_dict"), model);
  }

 private:
  absl::Status RemoveCheckpoints() {
    for (const char* name : kCheckpointNames) {
      for (const std::string& file :
           {CheckpointPath(options_.output_dir, name),
            CheckpointPath(options_.output_dir, absl::StrCat(name, "_state_dict"))}) {
        if (!PathExists(file)) continue;
        if (std::remove(file.c_str()) != 0) {
          return absl::PermissionDeniedError(absl::StrCat("--overwrite: cannot remove ", file));
        }
        LOG(INFO) << "--overwrite: removed " << file;
      }
    }
    return absl::OkStatus();
  }

  const Options options_;
  MetricsWriter metrics_;
  TensorBoardWriter tensorboard_;
  std::vector<EpochMetrics> history_;
};

class DiscardedOutputs : public RunOutputs {
 public:
  absl::Status WriteEpoch(const EpochMetrics&) override { return absl::OkStatus(); }
  absl::Status SaveCheckpoint(const std::string&, torch::nn::Module&, torch::optim::Optimizer&,
                              const TrainingProgress&) override {
    return absl::OkStatus();
  }
};

}  // namespace

std::string CheckpointPath(const std::string& output_dir, const std::string& name) {
  return JoinPath(JoinPath(output_dir, "checkpoints"), name + ".pt");
}

absl::Status CheckRunFolder(const std::string& output_dir, const std::string& resume,
                            bool overwrite) {
  if (!resume.empty() && overwrite) {
    return absl::InvalidArgumentError(
        "--resume continues a run and --overwrite starts one over: give only one of them");
  }
  const std::string last = CheckpointPath(output_dir, "last");
  if (overwrite || !PathExists(last)) return absl::OkStatus();
  if (!resume.empty() &&
      ResumedCheckpointFolder(resume) == Canonical(JoinPath(output_dir, "checkpoints"))) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat(output_dir, " already holds a run (", last,
                   "); nothing was changed. Continue it with --resume=", output_dir,
                   ", or start it over with --overwrite (removes its checkpoints and metrics), or "
                   "pick another --output-dir"));
}

absl::StatusOr<std::unique_ptr<RunOutputs>> RunOutputs::OpenFolder(const Options& options) {
  auto outputs = std::make_unique<FolderOutputs>(options);
  PACT_RETURN_IF_ERROR(outputs->Open());
  return std::unique_ptr<RunOutputs>(std::move(outputs));
}

std::unique_ptr<RunOutputs> RunOutputs::Discard() { return std::make_unique<DiscardedOutputs>(); }

}  // namespace pact::train
