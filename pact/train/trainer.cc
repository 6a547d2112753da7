#include "pact/train/trainer.h"

#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "datasets/loader.h"
#include "glog/logging.h"
#include "pact/core/file.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/core/torch_status.h"
#include "pact/train/checkpoint.h"
#include "pact/train/components.h"
#include "pact/train/progress.h"
#include "pact/train/run_outputs.h"

namespace pact::train {
namespace {

std::atomic<bool> g_stop_requested{false};

// What one step contributes, summed over ranks.
struct StepSums {
  double loss_sum = 0.0;
  int64_t correct = 0;
  int64_t seen = 0;
  bool stop_requested = false;  // on any rank
};

class TrainerImpl : public Trainer {
 public:
  TrainerImpl(const ValidatedRecipe& recipe, TrainerOptions options)
      : recipe_(recipe.proto()), locations_(recipe.locations()), options_(std::move(options)) {}

  absl::Status Init();
  absl::StatusOr<RunOutcome> Run() override;
  absl::StatusOr<EpochMetrics> Evaluate() override;
  const std::vector<EpochMetrics>& history() const override { return history_; }

 private:
  absl::Status LoadData();
  absl::Status Resume();
  absl::Status InitFrom();
  // Quantization on or off and the LR of `epoch`; the metrics row to fill.
  EpochMetrics BeginEpoch(int epoch);
  // The epoch's training steps (from progress_.step_in_epoch); true when it stopped midway
  // (checkpointed), false when the epoch is complete.
  absl::StatusOr<bool> TrainEpoch(int epoch, EpochMetrics* m);
  absl::StatusOr<StepSums> Step(int epoch, int64_t step, const datasets::Batch& batch);
  // Evaluation, outputs and checkpoints of a complete epoch; true when the run stops here.
  absl::StatusOr<bool> EndEpoch(int epoch, EpochMetrics m);
  absl::Status EvaluateInto(EpochMetrics* m);
  absl::Status Checkpoint(const std::string& name);
  // `data_wait`: the mean time a step of this invocation waited for its batch.
  std::string ProgressLine(int epoch, int64_t step, int64_t steps, double seconds,
                           absl::Duration data_wait) const;
  std::string ResumeHint() const;

  Recipe recipe_;
  FieldLocations locations_;
  TrainerOptions options_;
  Components c_;
  std::unique_ptr<datasets::DataLoader> train_loader_;
  std::unique_ptr<datasets::DataLoader> eval_loader_;
  std::unique_ptr<RunOutputs> outputs_;
  TrainingProgress progress_;
  double lambda_alpha_ = 0.0;
  std::vector<EpochMetrics> history_;
  bool tty_ = false;
  int64_t steps_this_run_ = 0;
  bool stop_ = false;  // max_steps reached
};

absl::Status TrainerImpl::Init() {
  const dist::Collectives& peers = *options_.collectives;
  if (!options_.resume.empty() && !options_.init_from.empty()) {
    return absl::InvalidArgumentError(
        "--resume continues a run, --init-from starts a new one from another run's weights; "
        "give one of them");
  }
  if (!options_.evaluate_only) {
    PACT_RETURN_IF_ERROR(CheckRunFolder(options_.output_dir, options_.resume, options_.overwrite));
  }
  if (recipe_.train().batch_size() % peers.size() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.batch_size: ", recipe_.train().batch_size(),
                     " (the global batch) must divide evenly over ", peers.size(),
                     " processes; pick a multiple of ", peers.size()));
  }
  tty_ = peers.is_writer() && isatty(STDERR_FILENO) == 1;
  at::set_num_threads(ResolveThreads(recipe_.train().threads()));
  PACT_ASSIGN_OR_RETURN(c_, BuildComponents(recipe_, &locations_));
  if (!options_.init_from.empty()) PACT_RETURN_IF_ERROR(InitFrom());
  // Rank 0's initial parameters and buffers everywhere, then gradient averaging in TrainStep.
  PACT_RETURN_IF_ERROR(options_.collectives->AttachModel(c_.model));
  c_.after_backward = [collectives = options_.collectives.get()] {
    return collectives->AverageGradients();
  };
  PACT_RETURN_IF_ERROR(LoadData());
  lambda_alpha_ = LambdaAlpha(recipe_.quantization(), *c_.optimizer);
  progress_ = NewTrainingProgress(ToTextProto(recipe_));
  if (!options_.init_from.empty()) progress_.set_init_from(options_.init_from);
  if (!options_.resume.empty()) PACT_RETURN_IF_ERROR(Resume());
  if (!peers.is_writer() || options_.evaluate_only) {  // the one place that tells ranks apart
    outputs_ = RunOutputs::Discard();
    return absl::OkStatus();
  }
  RunOutputs::Options outputs;
  outputs.output_dir = options_.output_dir;
  outputs.recipe_text = progress_.recipe_text();
  outputs.alpha_names = c_.alpha_names;
  outputs.first_epoch = static_cast<int>(progress_.epoch());
  outputs.overwrite = options_.overwrite;
  PACT_ASSIGN_OR_RETURN(outputs_, RunOutputs::OpenFolder(outputs));
  return absl::OkStatus();
}

absl::Status TrainerImpl::InitFrom() {
  PACT_ASSIGN_OR_RETURN_WITH_CONTEXT(
      const InitReport report, LoadMatchingTensors(options_.init_from, *c_.model), "--init-from");
  LOG(INFO) << "initialized the model from " << report.source << ": loaded " << report.loaded.size()
            << " tensors, " << report.missing.size() << " missing, " << report.unexpected.size()
            << " unexpected; epoch 0 with a fresh optimizer";
  if (!report.missing.empty()) {
    LOG(INFO) << "missing from " << report.source << ", kept as this recipe initializes them "
              << "(PACT alphas at alpha_init, or from the first batch with alpha_init_percentile; "
              << "LSQ steps from the first batch): " << absl::StrJoin(report.missing, ", ");
  }
  if (!report.unexpected.empty()) {
    LOG(INFO) << "in " << report.source
              << " but not in this model, ignored: " << absl::StrJoin(report.unexpected, ", ");
  }
  if (report.loaded.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--init-from ", report.source, ": no tensor name matches this recipe's model (",
        report.unexpected.size(), " tensors there, e.g. ",
        report.unexpected.empty() ? "none" : report.unexpected.front(),
        "); is it a run of another model?"));
  }
  return absl::OkStatus();
}

absl::Status TrainerImpl::LoadData() {
  const int world = options_.collectives->size();
  const int rank = options_.collectives->rank();
  std::shared_ptr<const datasets::Dataset> train_set, eval_set;
  PACT_ASSIGN_OR_RETURN_WITH_CONTEXT(eval_set, BuildDataset(recipe_.eval_data()), "eval_data");
  PACT_RETURN_IF_ERROR(CheckDatasetFitsModel(*eval_set, *c_.model, "eval_data"));
  datasets::LoaderOptions eval_options = datasets::LoaderOptions::Eval(
      recipe_.train().eval_batch_size(), recipe_.eval_data().workers());
  eval_options.num_shards = world;
  eval_options.shard_index = rank;
  eval_options.pad_shards = false;
  PACT_ASSIGN_OR_RETURN(eval_loader_, datasets::DataLoader::Create(eval_set, eval_options));
  if (options_.evaluate_only) {
    LOG(INFO) << "eval data: " << eval_set->Describe();
    return absl::OkStatus();
  }
  PACT_ASSIGN_OR_RETURN_WITH_CONTEXT(train_set, BuildDataset(recipe_.train_data()), "train_data");
  PACT_RETURN_IF_ERROR(CheckDatasetFitsModel(*train_set, *c_.model, "train_data"));
  LOG(INFO) << "train data: " << train_set->Describe();
  LOG(INFO) << "eval data: " << eval_set->Describe();
  // Each rank reads its own shard of the epoch's permutation (DistributedSampler's split):
  // padded for training so every rank takes the same steps, exact for evaluation.
  datasets::LoaderOptions train_options = datasets::LoaderOptions::Train(
      recipe_.train().batch_size() / world, recipe_.train_data().workers(), recipe_.seed());
  train_options.num_shards = world;
  train_options.shard_index = rank;
  PACT_ASSIGN_OR_RETURN(train_loader_, datasets::DataLoader::Create(train_set, train_options));
  return absl::OkStatus();
}

absl::Status TrainerImpl::Resume() {
  std::string path = options_.resume;
  if (IsDirectory(path)) path = CheckpointPath(path, "last");
  const std::string recipe_text = progress_.recipe_text();
  PACT_RETURN_IF_ERROR(LoadCheckpoint(path, *c_.model, *c_.optimizer->torch_optimizer, &progress_));
  if (progress_.recipe_text() != recipe_text) {
    LOG(WARNING) << "the recipe differs from the one " << path
                 << " was trained with; continuing with the current recipe";
    progress_.set_recipe_text(recipe_text);
  }
  LOG(INFO) << "resumed from " << path << " at epoch " << progress_.epoch() << ", step "
            << progress_.step_in_epoch();
  // Every rank reads the checkpoint itself (model, optimizer state, progress).
  PACT_RETURN_WITH_CONTEXT_IF_ERROR(
      options_.collectives->CheckSameOnEveryRank(progress_.global_step(), "the resumed step"),
      absl::StrCat("--resume: ", path, "; give every rank the same checkpoint"));
  return absl::OkStatus();
}

absl::Status TrainerImpl::Checkpoint(const std::string& name) {
  return outputs_->SaveCheckpoint(name, *c_.model, *c_.optimizer->torch_optimizer, progress_);
}

std::string TrainerImpl::ResumeHint() const {
  return absl::StrCat("resume with the same command plus --resume=", options_.output_dir);
}

std::string TrainerImpl::ProgressLine(int epoch, int64_t step, int64_t steps, double seconds,
                                      absl::Duration data_wait) const {
  const int64_t seen = progress_.partial_seen();
  const double rate = seconds > 0 ? seen / seconds : 0.0;
  const double eta = rate > 0 ? (steps - step) * (seen / std::max<int64_t>(step, 1)) / rate : 0.0;
  return absl::StrFormat(
      "epoch %d/%d step %d/%d loss %.4f top1 %.2f%% %.0f img/s data %.1f ms/step ETA %.0fs",
      epoch + 1, recipe_.train().epochs(), step, steps,
      progress_.partial_loss_sum() / std::max<int64_t>(seen, 1),
      100.0 * progress_.partial_correct() / std::max<int64_t>(seen, 1), rate,
      absl::ToDoubleMilliseconds(data_wait), eta);
}

absl::Status TrainerImpl::EvaluateInto(EpochMetrics* m) {
  return TorchCall("evaluating", [&]() -> absl::Status {
    // BatchNorm statistics are per rank while training; evaluate everywhere with rank 0's.
    PACT_RETURN_IF_ERROR(options_.collectives->BroadcastBuffers());
    c_.model->eval();
    torch::NoGradGuard no_grad;
    EvalSums sums;
    eval_loader_->StartEpoch(0);
    const int64_t steps = eval_loader_->num_batches();
    ProgressReporter progress(tty_, recipe_.train().log_every_steps(), options_.log_to_file);
    const absl::Time start = absl::Now();
    datasets::Batch batch;
    for (int64_t step = 1; eval_loader_->Next(&batch); ++step) {
      EvalStep(*c_.model, c_.device, batch.images, batch.labels, sums);
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      progress.Update(absl::StrFormat("eval %d/%d loss %.4f top1 %.2f%% %.0f img/s", step, steps,
                                      sums.loss_sum / std::max<int64_t>(sums.seen, 1),
                                      100.0 * sums.top1 / std::max<int64_t>(sums.seen, 1),
                                      seconds > 0 ? sums.seen / seconds : 0.0),
                      step, steps);
    }
    progress.Finish();
    c_.model->train();
    // Each rank evaluated its own shard.
    std::vector<double> all = {sums.loss_sum, static_cast<double>(sums.top1),
                               static_cast<double>(sums.top5), static_cast<double>(sums.seen)};
    PACT_RETURN_IF_ERROR(options_.collectives->AllReduceSum(&all, "allreduce of evaluation sums"));
    const int64_t seen = std::max<int64_t>(std::llround(all[3]), 1);
    m->set_eval_loss(all[0] / seen);
    m->set_eval_top1(100.0 * std::llround(all[1]) / seen);
    m->set_eval_top5(100.0 * std::llround(all[2]) / seen);
    return absl::OkStatus();
  });
}

EpochMetrics TrainerImpl::BeginEpoch(int epoch) {
  const int warmup = recipe_.quantization().quant_warmup_epochs();
  progress_.set_epoch(epoch);
  EpochMetrics m;
  m.set_epoch(epoch);
  m.set_quantized(epoch >= warmup);
  c_.layers->control()->set_enabled(m.quantized());
  if (epoch == warmup && warmup > 0) {
    LOG(INFO) << "warm-up over: quantization on from epoch " << epoch;
  }
  const double factor = c_.schedule ? c_.schedule->Factor(epoch) : 1.0;
  m.set_lr(c_.optimizer->base_lr * factor);
  c_.optimizer->SetLearningRate(m.lr());
  return m;
}

absl::StatusOr<StepSums> TrainerImpl::Step(int epoch, int64_t step, const datasets::Batch& batch) {
  PACT_ASSIGN_OR_RETURN(
      StepResult result, TorchCall("training step", [&]() -> absl::StatusOr<StepResult> {
        absl::StatusOr<StepResult> r = TrainStep(c_, lambda_alpha_, batch.images, batch.labels);
        if (absl::IsDataLoss(r.status())) {
          return absl::DataLossError(
              absl::StrCat(r.status().message(), " at epoch ", epoch, " step ", step,
                           "; training stopped. The last good checkpoint is ",
                           CheckpointPath(options_.output_dir, "last"),
                           ": lower the learning rate and resume from it"));
        }
        return r;
      }));
  // Metrics of the global batch, and one stop decision for all ranks: a signal may reach them
  // at different steps.
  std::vector<double> all = {result.loss_sum, static_cast<double>(result.correct),
                             static_cast<double>(batch.labels.size(0)),
                             StopRequested() ? 1.0 : 0.0};
  PACT_RETURN_IF_ERROR(options_.collectives->AllReduceSum(&all, "allreduce of step metrics"));
  StepSums sums;
  sums.loss_sum = all[0];
  sums.correct = std::llround(all[1]);
  sums.seen = std::llround(all[2]);
  sums.stop_requested = all[3] > 0.0;
  return sums;
}

absl::StatusOr<bool> TrainerImpl::TrainEpoch(int epoch, EpochMetrics* m) {
  const absl::Time start = absl::Now();
  const double earlier_seconds = progress_.partial_seconds();
  const auto seconds = [&] { return earlier_seconds + absl::ToDoubleSeconds(absl::Now() - start); };
  ProgressReporter progress(tty_, recipe_.train().log_every_steps(), options_.log_to_file);
  const int64_t steps = train_loader_->num_batches();
  // A mid-epoch resume starts at the checkpoint's batch: batches depend only on (seed, epoch,
  // index), so the skipped ones need not be decoded.
  int64_t step = std::min(progress_.step_in_epoch(), steps);
  train_loader_->StartEpoch(epoch, step);
  datasets::Batch batch;
  absl::Duration waited;  // for batches, by the steps of this invocation
  int64_t waited_steps = 0;
  for (absl::Time asked = absl::Now(); train_loader_->Next(&batch); asked = absl::Now()) {
    waited += absl::Now() - asked;
    ++waited_steps;
    PACT_ASSIGN_OR_RETURN(const StepSums sums, Step(epoch, step, batch));
    if (steps_this_run_ == 0) {
      // Quantizers that initialized themselves from this first batch saw each rank's own shard.
      PACT_RETURN_IF_ERROR(AverageQuantizerState(
          *c_.model, options_.collectives->size(), [&](std::vector<double>* values) {
            return options_.collectives->AllReduceSum(values, "averaging the quantizer state");
          }));
    }
    ++step;
    progress_.set_global_step(progress_.global_step() + 1);
    progress_.set_step_in_epoch(step);
    progress_.set_partial_loss_sum(progress_.partial_loss_sum() + sums.loss_sum);
    progress_.set_partial_correct(progress_.partial_correct() + sums.correct);
    progress_.set_partial_seen(progress_.partial_seen() + sums.seen);
    progress.Update(ProgressLine(epoch, step, steps, seconds(), waited / waited_steps), step,
                    steps);
    ++steps_this_run_;
    if (options_.max_steps > 0 && steps_this_run_ >= options_.max_steps) stop_ = true;
    if ((stop_ || sums.stop_requested) && step < steps) {
      progress.Finish();
      progress_.set_partial_seconds(seconds());
      PACT_RETURN_IF_ERROR(Checkpoint("last"));
      LOG(INFO) << "stopped at epoch " << epoch << " step " << step << "; checkpoint "
                << CheckpointPath(options_.output_dir, "last") << ". " << ResumeHint();
      return true;
    }
  }
  progress.Finish();
  const double train_seconds = seconds();
  const int64_t seen = std::max<int64_t>(progress_.partial_seen(), 1);
  m->set_train_loss(progress_.partial_loss_sum() / seen);
  m->set_train_top1(100.0 * progress_.partial_correct() / seen);
  m->set_train_images_per_s(train_seconds > 0 ? progress_.partial_seen() / train_seconds : 0.0);
  m->set_seconds(train_seconds);
  return false;
}

absl::StatusOr<bool> TrainerImpl::EndEpoch(int epoch, EpochMetrics m) {
  const absl::Time start = absl::Now();
  const int epochs = recipe_.train().epochs();
  const bool last_epoch = epoch + 1 == epochs;
  if ((epoch + 1) % recipe_.train().eval_every_epochs() == 0 || last_epoch) {
    PACT_RETURN_IF_ERROR(EvaluateInto(&m));
  }
  m.set_seconds(m.seconds() + absl::ToDoubleSeconds(absl::Now() - start));
  for (size_t i = 0; i < c_.alphas.size(); ++i) {
    (*m.mutable_alphas())[c_.alpha_names[i]] = c_.alphas[i].item<double>();
  }
  history_.push_back(m);
  const bool evaluated = m.has_eval_top1();
  LOG(INFO) << absl::StrFormat(
      "epoch %d/%d lr %.4g%s train loss %.4f top1 %.2f%% | eval loss %s top1 %s top5 %s | "
      "%.1fs %.0f img/s",
      epoch + 1, epochs, m.lr(), m.quantized() ? "" : " (warm-up, unquantized)", m.train_loss(),
      m.train_top1(), evaluated ? absl::StrFormat("%.4f", m.eval_loss()) : "-",
      evaluated ? absl::StrFormat("%.2f%%", m.eval_top1()) : "-",
      evaluated ? absl::StrFormat("%.2f%%", m.eval_top5()) : "-", m.seconds(),
      m.train_images_per_s());
  PACT_RETURN_IF_ERROR(outputs_->WriteEpoch(m));

  // The checkpoint describes the start of the next epoch.
  TrainingProgress next = NewTrainingProgress(progress_.recipe_text());
  if (progress_.has_init_from()) next.set_init_from(progress_.init_from());
  next.set_epoch(epoch + 1);
  next.set_global_step(progress_.global_step());
  next.set_best_top1(progress_.best_top1());
  next.set_best_epoch(progress_.best_epoch());
  progress_ = std::move(next);
  const bool best = evaluated && m.eval_top1() > progress_.best_top1();
  if (best) {
    progress_.set_best_top1(m.eval_top1());
    progress_.set_best_epoch(epoch);
  }
  PACT_ASSIGN_OR_RETURN(const bool stopping,
                        options_.collectives->AnyRank(stop_ || StopRequested(), "stop agreement"));
  if ((epoch + 1) % recipe_.train().checkpoint().every_epochs() == 0 || last_epoch || stopping) {
    PACT_RETURN_IF_ERROR(Checkpoint("last"));
  }
  if (best && recipe_.train().checkpoint().keep_best()) PACT_RETURN_IF_ERROR(Checkpoint("best"));
  if (stopping && !last_epoch) {
    LOG(INFO) << "stopped after epoch " << epoch << "; " << ResumeHint();
    return true;
  }
  return false;
}

absl::StatusOr<EpochMetrics> TrainerImpl::Evaluate() {
  // The epoch whose end-of-epoch evaluation this repeats: a checkpoint taken at an epoch's end
  // describes the start of the next one.
  const int64_t epoch =
      options_.resume.empty()
          ? std::max(0, recipe_.quantization().quant_warmup_epochs())
          : (progress_.step_in_epoch() > 0 ? progress_.epoch()
                                           : std::max<int64_t>(progress_.epoch() - 1, 0));
  EpochMetrics m;
  m.set_epoch(static_cast<int>(epoch));
  m.set_quantized(epoch >= recipe_.quantization().quant_warmup_epochs());
  c_.layers->control()->set_enabled(m.quantized());
  PACT_RETURN_IF_ERROR(EvaluateInto(&m));
  return m;
}

absl::StatusOr<RunOutcome> TrainerImpl::Run() {
  if (options_.evaluate_only) {
    return absl::FailedPreconditionError("a trainer made with evaluate_only cannot train");
  }
  c_.model->train();
  for (int epoch = static_cast<int>(progress_.epoch()); epoch < recipe_.train().epochs(); ++epoch) {
    EpochMetrics m = BeginEpoch(epoch);
    PACT_ASSIGN_OR_RETURN(const bool stopped_midway, TrainEpoch(epoch, &m));
    if (stopped_midway) return RunOutcome::kStopped;
    PACT_ASSIGN_OR_RETURN(const bool stopping, EndEpoch(epoch, std::move(m)));
    if (stopping) return RunOutcome::kStopped;
  }
  if (progress_.best_epoch() >= 0) {
    LOG(INFO) << absl::StrFormat("done: best eval top-1 %.2f%% at epoch %d; outputs in %s",
                                 progress_.best_top1(), progress_.best_epoch() + 1,
                                 options_.output_dir);
  }
  return RunOutcome::kFinished;
}

}  // namespace

void TuneProcessForTraining() {
  // Training frees and re-allocates its large tensors every step; glibc's defaults hand them
  // back to the kernel each time (mmap/munmap and a page fault per page; the README's table of
  // design measurements has the cost). Keep them in the heap instead, as MALLOC_MMAP_THRESHOLD_ and
  // MALLOC_TRIM_THRESHOLD_ would.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
  // glibc caps M_MMAP_THRESHOLD at 32 MiB, so larger blocks (AlexNet-BN's FC weight, its
  // DoReFa copy and gradients) would still be mapped and unmapped every step: turn mmap off
  // for malloc (thread arenas still map their own heaps), at the cost of a higher peak RSS.
  mallopt(M_MMAP_MAX, 0);
}

void Trainer::RequestStop() { g_stop_requested.store(true); }
bool Trainer::StopRequested() { return g_stop_requested.load(); }

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const ValidatedRecipe& recipe,
                                                         const TrainerOptions& options) {
  TrainerOptions resolved = options;
  if (resolved.collectives == nullptr) resolved.collectives = dist::LocalCollectives();
  auto trainer = std::make_unique<TrainerImpl>(recipe, std::move(resolved));
  PACT_RETURN_IF_ERROR(trainer->Init());
  return std::unique_ptr<Trainer>(std::move(trainer));
}

absl::StatusOr<std::string> DryRun(const ValidatedRecipe& recipe) {
  PACT_ASSIGN_OR_RETURN(Components c, BuildComponents(*recipe, &recipe.locations()));
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
