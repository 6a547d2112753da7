#include "pact/train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "datasets/loader.h"
#include "glog/logging.h"
#include "pact/core/recipe.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/core/torch_status.h"
#include "pact/train/checkpoint.h"
#include "pact/train/components.h"
#include "pact/train/metrics_writer.h"

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
  TrainingProgress progress_;
  double lambda_alpha_ = 0.0;
  std::string checkpoint_dir_;
  std::vector<EpochMetrics> history_;
  bool tty_ = false;
  int64_t steps_this_run_ = 0;
  bool stop_ = false;  // max_steps reached
};

absl::Status TrainerImpl::Init() {
  tty_ = isatty(STDERR_FILENO) == 1;
  at::set_num_threads(ResolveThreads(recipe_.train().threads()));
  PACT_RETURN_IF_ERROR(MakeDirs(options_.output_dir));
  checkpoint_dir_ = options_.output_dir + "/checkpoints";
  PACT_RETURN_IF_ERROR(MakeDirs(checkpoint_dir_));
  PACT_ASSIGN_OR_RETURN(c_, BuildComponents(recipe_));
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
  PACT_ASSIGN_OR_RETURN(
      train_loader_,
      datasets::DataLoader::Create(train_set_, datasets::LoaderOptions::Train(
                                                   recipe_.train().batch_size(),
                                                   recipe_.train_data().workers(), recipe_.seed())));
  PACT_ASSIGN_OR_RETURN(eval_loader_,
                        datasets::DataLoader::Create(
                            eval_set_, datasets::LoaderOptions::Eval(recipe_.train().eval_batch_size(),
                                                                     recipe_.eval_data().workers())));
  lambda_alpha_ = EffectiveLambdaAlpha(recipe_);
  progress_.recipe_text = ToTextProto(recipe_);
  if (!options_.resume.empty()) PACT_RETURN_IF_ERROR(Resume());
  PACT_RETURN_IF_ERROR(WriteFileAtomically(
      options_.output_dir + "/recipe.pbtxt",
      absl::StrCat("# proto-file: pact/proto/recipe.proto\n# proto-message: pact.Recipe\n"
                   "# The resolved recipe of this run (flags and overrides applied).\n",
                   progress_.recipe_text)));
  return metrics_.Open(options_.output_dir, c_.alpha_names, static_cast<int>(progress_.epoch));
}

absl::Status TrainerImpl::Resume() {
  std::string path = options_.resume;
  if (fs::is_directory(path)) path += "/checkpoints/last.pt";
  const std::string recipe_text = progress_.recipe_text;
  PACT_RETURN_IF_ERROR(
      LoadCheckpoint(path, *c_.model, *c_.optimizer->torch_optimizer, &progress_));
  if (progress_.recipe_text != recipe_text) {
    LOG(WARNING) << "the recipe differs from the one " << path
                 << " was trained with; continuing with the current recipe";
    progress_.recipe_text = recipe_text;
  }
  LOG(INFO) << "resumed from " << path << " at epoch " << progress_.epoch << ", step "
            << progress_.step_in_epoch;
  return absl::OkStatus();
}

std::vector<double> TrainerImpl::AlphaValues() const {
  std::vector<double> values;
  for (const auto& alpha : c_.alphas) values.push_back(alpha.item<double>());
  return values;
}

absl::Status TrainerImpl::Checkpoint(const std::string& name) {
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
    c_.model->eval();
    torch::NoGradGuard no_grad;
    double loss_sum = 0.0;
    int64_t top1 = 0, top5 = 0, seen = 0;
    eval_loader_->StartEpoch(0);
    datasets::Batch batch;
    while (eval_loader_->Next(&batch)) {
      const torch::Tensor images = batch.images.to(c_.device);
      const torch::Tensor labels = batch.labels.to(c_.device);
      const torch::Tensor logits = c_.model->forward(images);
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, labels,
                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      const int64_t k = std::min<int64_t>(5, logits.size(1));
      const torch::Tensor top = std::get<1>(logits.topk(k, 1));
      const torch::Tensor hits = top.eq(labels.unsqueeze(1));
      top1 += hits.select(1, 0).sum().item<int64_t>();
      top5 += hits.any(1).sum().item<int64_t>();
      seen += labels.size(0);
    }
    c_.model->train();
    EvalResult result;
    result.loss = loss_sum / std::max<int64_t>(seen, 1);
    result.top1 = 100.0 * top1 / std::max<int64_t>(seen, 1);
    result.top5 = 100.0 * top5 / std::max<int64_t>(seen, 1);
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
    if (epoch == warmup && warmup > 0) LOG(INFO) << "warm-up over: quantization on from epoch " << epoch;
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
      absl::StatusOr<std::pair<double, int64_t>> result =
          TorchCall("training step", [&]() -> absl::StatusOr<std::pair<double, int64_t>> {
            const torch::Tensor images = batch.images.to(c_.device);
            const torch::Tensor labels = batch.labels.to(c_.device);
            const torch::Tensor logits = c_.model->forward(images);
            const torch::Tensor ce = torch::nn::functional::cross_entropy(logits, labels);
            const double ce_value = ce.item<double>();
            if (!std::isfinite(ce_value)) {
              return absl::DataLossError(absl::StrCat(
                  "loss became ", ce_value, " at epoch ", epoch, " step ", step,
                  "; training stopped. The last good checkpoint is ", checkpoint_dir_,
                  "/last.pt: lower the learning rate and resume from it"));
            }
            torch::Tensor loss = ce;
            const torch::Tensor penalty = AlphaPenalty(c_.alphas, lambda_alpha_);
            if (penalty.defined()) loss = loss + penalty;
            c_.optimizer->torch_optimizer->zero_grad();
            loss.backward();
            c_.optimizer->torch_optimizer->step();
            const int64_t correct = logits.argmax(1).eq(labels).sum().item<int64_t>();
            return std::make_pair(ce_value * labels.size(0), correct);
          });
      if (!result.ok()) {
        if (tty_) std::fprintf(stderr, "\n");
        return result.status();
      }
      ++step;
      ++progress_.global_step;
      progress_.step_in_epoch = step;
      progress_.partial_loss_sum += result->first;
      progress_.partial_correct += result->second;
      progress_.partial_seen += batch.labels.size(0);
      Progress(epoch, step, steps, earlier_seconds + Seconds(start), progress_.partial_seen,
               progress_.partial_loss_sum, progress_.partial_correct);
      ++steps_this_run_;
      if (options_.max_steps > 0 && steps_this_run_ >= options_.max_steps) stop_ = true;
      if ((stop_ || StopRequested()) && step < steps) {
        if (tty_) std::fprintf(stderr, "\n");
        progress_.partial_seconds = earlier_seconds + Seconds(start);
        PACT_RETURN_IF_ERROR(Checkpoint("last"));
        LOG(INFO) << "stopped at epoch " << epoch << " step " << step << "; checkpoint "
                  << checkpoint_dir_ << "/last.pt. Resume with the same command plus --resume="
                  << options_.output_dir;
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
    PACT_RETURN_IF_ERROR(metrics_.Write(m));

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
    const bool stopping = stop_ || StopRequested();
    if ((epoch + 1) % recipe_.train().checkpoint().every_epochs() == 0 || last_epoch ||
        stopping) {
      PACT_RETURN_IF_ERROR(Checkpoint("last"));
    }
    if (best && recipe_.train().checkpoint().keep_best()) PACT_RETURN_IF_ERROR(Checkpoint("best"));
    if (stopping && !last_epoch) {
      LOG(INFO) << "stopped after epoch " << epoch << "; resume with the same command plus --resume="
                << options_.output_dir;
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

void Trainer::RequestStop() { g_stop_requested.store(true); }
bool Trainer::StopRequested() { return g_stop_requested.load(); }
void Trainer::ClearStopRequest() { g_stop_requested.store(false); }

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const Recipe& recipe,
                                                         const TrainerOptions& options) {
  PACT_RETURN_IF_ERROR(ValidateRecipe(recipe));
  auto trainer = std::make_unique<TrainerImpl>(recipe, options);
  PACT_RETURN_IF_ERROR(trainer->Init());
  return std::unique_ptr<Trainer>(std::move(trainer));
}

absl::StatusOr<std::string> DryRun(const Recipe& recipe) {
  PACT_RETURN_IF_ERROR(ValidateRecipe(recipe));
  PACT_ASSIGN_OR_RETURN(Components c, BuildComponents(recipe));
  for (const auto* data : {&recipe.train_data(), &recipe.eval_data()}) {
    const auto* field = data->GetReflection()->GetOneofFieldDescriptor(
        *data, datasets::DatasetSpec::descriptor()->FindOneofByName("impl"));
    PACT_RETURN_IF_ERROR(datasets::GetDatasetRegistry().CheckName(field->name()));
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
