// //tools:train_benchmark — training-step and epoch throughput of any recipe's model.
//
//   bazel run //tools:train_benchmark -- --recipe=recipes/cifar10_resnet20.pbtxt
//   bazel run //tools:train_benchmark -- --model=all --batch_size=32
//   bazel run //tools:train_benchmark -- --mode=epoch --data_root=/work/shared/data/cifar10
//
// --mode=step (default): the model is built exactly as //tools:train builds it
// (pact::train::BuildComponents: layer builder, model, optimizer with alphas excluded from
// weight decay) and timed on pact::train::TrainStep, the trainer's own step (forward,
// cross-entropy + AlphaPenalty, zero_grad, backward, optimizer step), over --data_batches
// distinct synthetic batches (N(0,1) images of the model's input shape, uniform labels),
// generated before timing and cycled. Per repetition: --warmup untimed steps, then --steps
// timed steps. Then the evaluation forward (model.eval(), NoGradGuard) at --eval_batch_size.
// Each model runs in two variants: "quant" (the recipe's quantization, e.g. W4A4 PACT/DoReFa)
// and "fp32" (recipe.quantization cleared: ReLU, full-precision weights); the table gives both
// and their step-time ratio.
//
// --mode=epoch: one real epoch through pact::train::Trainer (the real DataLoader with
// augmentation, evaluation on the test set; epochs = 1, outputs in a temporary folder) against
// the same number of synthetic TrainSteps plus the same number of EvalSteps, so loader stalls
// show as the difference.
//
// Output: a table (model, variant, what, batch, img/s median and min-max, ms per step, load of
// other processes during the timed windows) and, with --json=path, one JSON line per
// model/variant appended to that file.
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "models/model.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/quant/bn_act_ops.h"
#include "pact/recipe/recipe.h"
#include "pact/train/components.h"
#include "pact/train/trainer.h"

DEFINE_string(recipe, "recipes/cifar10_resnet20.pbtxt", "Recipe (pact.Recipe text proto).");
DEFINE_string(recipe_overrides, "",
              "Text proto merged over the recipe (after --model), e.g. "
              "'model { resnet20 { depth: 32 } }'.");
DEFINE_string(model, "",
              "Swap the recipe's model: a registered model name (default options), a "
              "comma-separated list, or 'all' (every registered model). Empty: the recipe's.");
DEFINE_string(mode, "step",
              "step: synthetic training steps + eval forward; epoch: one real "
              "epoch (Trainer) vs the same number of synthetic steps + eval.");
DEFINE_string(variants, "",
              "Comma-separated subset of quant,fp32 (quant = the recipe's quantization, fp32 = "
              "quantization cleared). Default: quant,fp32 for --mode=step, quant for epoch.");
DEFINE_bool(fp32, false, "Shorthand for --variants=fp32.");
DEFINE_int32(batch_size, 0, "Training batch size (0 = the recipe's train.batch_size).");
DEFINE_int32(eval_batch_size, 256, "Evaluation batch size of the step mode (0 = the recipe's).");
DEFINE_int32(threads, 0, "Intra-op threads (0 = the recipe's train.threads: all cores).");
DEFINE_int32(steps, 30, "Timed training steps per repetition.");
DEFINE_int32(warmup, 5, "Untimed training steps before each repetition.");
DEFINE_int32(reps, 5, "Repetitions (the table gives their median, min and max).");
DEFINE_int32(eval_steps, 10, "Timed eval forwards per repetition (0 = no eval timing).");
DEFINE_int32(eval_warmup, 3, "Untimed eval forwards before each repetition.");
DEFINE_int32(data_batches, 20, "Distinct synthetic batches, generated before timing, cycled.");
DEFINE_int32(epoch_reps, 1, "--mode=epoch: repetitions of the (real, synthetic) pair.");
DEFINE_string(data_root, "", "--mode=epoch: data_root for train_data and eval_data.");
DEFINE_string(json, "", "Append one JSON line per model/variant to this file.");
DEFINE_bool(wait_quiet, false,
            "Before each timed window wait (<= 120 s) until other processes use < 0.1 core.");
DEFINE_uint64(data_seed, 0, "Seed of the synthetic data.");
DEFINE_bool(fuse_bn_act, true,
            "Run BatchNorm -> (+ shortcut) -> activation as one fused op (the trainer's "
            "default); false composes the modules, to measure what the fusion buys.");
DEFINE_string(profile, "",
              "After timing, run 3 more training steps under LibTorch's profiler and write a "
              "Chrome trace to <this>.<model>.<variant>.json (chrome://tracing, Perfetto).");

namespace {

using Clock = std::chrono::steady_clock;

int Fail(const absl::Status& status) {
  std::cerr << "train_benchmark: error: " << status.message() << std::endl;
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// ---------------------------------------------------------------- noise indicator
// CPU-seconds the whole machine spent busy (all CPUs), from /proc/stat.
double MachineBusySeconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  std::vector<double> v(8, 0.0);
  for (double& x : v) stat >> x;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  // user nice system idle iowait irq softirq steal
  return (v[0] + v[1] + v[2] + v[5] + v[6]) / tick;
}

int64_t MinorFaults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

double OwnCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec * 1e-6;
}

// Wall time of a timed window and the cores other processes used meanwhile.
class Window {
 public:
  Window()
      : busy0_(MachineBusySeconds()),
        own0_(OwnCpuSeconds()),
        faults0_(MinorFaults()),
        t0_(Clock::now()) {}
  void Stop() {
    seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
    minor_faults = MinorFaults() - faults0_;
    const double busy = MachineBusySeconds() - busy0_;
    own_cpu = OwnCpuSeconds() - own0_;
    foreign = std::max(0.0, (busy - own_cpu) / std::max(seconds, 1e-9));
  }
  double seconds = 0.0;
  double foreign = 0.0;  // cores used by other processes
  double own_cpu = 0.0;  // CPU seconds of this process (all threads)
  int64_t minor_faults = 0;

 private:
  double busy0_, own0_;
  int64_t faults0_;
  Clock::time_point t0_;
};

void MaybeWaitQuiet() {
  if (!FLAGS_wait_quiet) return;
  const auto start = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - start).count() < 120) {
    const double busy0 = MachineBusySeconds(), own0 = OwnCpuSeconds();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double foreign = (MachineBusySeconds() - busy0 - (OwnCpuSeconds() - own0)) / 2.0;
    if (foreign < 0.1) return;
  }
}

// ---------------------------------------------------------------- statistics
struct Stats {
  double median = 0, min = 0, max = 0;
  std::vector<double> values;
};

Stats Summarize(std::vector<double> values) {
  Stats s;
  s.values = values;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  s.median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  s.min = values.front();
  s.max = values.back();
  return s;
}

std::string JsonList(const std::vector<double>& v, const char* format = "%.2f") {
  std::vector<std::string> parts;
  for (double x : v) parts.push_back(absl::StrFormat(format, x));
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

std::string JsonStats(const Stats& s) {
  return absl::StrFormat(R"({"median":%.2f,"min":%.2f,"max":%.2f,"reps":%s})", s.median, s.min,
                         s.max, JsonList(s.values));
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      out += absl::StrFormat("\\u%04x", ch);
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

// One table row.
struct Row {
  std::string model, variant, what;
  int64_t batch = 0;
  Stats ips;
  double ms_per_step = 0;
  double foreign = 0;  // median over repetitions
  double cpu_ms = 0;   // this process's CPU ms per step (all threads), median
  double faults = -1;  // minor page faults per step, median (-1 = not measured)
};

std::vector<Row>& Rows() {
  static auto* rows = new std::vector<Row>;
  return *rows;
}

void PrintRow(const Row& r) {
  std::cout << absl::StrFormat("%-16s %-7s %-13s %6d %10.1f %10.1f-%-10.1f %9.2f %8.1f %6.2f %s\n",
                               r.model, r.variant, r.what, r.batch, r.ips.median, r.ips.min,
                               r.ips.max, r.ms_per_step, r.cpu_ms, r.foreign,
                               r.faults >= 0 ? absl::StrFormat("%7.0f", r.faults) : "      -")
            << std::flush;
}

void PrintHeader() {
  std::cout << absl::StrFormat("%-16s %-7s %-13s %6s %10s %21s %9s %8s %6s %7s\n", "model",
                               "variant", "what", "batch", "img/s med", "min-max", "ms/step",
                               "cpu ms", "load", "faults")
            << std::flush;
}

void AppendJson(const std::string& line) {
  if (FLAGS_json.empty()) return;
  std::ofstream out(FLAGS_json, std::ios::app);
  out << line << "\n";
  if (!out) LOG(ERROR) << "cannot append to " << FLAGS_json;
}

// ---------------------------------------------------------------- recipes
// The quantizer `spec` selects, with its bits when its options have an int32 `bits` ("pact4"),
// or `unset`.
std::string QuantizerDescription(const google::protobuf::Message& spec, const std::string& unset) {
  const std::string name = pact::SelectedName(spec);
  if (name.empty()) return unset;
  const google::protobuf::Message& options =
      spec.GetReflection()->GetMessage(spec, spec.GetDescriptor()->FindFieldByName(name));
  const google::protobuf::FieldDescriptor* bits = options.GetDescriptor()->FindFieldByName("bits");
  if (bits == nullptr || bits->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_INT32) {
    return name;
  }
  return absl::StrCat(name, options.GetReflection()->GetInt32(options, bits));
}

std::string QuantDescription(const pact::Recipe& recipe) {
  const auto& q = recipe.quantization();
  if (!q.has_activation() && !q.has_weight()) return "fp32";
  return absl::StrCat(QuantizerDescription(q.weight(), "fp"), "/",
                      QuantizerDescription(q.activation(), "relu"));
}

absl::StatusOr<pact::Recipe> RecipeFor(const std::string& model, const std::string& variant) {
  std::string overrides;
  if (!model.empty()) overrides = absl::StrCat("model { ", model, " {} }\n");
  overrides += FLAGS_recipe_overrides;
  PACT_ASSIGN_OR_RETURN(pact::ValidatedRecipe loaded, pact::LoadRecipe(FLAGS_recipe, overrides));
  pact::Recipe recipe = *loaded;
  if (variant == "fp32") recipe.clear_quantization();
  if (FLAGS_batch_size > 0) recipe.mutable_train()->set_batch_size(FLAGS_batch_size);
  if (FLAGS_threads > 0) recipe.mutable_train()->set_threads(FLAGS_threads);
  if (!FLAGS_data_root.empty()) {
    recipe.mutable_train_data()->set_data_root(FLAGS_data_root);
    recipe.mutable_eval_data()->set_data_root(FLAGS_data_root);
  }
  PACT_ASSIGN_OR_RETURN(pact::ValidatedRecipe validated, pact::ValidateRecipe(std::move(recipe)));
  return *validated;
}

std::string ModelName(const pact::Recipe& recipe) {
  const std::string name = pact::SelectedName(recipe.model());
  return name.empty() ? "?" : name;
}

// ---------------------------------------------------------------- synthetic data
struct SyntheticData {
  std::vector<torch::Tensor> images, labels;
};

SyntheticData MakeData(const pact::models::Model& model, int64_t batch, int count, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<int64_t> shape = {batch};
  for (int64_t d : model.input_shape()) shape.push_back(d);
  SyntheticData data;
  for (int i = 0; i < count; ++i) {
    data.images.push_back(torch::randn(shape));
    data.labels.push_back(torch::randint(model.num_classes(), {batch}, torch::kLong));
  }
  return data;
}

// ---------------------------------------------------------------- step mode
struct StepTiming {
  Stats train_ips, eval_ips;
  std::vector<double> train_foreign, eval_foreign;
  std::vector<double> train_cpu_ms, eval_cpu_ms;  // process CPU ms per step (all threads)
  std::vector<double> train_faults;               // minor page faults per step
  double last_loss = 0;
};

absl::StatusOr<StepTiming> TimeSteps(const pact::Recipe& recipe, const std::string& variant) {
  PACT_ASSIGN_OR_RETURN(pact::train::Components c, pact::train::BuildComponents(recipe));
  const double lambda = pact::train::LambdaAlpha(recipe.quantization(), *c.optimizer);
  const int64_t batch = recipe.train().batch_size();
  const int64_t eval_batch =
      FLAGS_eval_batch_size > 0 ? FLAGS_eval_batch_size : recipe.train().eval_batch_size();
  SyntheticData data = MakeData(*c.model, batch, std::max(1, FLAGS_data_batches), FLAGS_data_seed);
  StepTiming timing;
  PACT_RETURN_IF_ERROR(pact::TorchCall("timing the training step", [&]() -> absl::Status {
    c.model->train();
    int64_t it = 0;
    auto step = [&]() -> absl::Status {
      const size_t i = it++ % data.images.size();
      PACT_ASSIGN_OR_RETURN(pact::train::StepResult r,
                            pact::train::TrainStep(c, lambda, data.images[i], data.labels[i]));
      timing.last_loss = r.loss_sum / batch;
      return absl::OkStatus();
    };
    std::vector<double> ips;
    for (int rep = 0; rep < FLAGS_reps; ++rep) {
      MaybeWaitQuiet();
      for (int i = 0; i < FLAGS_warmup; ++i) PACT_RETURN_IF_ERROR(step());
      Window w;
      for (int i = 0; i < FLAGS_steps; ++i) PACT_RETURN_IF_ERROR(step());
      w.Stop();
      ips.push_back(FLAGS_steps * batch / w.seconds);
      timing.train_foreign.push_back(w.foreign);
      timing.train_cpu_ms.push_back(1000.0 * w.own_cpu / FLAGS_steps);
      timing.train_faults.push_back(static_cast<double>(w.minor_faults) / FLAGS_steps);
    }
    timing.train_ips = Summarize(ips);
    if (!FLAGS_profile.empty()) {
      const std::string path =
          absl::StrCat(FLAGS_profile, ".", ModelName(recipe), ".", variant, ".json");
      torch::autograd::profiler::RecordProfile profile(path);
      for (int i = 0; i < 3; ++i) PACT_RETURN_IF_ERROR(step());
      LOG(INFO) << "profile of 3 training steps: " << path;
    }
    return absl::OkStatus();
  }));
  if (FLAGS_eval_steps <= 0) return timing;
  PACT_RETURN_IF_ERROR(pact::TorchCall("timing the eval forward", [&] {
    std::vector<int64_t> shape = {eval_batch};
    for (int64_t d : c.model->input_shape()) shape.push_back(d);
    torch::manual_seed(FLAGS_data_seed + 1);
    // As the trainer feeds the model (channels-last on CPU, see pact::train::ModelInput).
    const torch::Tensor x = pact::train::ModelInput(torch::randn(shape), c.device);
    c.model->eval();
    torch::NoGradGuard no_grad;
    std::vector<double> ips;
    for (int rep = 0; rep < FLAGS_reps; ++rep) {
      MaybeWaitQuiet();
      for (int i = 0; i < FLAGS_eval_warmup; ++i) c.model->forward(x);
      Window w;
      for (int i = 0; i < FLAGS_eval_steps; ++i) c.model->forward(x);
      w.Stop();
      ips.push_back(FLAGS_eval_steps * eval_batch / w.seconds);
      timing.eval_foreign.push_back(w.foreign);
      timing.eval_cpu_ms.push_back(1000.0 * w.own_cpu / FLAGS_eval_steps);
    }
    timing.eval_ips = Summarize(ips);
    c.model->train();
  }));
  return timing;
}

absl::Status RunStepMode(const std::vector<std::string>& models,
                         const std::vector<std::string>& variants) {
  struct Result {
    std::string model;
    std::map<std::string, StepTiming> by_variant;
    std::map<std::string, std::string> description;
    int64_t batch = 0;
  };
  std::vector<Result> results;
  PrintHeader();
  for (const std::string& model_flag : models) {
    Result result;
    for (const std::string& variant : variants) {
      PACT_ASSIGN_OR_RETURN(pact::Recipe recipe, RecipeFor(model_flag, variant));
      const int threads = pact::train::ResolveThreads(recipe.train().threads());
      at::set_num_threads(threads);  // as Trainer::Init
      result.model = ModelName(recipe);
      result.batch = recipe.train().batch_size();
      absl::StatusOr<StepTiming> timing = TimeSteps(recipe, variant);
      if (!timing.ok()) {
        return absl::Status(timing.status().code(), absl::StrCat(result.model, " (", variant,
                                                                 "): ", timing.status().message()));
      }
      result.by_variant[variant] = *timing;
      result.description[variant] = QuantDescription(recipe);
      const int64_t eval_batch =
          FLAGS_eval_batch_size > 0 ? FLAGS_eval_batch_size : recipe.train().eval_batch_size();
      Row train{result.model,
                variant,
                "train step",
                result.batch,
                timing->train_ips,
                1000.0 * result.batch / timing->train_ips.median,
                Summarize(timing->train_foreign).median,
                Summarize(timing->train_cpu_ms).median,
                Summarize(timing->train_faults).median};
      Rows().push_back(train);
      PrintRow(train);
      if (FLAGS_eval_steps > 0) {
        Row eval{result.model,
                 variant,
                 "eval forward",
                 eval_batch,
                 timing->eval_ips,
                 1000.0 * eval_batch / timing->eval_ips.median,
                 Summarize(timing->eval_foreign).median,
                 Summarize(timing->eval_cpu_ms).median};
        Rows().push_back(eval);
        PrintRow(eval);
      }
      AppendJson(absl::StrCat(
          "{\"tool\":\"train_benchmark\",\"mode\":\"step\",\"model\":", JsonString(result.model),
          ",\"variant\":", JsonString(variant),
          ",\"quantization\":", JsonString(QuantDescription(recipe)),
          ",\"recipe\":", JsonString(FLAGS_recipe), ",\"threads\":", threads,
          ",\"batch\":", result.batch, ",\"steps\":", FLAGS_steps, ",\"warmup\":", FLAGS_warmup,
          ",\"reps\":", FLAGS_reps, ",\"train_img_s\":", JsonStats(timing->train_ips),
          ",\"train_foreign_cores\":", JsonList(timing->train_foreign),
          ",\"train_cpu_ms_per_step\":", JsonList(timing->train_cpu_ms),
          ",\"train_minor_faults_per_step\":", JsonList(timing->train_faults, "%.0f"),
          FLAGS_eval_steps > 0
              ? absl::StrCat(",\"eval_batch\":", eval_batch,
                             ",\"eval_img_s\":", JsonStats(timing->eval_ips),
                             ",\"eval_foreign_cores\":", JsonList(timing->eval_foreign))
              : "",
          absl::StrFormat(",\"last_loss\":%.4f}", timing->last_loss)));
    }
    results.push_back(result);
  }
  // Quantized vs full precision.
  if (variants.size() == 2) {
    std::cout << "\nstep time quant / fp32 (1.00 = quantization is free):\n";
    for (const Result& r : results) {
      const auto& q = r.by_variant.at("quant");
      const auto& f = r.by_variant.at("fp32");
      std::cout << absl::StrFormat("  %-16s batch %4d  %-16s train %.3f  (%.1f vs %.1f img/s)",
                                   r.model, r.batch, r.description.at("quant"),
                                   f.train_ips.median / q.train_ips.median, q.train_ips.median,
                                   f.train_ips.median);
      if (FLAGS_eval_steps > 0) {
        std::cout << absl::StrFormat("   eval %.3f", f.eval_ips.median / q.eval_ips.median);
      }
      std::cout << "\n";
      AppendJson(absl::StrCat("{\"tool\":\"train_benchmark\",\"mode\":\"step_ratio\",\"model\":",
                              JsonString(r.model), ",\"batch\":", r.batch,
                              absl::StrFormat(",\"quant_over_fp32_step_time\":%.4f",
                                              f.train_ips.median / q.train_ips.median),
                              "}"));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- epoch mode
struct EpochTiming {
  double train_s = 0, eval_s = 0, train_foreign = 0, eval_foreign = 0;
  int64_t steps = 0, train_images = 0, eval_images = 0;
};

// The same work as one Trainer epoch, on synthetic batches: floor(train_size / batch) steps
// (the train loader drops the last partial batch) and ceil(eval_size / eval_batch) EvalSteps.
absl::StatusOr<EpochTiming> SyntheticEpoch(const pact::Recipe& recipe, int64_t train_size,
                                           int64_t eval_size) {
  PACT_ASSIGN_OR_RETURN(pact::train::Components c, pact::train::BuildComponents(recipe));
  const double lambda = pact::train::LambdaAlpha(recipe.quantization(), *c.optimizer);
  const int64_t batch = recipe.train().batch_size();
  const int64_t eval_batch = recipe.train().eval_batch_size();
  SyntheticData data = MakeData(*c.model, batch, std::max(1, FLAGS_data_batches), FLAGS_data_seed);
  SyntheticData eval_data = MakeData(*c.model, eval_batch, 1, FLAGS_data_seed + 1);
  EpochTiming t;
  t.steps = train_size / batch;
  PACT_RETURN_IF_ERROR(pact::TorchCall("synthetic epoch", [&]() -> absl::Status {
    c.model->train();
    for (int i = 0; i < FLAGS_warmup; ++i) {
      const size_t k = i % data.images.size();
      PACT_RETURN_IF_ERROR(
          pact::train::TrainStep(c, lambda, data.images[k], data.labels[k]).status());
    }
    MaybeWaitQuiet();
    Window w;
    for (int64_t i = 0; i < t.steps; ++i) {
      const size_t k = i % data.images.size();
      PACT_RETURN_IF_ERROR(
          pact::train::TrainStep(c, lambda, data.images[k], data.labels[k]).status());
      t.train_images += batch;
    }
    w.Stop();
    t.train_s = w.seconds;
    t.train_foreign = w.foreign;
    c.model->eval();
    torch::NoGradGuard no_grad;
    pact::train::EvalSums sums;
    Window we;
    for (int64_t done = 0; done < eval_size; done += eval_batch) {
      const int64_t n = std::min(eval_batch, eval_size - done);
      pact::train::EvalStep(*c.model, c.device, eval_data.images[0].narrow(0, 0, n),
                            eval_data.labels[0].narrow(0, 0, n), sums);
    }
    we.Stop();
    t.eval_s = we.seconds;
    t.eval_foreign = we.foreign;
    t.eval_images = sums.seen;
    return absl::OkStatus();
  }));
  return t;
}

struct RealEpochTiming {
  double seconds = 0;             // EpochMetrics.seconds: training + evaluation
  double train_images_per_s = 0;  // EpochMetrics.train_images_per_s
  double foreign = 0;
};

// One epoch of the real Trainer (loader, augmentation, evaluation on the test set), outputs
// in a temporary folder that is removed afterwards.
absl::StatusOr<RealEpochTiming> RealEpoch(pact::Recipe recipe) {
  recipe.mutable_train()->set_epochs(1);
  recipe.mutable_train()->set_eval_every_epochs(1);
  if (recipe.has_quantization()) recipe.mutable_quantization()->set_quant_warmup_epochs(0);
  PACT_ASSIGN_OR_RETURN(pact::ValidatedRecipe validated, pact::ValidateRecipe(std::move(recipe)));
  std::string dir = (std::filesystem::temp_directory_path() / "train_benchmark_XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr)
    return absl::InternalError("cannot create a temporary folder");
  pact::train::TrainerOptions options;
  options.output_dir = dir;
  MaybeWaitQuiet();
  Window w;
  absl::StatusOr<std::unique_ptr<pact::train::Trainer>> trainer =
      pact::train::Trainer::Create(validated, options);
  absl::Status status = trainer.status();
  if (status.ok()) status = (*trainer)->Run().status();
  w.Stop();
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  if (!status.ok()) return status;
  const pact::train::EpochMetrics& m = (*trainer)->history().at(0);
  RealEpochTiming t;
  t.seconds = m.seconds();
  t.train_images_per_s = m.train_images_per_s();
  t.foreign = w.foreign;
  return t;
}

absl::Status RunEpochMode(const std::vector<std::string>& models,
                          const std::vector<std::string>& variants) {
  std::cout << absl::StrFormat("%-16s %-7s %-34s %6s %8s %8s %8s %9s %7s\n", "model", "variant",
                               "what", "batch", "train s", "eval s", "total s", "train i/s",
                               "load");
  for (const std::string& model_flag : models) {
    for (const std::string& variant : variants) {
      PACT_ASSIGN_OR_RETURN(pact::Recipe recipe, RecipeFor(model_flag, variant));
      at::set_num_threads(pact::train::ResolveThreads(recipe.train().threads()));
      const std::string model = ModelName(recipe);
      // Dataset sizes (and a check that the data is there before the long runs).
      PACT_ASSIGN_OR_RETURN(auto train_set, pact::train::BuildDataset(recipe.train_data()));
      PACT_ASSIGN_OR_RETURN(auto eval_set, pact::train::BuildDataset(recipe.eval_data()));
      const int64_t batch = recipe.train().batch_size();
      const int64_t train_images = train_set->size() / batch * batch;
      const int64_t eval_images = eval_set->size();
      train_set.reset();
      eval_set.reset();
      std::vector<double> real_total, synth_total;
      for (int rep = 0; rep < FLAGS_epoch_reps; ++rep) {
        PACT_ASSIGN_OR_RETURN(EpochTiming s, SyntheticEpoch(recipe, train_images, eval_images));
        PACT_ASSIGN_OR_RETURN(RealEpochTiming r, RealEpoch(recipe));
        const double real_seconds = r.seconds;
        const double real_ips = r.train_images_per_s;
        const double real_train_s = real_ips > 0 ? train_images / real_ips : real_seconds;
        const double real_eval_s = real_seconds - real_train_s;
        const double synth_seconds = s.train_s + s.eval_s;
        real_total.push_back(real_seconds);
        synth_total.push_back(synth_seconds);
        std::cout << absl::StrFormat(
            "%-16s %-7s %-34s %6d %8.1f %8.1f %8.1f %9.1f %7.2f\n", model, variant,
            absl::StrFormat("synthetic %d steps + %d eval", s.steps, s.eval_images), batch,
            s.train_s, s.eval_s, synth_seconds, s.train_images / s.train_s,
            (s.train_foreign * s.train_s + s.eval_foreign * s.eval_s) / synth_seconds);
        std::cout << absl::StrFormat("%-16s %-7s %-34s %6d %8.1f %8.1f %8.1f %9.1f %7.2f\n", model,
                                     variant, "real epoch (Trainer, loader)", batch, real_train_s,
                                     real_eval_s, real_seconds, real_ips, r.foreign);
        std::cout << absl::StrFormat("%-16s %-7s real / synthetic = %.3f (train %.3f, eval %.3f)\n",
                                     model, variant, real_seconds / synth_seconds,
                                     real_train_s / s.train_s, real_eval_s / s.eval_s)
                  << std::flush;
        AppendJson(absl::StrCat(
            "{\"tool\":\"train_benchmark\",\"mode\":\"epoch\",\"model\":", JsonString(model),
            ",\"variant\":", JsonString(variant),
            ",\"quantization\":", JsonString(QuantDescription(recipe)), ",\"batch\":", batch,
            ",\"train_images\":", train_images, ",\"eval_images\":", eval_images,
            absl::StrFormat(",\"synthetic\":{\"train_s\":%.3f,\"eval_s\":%.3f,\"steps\":%d,"
                            "\"foreign_cores\":%.2f}",
                            s.train_s, s.eval_s, s.steps, s.train_foreign),
            absl::StrFormat(",\"real\":{\"train_s\":%.3f,\"eval_s\":%.3f,\"seconds\":%.3f,"
                            "\"train_img_s\":%.2f,\"foreign_cores\":%.2f}",
                            real_train_s, real_eval_s, real_seconds, real_ips, r.foreign),
            absl::StrFormat(",\"real_over_synthetic\":%.4f}", real_seconds / synth_seconds)));
      }
      if (FLAGS_epoch_reps > 1) {
        const Stats r = Summarize(real_total), s = Summarize(synth_total);
        std::cout << absl::StrFormat(
            "%-16s %-7s median over %d: real %.1f s, synthetic %.1f s, ratio %.3f\n", model,
            variant, FLAGS_epoch_reps, r.median, s.median, r.median / s.median);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  // The trainer's process settings (malloc tuning), so the figures are the trainer's.
  pact::train::TuneProcessForTraining();
  FLAGS_logtostderr = true;
  gflags::SetUsageMessage(
      "times the training step (and eval forward, or a whole epoch) of a recipe's model.\n"
      "  train_benchmark --recipe=recipes/cifar10_resnet20.pbtxt [--mode=step|epoch]\n"
      "Run with --helpon=train_benchmark for this binary's flags.");
  gflags::ParseCommandLineFlags(&argc, &argv, /*remove_flags=*/true);
  google::InitGoogleLogging(argv[0]);
  google::InstallFailureSignalHandler();
  if (argc > 1) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", argv[1], "'; see --helpon=train_benchmark")));
  }
  pact::quant::SetBatchNormActivationFusion(FLAGS_fuse_bn_act);
  // `bazel run` starts us in the runfiles tree; user paths are relative to where bazel ran.
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY"); cwd != nullptr) {
    if (chdir(cwd) != 0) return Fail(absl::InternalError(absl::StrCat("cannot chdir to ", cwd)));
  }
  if (FLAGS_mode != "step" && FLAGS_mode != "epoch") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--mode: must be step or epoch, got '", FLAGS_mode, "'")));
  }
  std::vector<std::string> variants;
  std::string variants_flag = FLAGS_variants;
  if (FLAGS_fp32) variants_flag = "fp32";
  if (variants_flag.empty()) variants_flag = FLAGS_mode == "step" ? "quant,fp32" : "quant";
  for (absl::string_view v : absl::StrSplit(variants_flag, ',', absl::SkipEmpty())) {
    if (v != "quant" && v != "fp32") {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--variants: each must be quant or fp32, got '", v, "'")));
    }
    variants.emplace_back(v);
  }
  std::vector<std::string> models;
  if (FLAGS_model == "all") {
    models = pact::models::GetModelRegistry().Names();
  } else if (FLAGS_model.empty()) {
    models.push_back("");
  } else {
    for (absl::string_view m : absl::StrSplit(FLAGS_model, ',', absl::SkipEmpty())) {
      if (!pact::models::GetModelRegistry().Contains(m)) {
        return Fail(absl::InvalidArgumentError(
            absl::StrCat("--model: '", m, "' is not a registered model; choose from: ",
                         absl::StrJoin(pact::models::GetModelRegistry().Names(), ", "), ", all")));
      }
      models.emplace_back(m);
    }
  }
  std::cout
      << absl::StrFormat(
             "train_benchmark | recipe %s | mode %s | threads %d | warmup %d, steps %d, "
             "reps %d | eval warmup %d, steps %d | data batches %d\n",
             FLAGS_recipe, FLAGS_mode,
             FLAGS_threads > 0 ? FLAGS_threads : pact::train::ResolveThreads(0), FLAGS_warmup,
             FLAGS_steps, FLAGS_reps, FLAGS_eval_warmup, FLAGS_eval_steps, FLAGS_data_batches)
      << "cpu ms = this process's CPU time per step (all threads); load = cores used by other "
         "processes during the timed windows (noise: figures with load > 0.1 are "
         "unreliable)\n";
  const absl::Status status =
      FLAGS_mode == "step" ? RunStepMode(models, variants) : RunEpochMode(models, variants);
  if (!status.ok()) return Fail(status);
  return 0;
}
