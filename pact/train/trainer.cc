#include "pact/train/trainer.h"

#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "datasets/loader.h"
#include "glog/logging.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/core/torch_status.h"
#include "pact/dist/data_parallel.h"
#include "pact/train/checkpoint.h"
#include "pact/train/components.h"
#include "pact/train/metrics_writer.h"
#include "pact/train/plot.h"
#include "pact/train/tensorboard_writer.h"

namespace pact::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop_requested{false};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create output folder ", dir, ": ", error.message()));
  }
  return absl::OkStatus();
}

struct EvalResult {
  double loss = 0.0;
  double top1 = 0.0;
  double top5 = 0.0;
};

class TrainerImpl : public Trainer {
 public:
  TrainerImpl(Recipe recipe, TrainerOptions options)
      : recipe_(std::move(recipe)), options_(std::move(options)) {}

  absl::Status Init();
  absl::StatusOr<RunOutcome> Run() override;
  const std::vector<EpochMetrics>& history() const override { return history_; }

 private:
  absl::StatusOr<EvalResult> Evaluate();
  absl::Status Checkpoint(const std::string& name);
  absl::Status Resume();
  // metrics.csv/jsonl rows, TensorBoard scalars and curves.png for a finished epoch.
  absl::Status WriteEpochOutputs(const EpochMetrics& m);
  void Progress(int epoch, int64_t step, int64_t steps, double seconds, int64_t seen,
                double loss_sum, int64_t correct);
  std::vector<double> AlphaValues() const;

  Recipe recipe_;
  TrainerOptions options_;
  Components c_;
  std::shared_ptr<const datasets::Dataset> train_set_;
  std::shared_ptr<const datasets::Dataset> eval_set_;
  std::unique_ptr<datasets::DataLoader> train_loader_;
  std::unique_ptr<datasets::DataLoader> eval_loader_;
  MetricsWriter metrics_;
  TensorBoardWriter tensorboard_;
  TrainingProgress progress_;
  double lambda_alpha_ = 0.0;
  std::string checkpoint_dir_;
  std::vector<EpochMetrics> history_;
  // Data-parallel state; null for one process. Only the writer (rank 0) writes outputs.
  std::unique_ptr<dist::DataParallel> dp_;
  bool writer_ = true;
  bool tty_ = false;
  int64_t steps_this_run_ = 0;
  bool stop_ = false;  // max_steps reached
};

absl::Status TrainerImpl::Init() {
  const std::shared_ptr<dist::ProcessGroup>& group = options_.process_group;
  const int world = group != nullptr ? group->size() : 1;
  const int rank = group != nullptr ? group->rank() : 0;
  writer_ = rank == 0;
  tty_ = writer_ && isatty(STDERR_FILENO) == 1;
  if (recipe_.train().batch_size() % world != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.batch_size: ", recipe_.train().batch_size(),
                     " (the global batch) must divide "
                     "evenly over ",
                     world, " processes; pick a multiple of ", world));
  }
  at::set_num_threads(ResolveThreads(recipe_.train().threads()));
  checkpoint_dir_ = options_.output_dir + "/checkpoints";
  if (writer_) {
    PACT_RETURN_IF_ERROR(MakeDirs(options_.output_dir));
    PACT_RETURN_IF_ERROR(MakeDirs(checkpoint_dir_));
  }
  PACT_ASSIGN_OR_RETURN(c_, BuildComponents(recipe_));
  if (group != nullptr) {
    // Rank 0's initial parameters and buffers everywhere, then gradient averaging in TrainStep.
    PACT_ASSIGN_OR_RETURN(dp_, dist::DataParallel::Create(group, c_.model, options_.bucket_bytes));
    c_.after_backward = [dp = dp_.get()] { return dp->AverageGradients(); };
  }
  auto train_set = BuildDataset(recipe_.train_data());
  if (!train_set.ok()) return internal::WithContext(train_set.status(), "train_data");
  train_set_ = *std::move(train_set);
  auto eval_set = BuildDataset(recipe_.eval_data());
  if (!eval_set.ok()) return internal::WithContext(eval_set.status(), "eval_data");
  eval_set_ = *std::move(eval_set);
  PACT_RETURN_IF_ERROR(CheckDatasetFitsModel(*train_set_, *c_.model, "train_data"));
  PACT_RETURN_IF_ERROR(CheckDatasetFitsModel(*eval_set_, *c_.model, "eval_data"));
  LOG(INFO) << "train data: " << train_set_->Describe();
  LOG(INFO) << "eval data: " << eval_set_->Describe();
  // Each rank reads its own shard of the epoch's permutation (DistributedSampler's split):
  // padded for training so every rank takes the same steps, exact for evaluation.
  datasets::LoaderOptions train_options = datasets::LoaderOptions::Train(
      recipe_.train().batch_size() / world, recipe_.train_data().workers(), recipe_.seed());
  train_options.num_shards = world;
  train_options.shard_index = rank;
  PACT_ASSIGN_OR_RETURN(train_loader_, datasets::DataLoader::Create(train_set_, train_options));
  datasets::LoaderOptions eval_options = datasets::LoaderOptions::Eval(
      recipe_.train().eval_batch_size(), recipe_.eval_data().workers());
  eval_options.num_shards = world;
  eval_options.shard_index = rank;
  eval_options.pad_shards = false;
  PACT_ASSIGN_OR_RETURN(eval_loader_, datasets::DataLoader::Create(eval_set_, eval_options));
  lambda_alpha_ = recipe_.quantization().has_lambda_alpha() ? recipe_.quantization().lambda_alpha()
                                                            : c_.optimizer->weight_decay;
  progress_.recipe_text = ToTextProto(recipe_);
  if (!options_.resume.empty()) PACT_RETURN_IF_ERROR(Resume());
  if (!writer_) return absl::OkStatus();
  PACT_RETURN_IF_ERROR(WriteFileAtomically(
      options_.output_dir + "/recipe.pbtxt",
      absl::StrCat("# proto-file: pact/proto/recipe.proto\n# proto-message: pact.Recipe\n"
                   "# The resolved recipe of this run (flags and overrides applied).\n",
                   progress_.recipe_text)));
  PACT_RETURN_IF_ERROR(
      metrics_.Open(options_.output_dir, c_.alpha_names, static_cast<int>(progress_.epoch)));
  return tensorboard_.Open(options_.output_dir);
}

absl::Status TrainerImpl::WriteEpochOutputs(const EpochMetrics& m) {
  if (!writer_) return absl::OkStatus();
  PACT_RETURN_IF_ERROR(metrics_.Write(m));
  const int64_t step = m.epoch + 1;
  PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("train/lr", m.lr, step));
  PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("train/loss", m.train_loss, step));
  PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("train/top1", m.train_top1, step));
  PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("train/images_per_s", m.train_images_per_s, step));
  if (m.evaluated) {
    PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("eval/loss", m.eval_loss, step));
    PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("eval/top1", m.eval_top1, step));
    PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("eval/top5", m.eval_top5, step));
  }
  for (size_t i = 0; i < m.alphas.size() && i < c_.alpha_names.size(); ++i) {
    PACT_RETURN_IF_ERROR(tensorboard_.AddScalar("alpha/" + c_.alpha_names[i], m.alphas[i], step));
  }
  PACT_RETURN_IF_ERROR(tensorboard_.Flush());
  std::vector<EpochMetrics> all = metrics_.earlier();
  all.insert(all.end(), history_.begin(), history_.end());
  return WriteCurvesPng(options_.output_dir + "/curves.png", all);
}

absl::Status TrainerImpl::Resume() {
  std::string path = options_.resume;
  if (fs::is_directory(path)) path += "/checkpoints/last.pt";
  const std::string recipe_text = progress_.recipe_text;
  PACT_RETURN_IF_ERROR(LoadCheckpoint(path, *c_.model, *c_.optimizer->torch_optimizer, &progress_));
  if (progress_.recipe_text != recipe_text) {
    LOG(WARNING) << "the recipe differs from the one " << path
                 << " was trained with; continuing with the current recipe";
    progress_.recipe_text = recipe_text;
  }
  LOG(INFO) << "resumed from " << path << " at epoch " << progress_.epoch << ", step "
            << progress_.step_in_epoch;
  if (dp_ != nullptr) {
    // Every rank reads the checkpoint itself (model, optimizer state, progress); a rank that
    // found another file (a stale copy on another machine) must not train on silently.
    std::vector<double> steps = {static_cast<double>(progress_.global_step), 1.0};
    PACT_RETURN_IF_ERROR(dp_->AllReduceSum(&steps, "allreduce of the resumed step"));
    if (steps[0] != steps[1] * progress_.global_step) {
      return absl::FailedPreconditionError(
          absl::StrCat("--resume: ", path, " is at global step ", progress_.global_step,
                       " on this rank but not on every rank; give every rank the same checkpoint"));
    }
  }
  return absl::OkStatus();
}

std::vector<double> TrainerImpl::AlphaValues() const {
  std::vector<double> values;
  for (const auto& alpha : c_.alphas) values.push_back(alpha.item<double>());
  return values;
}

absl::Status TrainerImpl::Checkpoint(const std::string& name) {
  if (!writer_) return absl::OkStatus();
  const std::string path = absl::StrCat(checkpoint_dir_, "/", name, ".pt");
  PACT_RETURN_IF_ERROR(SaveCheckpoint(path, *c_.model, *c_.optimizer->torch_optimizer, progress_));
  return SaveStateDict(absl::StrCat(checkpoint_dir_, "/", name, "_state_dict.pt"), *c_.model);
}

void TrainerImpl::Progress(int epoch, int64_t step, int64_t steps, double seconds, int64_t seen,
                           double loss_sum, int64_t correct) {
  const double rate = seconds > 0 ? seen / seconds : 0.0;
  const double eta = rate > 0 ? (steps - step) * (seen / std::max<int64_t>(step, 1)) / rate : 0.0;
  const std::string line = absl::StrFormat(
      "epoch %d/%d step %d/%d loss %.4f top1 %.2f%% %.0f img/s ETA %.0fs", epoch + 1,
      recipe_.train().epochs(), step, steps, loss_sum / std::max<int64_t>(seen, 1),
      100.0 * correct / std::max<int64_t>(seen, 1), rate, eta);
  if (tty_) {
    const int width = 24;
    const int filled = static_cast<int>(width * step / std::max<int64_t>(steps, 1));
    std::fprintf(stderr, "\r[%s%s] %s ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), line.c_str());
    std::fflush(stderr);
  } else if (step % recipe_.train().log_every_steps() == 0) {
    LOG(INFO) << line;
  }
}

absl::StatusOr<EvalResult> TrainerImpl::Evaluate() {
  return TorchCall("evaluating", [&]() -> absl::StatusOr<EvalResult> {
    // BatchNorm statistics are per rank while training; evaluate everywhere with rank 0's.
    if (dp_ != nullptr) PACT_RETURN_IF_ERROR(dp_->BroadcastBuffers());
    c_.model->eval();
    torch::NoGradGuard no_grad;
    EvalSums sums;
    eval_loader_->StartEpoch(0);
    datasets::Batch batch;
    while (eval_loader_->Next(&batch)) {
      EvalStep(*c_.model, c_.device, batch.images, batch.labels, sums);
    }
    c_.model->train();
    if (dp_ != nullptr) {  // each rank evaluated its own shard
      std::vector<double> all = {sums.loss_sum, static_cast<double>(sums.top1),
                                 static_cast<double>(sums.top5), static_cast<double>(sums.seen)};
      PACT_RETURN_IF_ERROR(dp_->AllReduceSum(&all, "allreduce of evaluation sums"));
      sums.loss_sum = all[0];
      sums.top1 = std::llround(all[1]);
      sums.top5 = std::llround(all[2]);
      sums.seen = std::llround(all[3]);
    }
    EvalResult result;
    const int64_t seen = std::max<int64_t>(sums.seen, 1);
    result.loss = sums.loss_sum / seen;
    result.top1 = 100.0 * sums.top1 / seen;
    result.top5 = 100.0 * sums.top5 / seen;
    return result;
  });
}

absl::StatusOr<RunOutcome> TrainerImpl::Run() {
  const int epochs = recipe_.train().epochs();
  const int warmup = recipe_.quantization().quant_warmup_epochs();
  c_.model->train();
  for (int epoch = static_cast<int>(progress_.epoch); epoch < epochs; ++epoch) {
    progress_.epoch = epoch;
    EpochMetrics m;
    m.epoch = epoch;
    m.quantized = epoch >= warmup;
    c_.layers->control()->set_enabled(m.quantized);
    if (epoch == warmup && warmup > 0)
      LOG(INFO) << "warm-up over: quantization on from epoch " << epoch;
    const double factor = c_.schedule ? c_.schedule->Factor(epoch) : 1.0;
    m.lr = c_.optimizer->base_lr * factor;
    c_.optimizer->SetLearningRate(m.lr);

    const auto start = Clock::now();
    const double earlier_seconds = progress_.partial_seconds;
    train_loader_->StartEpoch(epoch);
    const int64_t steps = train_loader_->num_batches();
    datasets::Batch batch;
    int64_t step = 0;
    // A mid-epoch resume replays the loader to where the checkpoint was taken.
    for (; step < progress_.step_in_epoch && train_loader_->Next(&batch); ++step) {
    }
    while (train_loader_->Next(&batch)) {
      absl::StatusOr<StepResult> result =
          TorchCall("training step", [&]() -> absl::StatusOr<StepResult> {
            absl::StatusOr<StepResult> r = TrainStep(c_, lambda_alpha_, batch.images, batch.labels);
            if (absl::IsDataLoss(r.status())) {
              return absl::DataLossError(
                  absl::StrCat(r.status().message(), " at epoch ", epoch, " step ", step,
                               "; training stopped. The last good checkpoint is ", checkpoint_dir_,
                               "/last.pt: lower the learning rate and resume from it"));
            }
            return r;
          });
      if (!result.ok()) {
        if (tty_) std::fprintf(stderr, "\n");
        return result.status();
      }
      StepResult sums = *result;
      int64_t seen = batch.labels.size(0);
      bool stop_requested = StopRequested();
      if (dp_ != nullptr) {
        // Metrics of the global batch, and one stop decision for all ranks: a signal may reach
        // them at different steps.
        std::vector<double> all = {sums.loss_sum, static_cast<double>(sums.correct),
                                   static_cast<double>(seen), stop_requested ? 1.0 : 0.0};
        absl::Status status = dp_->AllReduceSum(&all, "allreduce of step metrics");
        if (!status.ok()) {
          if (tty_) std::fprintf(stderr, "\n");
          return status;
        }
        sums.loss_sum = all[0];
        sums.correct = std::llround(all[1]);
        seen = std::llround(all[2]);
        stop_requested = all[3] > 0.0;
      }
      ++step;
      ++progress_.global_step;
      progress_.step_in_epoch = step;
      progress_.partial_loss_sum += sums.loss_sum;
      progress_.partial_correct += sums.correct;
      progress_.partial_seen += seen;
      Progress(epoch, step, steps, earlier_seconds + Seconds(start), progress_.partial_seen,
               progress_.partial_loss_sum, progress_.partial_correct);
      ++steps_this_run_;
      if (options_.max_steps > 0 && steps_this_run_ >= options_.max_steps) stop_ = true;
      if ((stop_ || stop_requested) && step < steps) {
        if (tty_) std::fprintf(stderr, "\n");
        progress_.partial_seconds = earlier_seconds + Seconds(start);
        PACT_RETURN_IF_ERROR(Checkpoint("last"));
        LOG(INFO) << "stopped at epoch " << epoch << " step " << step << "; checkpoint "
                  << checkpoint_dir_
                  << "/last.pt. Resume with the same command plus --resume=" << options_.output_dir;
        return RunOutcome::kStopped;
      }
    }
    if (tty_) std::fprintf(stderr, "\n");
    const double train_seconds = earlier_seconds + Seconds(start);
    m.train_loss = progress_.partial_loss_sum / std::max<int64_t>(progress_.partial_seen, 1);
    m.train_top1 = 100.0 * progress_.partial_correct / std::max<int64_t>(progress_.partial_seen, 1);
    m.train_images_per_s = train_seconds > 0 ? progress_.partial_seen / train_seconds : 0.0;

    const bool last_epoch = epoch + 1 == epochs;
    if ((epoch + 1) % recipe_.train().eval_every_epochs() == 0 || last_epoch) {
      PACT_ASSIGN_OR_RETURN(EvalResult eval, Evaluate());
      m.evaluated = true;
      m.eval_loss = eval.loss;
      m.eval_top1 = eval.top1;
      m.eval_top5 = eval.top5;
    }
    m.seconds = earlier_seconds + Seconds(start);
    m.alphas = AlphaValues();
    history_.push_back(m);
    LOG(INFO) << absl::StrFormat(
        "epoch %d/%d lr %.4g%s train loss %.4f top1 %.2f%% | eval loss %s top1 %s top5 %s | "
        "%.1fs %.0f img/s",
        epoch + 1, epochs, m.lr, m.quantized ? "" : " (warm-up, unquantized)", m.train_loss,
        m.train_top1, m.evaluated ? absl::StrFormat("%.4f", m.eval_loss) : "-",
        m.evaluated ? absl::StrFormat("%.2f%%", m.eval_top1) : "-",
        m.evaluated ? absl::StrFormat("%.2f%%", m.eval_top5) : "-", m.seconds,
        m.train_images_per_s);
    PACT_RETURN_IF_ERROR(WriteEpochOutputs(m));

    // The checkpoint describes the start of the next epoch.
    progress_.epoch = epoch + 1;
    progress_.step_in_epoch = 0;
    progress_.partial_loss_sum = 0;
    progress_.partial_correct = 0;
    progress_.partial_seen = 0;
    progress_.partial_seconds = 0;
    const bool best = m.evaluated && m.eval_top1 > progress_.best_top1;
    if (best) {
      progress_.best_top1 = m.eval_top1;
      progress_.best_epoch = epoch;
    }
    bool stopping = stop_ || StopRequested();
    if (dp_ != nullptr) {
      PACT_ASSIGN_OR_RETURN(stopping, dp_->AnyRank(stopping, "stop agreement"));
    }
    if ((epoch + 1) % recipe_.train().checkpoint().every_epochs() == 0 || last_epoch || stopping) {
      PACT_RETURN_IF_ERROR(Checkpoint("last"));
    }
    if (best && recipe_.train().checkpoint().keep_best()) PACT_RETURN_IF_ERROR(Checkpoint("best"));
    if (stopping && !last_epoch) {
      LOG(INFO) << "stopped after epoch " << epoch
                << "; resume with the same command plus --resume=" << options_.output_dir;
      return RunOutcome::kStopped;
    }
  }
  if (progress_.best_epoch >= 0) {
    LOG(INFO) << absl::StrFormat("done: best eval top-1 %.2f%% at epoch %d; outputs in %s",
                                 progress_.best_top1, progress_.best_epoch + 1,
                                 options_.output_dir);
  }
  return RunOutcome::kFinished;
}

}  // namespace

void TuneProcessForTraining() {
  // Large training tensors are freed and re-allocated every step; glibc's defaults return them
  // to the kernel each time (mmap/munmap + page faults: ~40% of a ResNet-20 step here). Keep
  // them in the heap instead, as MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ would.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
  // glibc caps M_MMAP_THRESHOLD at 32 MiB, so blocks above it (AlexNet-BN's 151 MB FC weight,
  // its DoReFa copy and gradients) were still mmap'ed and unmapped every step: ~350k page faults
  // per step, 30% of the AlexNet-BN W4A4 step. With mmap off for malloc (thread arenas still
  // map their own heaps) they are reused from the heap like smaller blocks; peak RSS +15% there.
  mallopt(M_MMAP_MAX, 0);
}

void Trainer::RequestStop() { g_stop_requested.store(true); }
bool Trainer::StopRequested() { return g_stop_requested.load(); }
void Trainer::ClearStopRequest() { g_stop_requested.store(false); }

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const ValidatedRecipe& recipe,
                                                         const TrainerOptions& options) {
  auto trainer = std::make_unique<TrainerImpl>(recipe.proto(), options);
  PACT_RETURN_IF_ERROR(trainer->Init());
  return std::unique_ptr<Trainer>(std::move(trainer));
}

absl::StatusOr<std::string> DryRun(const ValidatedRecipe& recipe) {
  PACT_ASSIGN_OR_RETURN(Components c, BuildComponents(*recipe));
  for (const auto* data : {&recipe->train_data(), &recipe->eval_data()}) {
    PACT_RETURN_IF_ERROR(datasets::GetDatasetRegistry().CheckName(SelectedName(*data)));
  }
  std::vector<int64_t> shape = {1};
  for (int64_t d : c.model->input_shape()) shape.push_back(d);
  PACT_RETURN_IF_ERROR(TorchCall("dry-run forward", [&] {
    torch::NoGradGuard no_grad;
    c.model->eval();
    c.model->forward(torch::zeros(shape, torch::TensorOptions().device(c.device)));
  }));
  return models::FormatSummary(*c.model);
}

}  // namespace pact::train
