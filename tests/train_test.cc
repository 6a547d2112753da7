// End-to-end training on a tiny synthetic dataset: metrics and checkpoints, bit-exact resume,
// warm-up, the alpha penalty, and the NaN stop.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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

std::string TempDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  fs::remove_all(dir);
  return dir;
}

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
                                        const std::string& resume = "", int64_t max_steps = 0) {
  train::TrainerOptions options;
  options.output_dir = dir;
  options.resume = resume;
  options.max_steps = max_steps;
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
  EXPECT_LT(history[2].train_loss, history[0].train_loss);
  EXPECT_GT(history[2].eval_top1, 50.0);  // the synthetic classes are easy
  EXPECT_DOUBLE_EQ(history[0].lr, 2e-3);
  EXPECT_DOUBLE_EQ(history[2].lr, 1e-3);
  EXPECT_EQ(history[0].alphas.size(), 3u);

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
  EXPECT_THAT(jsonl[2], HasSubstr("\"alphas\":{\"act1\":"));
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

TEST(TrainTest, WarmupTrainsUnquantizedThenSwitchesOn) {
  Recipe recipe = testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  recipe.mutable_quantization()->set_quant_warmup_epochs(2);
  train::TrainerOptions options;
  options.output_dir = TempDir("warmup");
  PACT_ASSERT_OK_AND_ASSIGN(auto trainer, CreateTrainer(recipe, options));
  PACT_ASSERT_OK(trainer->Run());
  const auto& history = trainer->history();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_FALSE(history[0].quantized);
  EXPECT_FALSE(history[1].quantized);
  EXPECT_TRUE(history[2].quantized);
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
  // lambda_alpha unset: the trainer uses the built optimizer's weight decay.
  EXPECT_FALSE(recipe.quantization().has_lambda_alpha());
  EXPECT_DOUBLE_EQ(c.optimizer->weight_decay, 1e-4);
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
