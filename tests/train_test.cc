// End-to-end training on a tiny synthetic dataset: metrics and checkpoints, bit-exact resume,
// warm-up, the alpha penalty, and the NaN stop.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"
#include "pact/core/test_util.h"
#include "pact/recipe/recipe.h"
#include "pact/train/checkpoint.h"
#include "pact/train/components.h"
#include "pact/train/trainer.h"

namespace pact {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// 256 learnable 1x28x28 images, 8 steps of 32 per epoch, one thread: deterministic and fast.
constexpr char kRecipe[] = R"pb(
  name: "tiny"
  seed: 3
  model { fashion_convnet {} }
  train_data {
    split: SPLIT_TRAIN
    workers: 2
    synthetic { num_examples: 256 channels: 1 height: 28 width: 28 num_classes: 10 }
  }
  eval_data {
    split: SPLIT_TEST
    workers: 1
    synthetic { num_examples: 128 channels: 1 height: 28 width: 28 num_classes: 10 }
  }
  optimizer { adam { lr: 2e-3 weight_decay: 1e-4 } }
  lr_schedule {
    multi_step {
      milestones: [ 2 ]
      gamma: 0.5
    }
  }
  quantization {
    activation { pact { bits: 4 } }
    weight { dorefa { bits: 4 } }
  }
  train { epochs: 3 batch_size: 32 eval_batch_size: 64 threads: 1 }
)pb";

std::string TempDir(const std::string& name) { return testing::TestTempDir(name); }

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Validates (as the CLI does) and creates.
absl::StatusOr<std::unique_ptr<train::Trainer>> CreateTrainer(
    const Recipe& recipe, const train::TrainerOptions& options) {
  PACT_ASSIGN_OR_RETURN(ValidatedRecipe validated, ValidateRecipe(recipe));
  return train::Trainer::Create(validated, options);
}

absl::StatusOr<train::RunOutcome> Train(const Recipe& recipe, const std::string& dir,
                                        const std::string& resume = "", int64_t max_steps = 0,
                                        bool overwrite = false) {
  train::TrainerOptions options;
  options.output_dir = dir;
  options.resume = resume;
  options.max_steps = max_steps;
  options.overwrite = overwrite;
  auto trainer = CreateTrainer(recipe, options);
  if (!trainer.ok()) return trainer.status();
  return (*trainer)->Run();
}

TEST(TrainTest, TrainsAndWritesMetricsAndCheckpoints) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string dir = TempDir("e2e");
  train::TrainerOptions options;
  options.output_dir = dir;
  PACT_ASSERT_OK_AND_ASSIGN(auto trainer, CreateTrainer(recipe, options));
  PACT_ASSERT_OK_AND_ASSIGN(train::RunOutcome outcome, trainer->Run());
  EXPECT_EQ(outcome, train::RunOutcome::kFinished);
  const auto& history = trainer->history();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_LT(history[2].train_loss(), history[0].train_loss());
  EXPECT_GT(history[2].eval_top1(), 50.0);  // the synthetic classes are easy
  EXPECT_DOUBLE_EQ(history[0].lr(), 2e-3);
  EXPECT_DOUBLE_EQ(history[2].lr(), 1e-3);
  EXPECT_EQ(history[0].alphas_size(), 3);

  const auto csv = Lines(dir + "/metrics.csv");
  ASSERT_EQ(csv.size(), 4u);
  const size_t columns = std::vector<std::string>(absl::StrSplit(csv[0], ',')).size();
  EXPECT_EQ(columns, 13u);  // 10 metrics + 3 alphas
  EXPECT_THAT(csv[0], HasSubstr("epoch,lr,quantized,train_loss,train_top1,eval_loss"));
  for (size_t i = 1; i < csv.size(); ++i) {
    EXPECT_EQ(std::vector<std::string>(absl::StrSplit(csv[i], ',')).size(), columns) << csv[i];
  }
  const auto jsonl = Lines(dir + "/metrics.jsonl");
  ASSERT_EQ(jsonl.size(), 3u);
  EXPECT_THAT(jsonl[2], HasSubstr("{\"epoch\":2,"));
  EXPECT_THAT(jsonl[2], HasSubstr("\"alphas\":{"));
  EXPECT_THAT(jsonl[2], HasSubstr("\"act1\":"));
  for (const char* file : {"/checkpoints/last.pt", "/checkpoints/best.pt",
                           "/checkpoints/last_state_dict.pt", "/recipe.pbtxt"}) {
    EXPECT_TRUE(fs::exists(dir + file)) << file;
  }
  PACT_ASSERT_OK_AND_ASSIGN(ValidatedRecipe resolved, LoadRecipe(dir + "/recipe.pbtxt", ""));
  EXPECT_EQ(resolved->name(), "tiny");
}

// Parameters and buffers of the model in a checkpoint.
std::vector<std::pair<std::string, torch::Tensor>> CheckpointTensors(const Recipe& recipe,
                                                                     const std::string& path) {
  auto components = train::BuildComponents(recipe);
  EXPECT_TRUE(components.ok()) << components.status();
  train::TrainingProgress progress;
  const absl::Status status = train::LoadCheckpoint(
      path, *components->model, *components->optimizer->torch_optimizer, &progress);
  EXPECT_TRUE(status.ok()) << status;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : components->model->named_parameters()) {
    tensors.emplace_back(item.key(), item.value().clone());
  }
  for (const auto& item : components->model->named_buffers()) {
    tensors.emplace_back(item.key(), item.value().clone());
  }
  return tensors;
}

TEST(TrainTest, InterruptedAndResumedRunIsBitIdentical) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string straight = TempDir("straight");
  const std::string resumed = TempDir("resumed");
  PACT_ASSERT_OK(Train(recipe, straight));
  // Stop in the middle of epoch 1 (8 steps per epoch), then again at an epoch boundary.
  PACT_ASSERT_OK_AND_ASSIGN(train::RunOutcome first, Train(recipe, resumed, "", 11));
  EXPECT_EQ(first, train::RunOutcome::kStopped);
  PACT_ASSERT_OK_AND_ASSIGN(train::RunOutcome second, Train(recipe, resumed, resumed, 5));
  EXPECT_EQ(second, train::RunOutcome::kStopped);
  PACT_ASSERT_OK_AND_ASSIGN(train::RunOutcome third, Train(recipe, resumed, resumed));
  EXPECT_EQ(third, train::RunOutcome::kFinished);

  const auto a = CheckpointTensors(recipe, straight + "/checkpoints/last.pt");
  const auto b = CheckpointTensors(recipe, resumed + "/checkpoints/last.pt");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first << " differs";
  }
  // One metrics row per epoch, equal to the uninterrupted run's (times aside).
  const auto rows_a = Lines(straight + "/metrics.csv");
  const auto rows_b = Lines(resumed + "/metrics.csv");
  ASSERT_EQ(rows_a.size(), rows_b.size());
  for (size_t i = 1; i < rows_a.size(); ++i) {
    const std::vector<std::string> fa = absl::StrSplit(rows_a[i], ',');
    const std::vector<std::string> fb = absl::StrSplit(rows_b[i], ',');
    for (size_t f = 0; f < fa.size(); ++f) {
      if (f == 8 || f == 9) continue;  // seconds, images/s
      EXPECT_EQ(fa[f], fb[f]) << "row " << i << " column " << f;
    }
  }
}

// Every file of `dir` with its bytes.
std::map<std::string, std::string> FolderContents(const std::string& dir) {
  std::map<std::string, std::string> contents;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    absl::StatusOr<std::string> bytes = ReadFile(entry.path().string());
    contents[entry.path().string()] = bytes.ok() ? *bytes : "<unreadable>";
  }
  return contents;
}

TEST(TrainTest, RefusesToClobberARunFolderAndChangesNothingInIt) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string dir = TempDir("clobber");
  PACT_ASSERT_OK(Train(recipe, dir, "", 11));
  const auto before = FolderContents(dir);
  const auto result = Train(recipe, dir);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("--resume=" + dir));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("--overwrite"));
  EXPECT_EQ(FolderContents(dir), before);
}

TEST(TrainTest, OverwriteStartsTheFolderOver) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string straight = TempDir("overwrite_straight");
  const std::string dir = TempDir("overwrite");
  PACT_ASSERT_OK(Train(recipe, straight));
  PACT_ASSERT_OK(Train(recipe, dir, "", 11));
  PACT_ASSERT_OK_AND_ASSIGN(train::RunOutcome outcome, Train(recipe, dir, "", 0, true));
  EXPECT_EQ(outcome, train::RunOutcome::kFinished);
  EXPECT_EQ(Lines(dir + "/metrics.jsonl").size(), 3u);
  const auto a = CheckpointTensors(recipe, straight + "/checkpoints/last.pt");
  const auto b = CheckpointTensors(recipe, dir + "/checkpoints/last.pt");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));
}

// Rewrites `from` (a current checkpoint) as `to` in checkpoint format 1: the progress as ten
// loose meta.* values, as builds before run_state.proto wrote it.
void WriteFormat1Checkpoint(const Recipe& recipe, const std::string& from, const std::string& to) {
  auto c = train::BuildComponents(recipe);
  ASSERT_TRUE(c.ok()) << c.status();
  train::TrainingProgress p;
  PACT_ASSERT_OK(train::LoadCheckpoint(from, *c->model, *c->optimizer->torch_optimizer, &p));
  torch::serialize::InputArchive in;
  in.load_from(from);
  torch::Tensor rng;
  in.read("meta.cpu_rng_state", rng);
  torch::serialize::OutputArchive out;
  for (const auto& item : c->model->named_parameters())
    out.write("model." + item.key(), item.value());
  for (const auto& item : c->model->named_buffers()) {
    out.write("model." + item.key(), item.value(), /*is_buffer=*/true);
  }
  torch::serialize::OutputArchive optimizer;
  c->optimizer->torch_optimizer->save(optimizer);
  out.write("optimizer", optimizer);
  out.write("meta.format_version", c10::IValue(int64_t{1}));
  out.write("meta.epoch", c10::IValue(p.epoch()));
  out.write("meta.step_in_epoch", c10::IValue(p.step_in_epoch()));
  out.write("meta.global_step", c10::IValue(p.global_step()));
  out.write("meta.best_top1", c10::IValue(p.best_top1()));
  out.write("meta.best_epoch", c10::IValue(p.best_epoch()));
  out.write("meta.partial_loss_sum", c10::IValue(p.partial_loss_sum()));
  out.write("meta.partial_correct", c10::IValue(p.partial_correct()));
  out.write("meta.partial_seen", c10::IValue(p.partial_seen()));
  out.write("meta.partial_seconds", c10::IValue(p.partial_seconds()));
  out.write("meta.recipe", c10::IValue(p.recipe_text()));
  out.write("meta.cpu_rng_state", rng);
  out.save_to(to);
}

TEST(TrainTest, ResumesAFormat1CheckpointBitIdentically) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string straight = TempDir("format1_straight");
  const std::string dir = TempDir("format1");
  PACT_ASSERT_OK(Train(recipe, straight));
  PACT_ASSERT_OK(Train(recipe, dir, "", 11));  // stops mid-epoch 1
  const std::string old = dir + "/checkpoints/format1.pt";
  WriteFormat1Checkpoint(recipe, dir + "/checkpoints/last.pt", old);
  PACT_ASSERT_OK_AND_ASSIGN(train::RunOutcome outcome, Train(recipe, dir, old));
  EXPECT_EQ(outcome, train::RunOutcome::kFinished);
  const auto a = CheckpointTensors(recipe, straight + "/checkpoints/last.pt");
  const auto b = CheckpointTensors(recipe, dir + "/checkpoints/last.pt");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));
}

TEST(TrainTest, ACheckpointOfAnUnknownFormatNamesBothVersions) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string dir = TempDir("format_future");
  torch::serialize::OutputArchive out;
  out.write("meta.format_version", c10::IValue(int64_t{train::kCheckpointFormatVersion + 1}));
  out.save_to(dir + "/future.pt");
  const auto result = Train(recipe, TempDir("format_future_out"), dir + "/future.pt");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(result.status().message()),
      HasSubstr(absl::StrCat("written by format ", train::kCheckpointFormatVersion + 1,
                             "; this build reads formats 1 to ", train::kCheckpointFormatVersion)));
}

TEST(TrainTest, WarmupTrainsUnquantizedThenSwitchesOn) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  recipe.mutable_quantization()->set_quant_warmup_epochs(2);
  train::TrainerOptions options;
  options.output_dir = TempDir("warmup");
  PACT_ASSERT_OK_AND_ASSIGN(auto trainer, CreateTrainer(recipe, options));
  PACT_ASSERT_OK(trainer->Run());
  const auto& history = trainer->history();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_FALSE(history[0].quantized());
  EXPECT_FALSE(history[1].quantized());
  EXPECT_TRUE(history[2].quantized());
}

TEST(TrainTest, AlphaPenaltyAddsExactlyLambdaTimesAlphaToTheGradient) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(recipe));
  ASSERT_EQ(c.alphas.size(), 3u);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < c.alphas.size(); ++i) c.alphas[i].fill_(1.5 + i);
  }
  const torch::Tensor images = torch::randn({8, 1, 28, 28});
  const torch::Tensor labels = torch::randint(10, {8}, torch::kLong);
  auto alpha_grads = [&](double lambda) {
    c.model->zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(c.model->forward(images), labels);
    const torch::Tensor penalty = train::AlphaPenalty(c.alphas, lambda);
    if (penalty.defined()) loss = loss + penalty;
    loss.backward();
    std::vector<double> grads;
    for (const auto& alpha : c.alphas) grads.push_back(alpha.grad().item<double>());
    return grads;
  };
  c.model->eval();  // BN statistics must not move between the two passes
  const auto without = alpha_grads(0.0);
  const double lambda = 0.01;
  const auto with = alpha_grads(lambda);
  for (size_t i = 0; i < c.alphas.size(); ++i) {
    EXPECT_NEAR(with[i] - without[i], lambda * c.alphas[i].item<double>(), 1e-7) << i;
  }
  EXPECT_FALSE(train::AlphaPenalty(c.alphas, 0.0).defined());
  // Unset: the built optimizer's weight decay, whatever the optimizer is.
  EXPECT_DOUBLE_EQ(train::LambdaAlpha(recipe.quantization(), *c.optimizer), 1e-4);
  Recipe explicit_lambda = recipe;
  explicit_lambda.mutable_quantization()->set_lambda_alpha(0.5);
  EXPECT_DOUBLE_EQ(train::LambdaAlpha(explicit_lambda.quantization(), *c.optimizer), 0.5);
}

TEST(TrainTest, AlphasGetNoOptimizerWeightDecay) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(recipe));
  const auto& groups = c.optimizer->torch_optimizer->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_EQ(groups[1].params().size(), c.alphas.size());
  for (size_t i = 0; i < c.alphas.size(); ++i) {
    EXPECT_TRUE(groups[1].params()[i].is_same(c.alphas[i]));
  }
}

TEST(TrainTest, DivergingLossStopsWithAClearMessageAndKeepsTheCheckpoint) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::string dir = TempDir("nan");
  PACT_ASSERT_OK(Train(recipe, dir, "", 8));  // one good epoch and its checkpoint
  const auto good_size = fs::file_size(dir + "/checkpoints/last.pt");
  recipe.mutable_optimizer()->mutable_adam()->set_lr(1e30);
  const auto result = Train(recipe, dir, dir);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("loss became"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("last.pt"));
  EXPECT_EQ(fs::file_size(dir + "/checkpoints/last.pt"), good_size);
}

TEST(TrainTest, AverageQuantizerStateAveragesOnlyWhatTheQuantizersOwnAndKeepsEqualValues) {
  const Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(recipe));
  std::map<std::string, torch::Tensor> before;
  for (const auto& item : c.model->named_parameters()) before[item.key()] = item.value().clone();
  // Three ranks that agree: the mean is the value, bit for bit.
  PACT_ASSERT_OK(train::AverageQuantizerState(*c.model, 3, [](std::vector<double>* values) {
    for (double& v : *values) v = v + v + v;
    return absl::OkStatus();
  }));
  for (const auto& item : c.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), before[item.key()])) << item.key();
  }
  // Two ranks that disagree on the quantizer state only (the other rank's is 2 higher).
  int values_seen = 0;
  PACT_ASSERT_OK(train::AverageQuantizerState(*c.model, 2, [&](std::vector<double>* values) {
    values_seen = static_cast<int>(values->size());
    for (double& v : *values) v = v + (v + 2.0);
    return absl::OkStatus();
  }));
  EXPECT_EQ(values_seen, 3);  // the three alphas
  for (const auto& item : c.model->named_parameters()) {
    if (absl::EndsWith(item.key(), ".alpha")) {
      EXPECT_EQ(item.value().item<float>(), before[item.key()].item<float>() + 1.0f) << item.key();
    } else {
      EXPECT_TRUE(torch::equal(item.value(), before[item.key()])) << item.key();
    }
  }
  // One process: nothing to do, and the collective is not called.
  PACT_ASSERT_OK(train::AverageQuantizerState(
      *c.model, 1, [](std::vector<double>*) { return absl::InternalError("called"); }));
}

TEST(TrainTest, DatasetThatDoesNotFitTheModelIsRejected) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  recipe.mutable_train_data()->mutable_synthetic()->set_channels(3);
  train::TrainerOptions options;
  options.output_dir = TempDir("mismatch");
  const auto trainer = CreateTrainer(recipe, options);
  EXPECT_THAT(std::string(trainer.status().message()),
              HasSubstr("train_data: the dataset gives images of shape [3, 28, 28] but the model "
                        "takes [1, 28, 28]"));
}

}  // namespace
}  // namespace pact
