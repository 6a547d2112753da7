// Fine-tuning and evaluation-only runs end to end on a tiny synthetic dataset: --init-from a
// full-precision run into a quantized recipe, what it reports, the shape check, Python's
// torch.save state dicts, data-initialized alphas, and --evaluate reproducing the trainer's own
// evaluation of a checkpoint exactly without touching the run folder.
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

// 256 learnable 1x28x28 images, 8 steps of 32 per epoch, one thread.
constexpr char kRecipe[] = R"pb(
  name: "tiny"
  seed: 3
  model { fashion_convnet {} }
  train_data {
    split: SPLIT_TRAIN
    workers: 1
    synthetic { num_examples: 256 channels: 1 height: 28 width: 28 num_classes: 10 }
  }
  eval_data {
    split: SPLIT_TEST
    workers: 1
    synthetic { num_examples: 128 channels: 1 height: 28 width: 28 num_classes: 10 }
  }
  optimizer { adam { lr: 2e-3 weight_decay: 1e-4 } }
  train { epochs: 2 batch_size: 32 eval_batch_size: 48 threads: 1 }
)pb";

Recipe FullPrecision() { return testing::ParseTextProtoOrDie<Recipe>(kRecipe); }

Recipe Quantized(const std::string& activation = "pact { bits: 2 }") {
  Recipe recipe = FullPrecision();
  recipe.mutable_quantization()->MergeFrom(testing::ParseTextProtoOrDie<QuantizationSpec>(
      absl::StrCat("activation { ", activation, " } weight { dorefa { bits: 2 } }")));
  return recipe;
}

absl::StatusOr<std::unique_ptr<train::Trainer>> CreateTrainer(
    const Recipe& recipe, const train::TrainerOptions& options) {
  PACT_ASSIGN_OR_RETURN(ValidatedRecipe validated, ValidateRecipe(recipe));
  return train::Trainer::Create(validated, options);
}

absl::StatusOr<std::unique_ptr<train::Trainer>> TrainRun(const Recipe& recipe,
                                                         const std::string& dir,
                                                         const std::string& init_from = "",
                                                         int64_t max_steps = 0) {
  train::TrainerOptions options;
  options.output_dir = dir;
  options.init_from = init_from;
  options.max_steps = max_steps;
  PACT_ASSIGN_OR_RETURN(auto trainer, CreateTrainer(recipe, options));
  PACT_RETURN_IF_ERROR(trainer->Run().status());
  return trainer;
}

absl::StatusOr<train::EpochMetrics> EvaluateOnly(const Recipe& recipe, const std::string& resume,
                                                 const std::string& init_from = "") {
  train::TrainerOptions options;
  options.resume = resume;
  options.init_from = init_from;
  options.evaluate_only = true;
  PACT_ASSIGN_OR_RETURN(auto trainer, CreateTrainer(recipe, options));
  return trainer->Evaluate();
}

std::map<std::string, torch::Tensor> Tensors(torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : model.named_parameters()) tensors[item.key()] = item.value().clone();
  for (const auto& item : model.named_buffers()) tensors[item.key()] = item.value().clone();
  return tensors;
}

std::map<std::string, std::string> FolderContents(const std::string& dir) {
  std::map<std::string, std::string> contents;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    absl::StatusOr<std::string> bytes = ReadFile(entry.path().string());
    contents[entry.path().string()] = bytes.ok() ? *bytes : "<unreadable>";
  }
  return contents;
}

// One full-precision run shared by the tests (2 epochs).
const std::string& FullPrecisionRun() {
  static const std::string* dir = [] {
    auto* d = new std::string(testing::TestTempDir("fp_run"));
    const auto trainer = TrainRun(FullPrecision(), *d);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    return d;
  }();
  return *dir;
}

TEST(EvaluateTest, ReproducesTheTrainersEvaluationOfTheCheckpointExactly) {
  Recipe recipe = Quantized();
  recipe.mutable_train()->set_epochs(3);
  recipe.mutable_quantization()->set_quant_warmup_epochs(1);  // epoch 0 evaluates unquantized
  const std::string dir = testing::TestTempDir("evaluate");
  // Stop after epoch 0 (8 steps): last.pt is that epoch's end, evaluated without quantization.
  PACT_ASSERT_OK_AND_ASSIGN(auto first, TrainRun(recipe, dir, "", 8));
  ASSERT_EQ(first->history().size(), 1u);
  const auto before = FolderContents(dir);
  PACT_ASSERT_OK_AND_ASSIGN(train::EpochMetrics m, EvaluateOnly(recipe, dir));
  EXPECT_EQ(m.epoch(), 0);
  EXPECT_FALSE(m.quantized());
  EXPECT_EQ(m.eval_loss(), first->history()[0].eval_loss());
  EXPECT_EQ(m.eval_top1(), first->history()[0].eval_top1());
  EXPECT_EQ(m.eval_top5(), first->history()[0].eval_top5());
  EXPECT_EQ(FolderContents(dir), before) << "evaluation wrote into the run folder";

  // Finish the run; the last checkpoint's evaluation is the last (quantized) epoch's.
  train::TrainerOptions options;
  options.output_dir = dir;
  options.resume = dir;
  PACT_ASSERT_OK_AND_ASSIGN(auto rest, CreateTrainer(recipe, options));
  PACT_ASSERT_OK(rest->Run().status());
  const train::EpochMetrics& last = rest->history().back();
  PACT_ASSERT_OK_AND_ASSIGN(m, EvaluateOnly(recipe, dir + "/checkpoints/last.pt"));
  EXPECT_EQ(m.epoch(), 2);
  EXPECT_TRUE(m.quantized());
  EXPECT_EQ(m.eval_loss(), last.eval_loss());
  EXPECT_EQ(m.eval_top1(), last.eval_top1());
  EXPECT_EQ(m.eval_top5(), last.eval_top5());
}

TEST(EvaluateTest, AnEvaluationTrainerDoesNotTrain) {
  train::TrainerOptions options;
  options.evaluate_only = true;
  options.init_from = FullPrecisionRun();
  PACT_ASSERT_OK_AND_ASSIGN(auto trainer, CreateTrainer(Quantized(), options));
  EXPECT_EQ(trainer->Run().status().code(), absl::StatusCode::kFailedPrecondition);
  PACT_ASSERT_OK_AND_ASSIGN(train::EpochMetrics m, trainer->Evaluate());
  EXPECT_TRUE(m.quantized());
  EXPECT_GE(m.eval_top1(), 0.0);
}

TEST(InitFromTest, AFullPrecisionRunInitializesAQuantizedModelExceptItsAlphas) {
  const std::string fp = FullPrecisionRun();
  PACT_ASSERT_OK_AND_ASSIGN(train::Components plain, train::BuildComponents(Quantized()));
  PACT_ASSERT_OK_AND_ASSIGN(train::InitReport report, train::LoadMatchingTensors(fp, *plain.model));
  EXPECT_EQ(report.source, fp + "/checkpoints/last.pt");
  EXPECT_THAT(report.missing, ElementsAre("act1.alpha", "act2.alpha", "act3.alpha"));
  EXPECT_THAT(report.unexpected, IsEmpty());
  EXPECT_EQ(report.loaded.size(), Tensors(*plain.model).size() - 3);

  // The weights are the run's last ones; the alphas keep alpha_init.
  PACT_ASSERT_OK_AND_ASSIGN(train::Components fp_model, train::BuildComponents(FullPrecision()));
  PACT_ASSERT_OK(
      train::LoadMatchingTensors(fp + "/checkpoints/last_state_dict.pt", *fp_model.model).status());
  const auto expected = Tensors(*fp_model.model);
  for (const auto& [name, tensor] : Tensors(*plain.model)) {
    if (absl::EndsWith(name, ".alpha")) {
      EXPECT_EQ(tensor.item<float>(), 10.0f) << name;
    } else {
      EXPECT_TRUE(torch::equal(tensor, expected.at(name))) << name;
    }
  }

  // A fine-tuning run starts at epoch 0 from those weights and records where they came from.
  const std::string dir = testing::TestTempDir("finetune");
  PACT_ASSERT_OK_AND_ASSIGN(auto trainer, TrainRun(Quantized(), dir, fp));
  ASSERT_EQ(trainer->history().size(), 2u);
  EXPECT_EQ(trainer->history()[0].epoch(), 0);
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(Quantized()));
  train::TrainingProgress progress;
  PACT_ASSERT_OK(train::LoadCheckpoint(dir + "/checkpoints/last.pt", *c.model,
                                       *c.optimizer->torch_optimizer, &progress));
  EXPECT_EQ(progress.init_from(), fp);
  EXPECT_EQ(progress.epoch(), 2);
}

TEST(InitFromTest, PercentileAlphasStartFromTheFirstTrainingBatch) {
  Recipe recipe = Quantized("pact { bits: 2 alpha_init_percentile: 99 }");
  const std::string dir = testing::TestTempDir("percentile");
  PACT_ASSERT_OK(TrainRun(recipe, dir, FullPrecisionRun(), /*max_steps=*/1).status());
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(recipe));
  PACT_ASSERT_OK(train::LoadMatchingTensors(dir, *c.model).status());
  const auto tensors = Tensors(*c.model);
  for (const char* act : {"act1", "act2", "act3"}) {
    EXPECT_EQ(tensors.at(absl::StrCat(act, ".alpha_initialized")).item<float>(), 1.0f) << act;
    const float alpha = tensors.at(absl::StrCat(act, ".alpha")).item<float>();
    EXPECT_NE(alpha, 10.0f) << act;  // not alpha_init
    EXPECT_GT(alpha, 0.0f) << act;
  }
  // Fine-tuning from a run that has its alphas keeps them: no second initialization.
  PACT_ASSERT_OK_AND_ASSIGN(train::Components again, train::BuildComponents(recipe));
  PACT_ASSERT_OK(train::LoadMatchingTensors(dir, *again.model).status());
  again.model->train();
  again.model->forward(torch::randn({4, 1, 28, 28}) * 100);
  EXPECT_TRUE(torch::equal(Tensors(*again.model).at("act1.alpha"), tensors.at("act1.alpha")));
}

TEST(InitFromTest, ShapeMismatchesAreErrorsNamingEveryTensorAndNothingIsCopied) {
  Recipe recipe = Quantized();
  recipe.mutable_model()->mutable_fashion_convnet()->set_hidden(64);
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(recipe));
  const auto before = Tensors(*c.model);
  const absl::Status status = train::LoadMatchingTensors(FullPrecisionRun(), *c.model).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("fc1.weight is [128, 1568] there but [64, 1568] in this model"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("fc2.weight is [10, 128] there but [10, 64] in this model"));
  for (const auto& [name, tensor] : Tensors(*c.model)) {
    EXPECT_TRUE(torch::equal(tensor, before.at(name))) << name << " was overwritten";
  }
  // Through the trainer the error names the flag.
  train::TrainerOptions options;
  options.output_dir = testing::TestTempDir("mismatch");
  options.init_from = FullPrecisionRun();
  EXPECT_THAT(std::string(CreateTrainer(recipe, options).status().message()),
              HasSubstr("--init-from: "));
}

TEST(InitFromTest, BadSourcesAndFlagCombinationsAreClearErrors) {
  PACT_ASSERT_OK_AND_ASSIGN(train::Components c, train::BuildComponents(Quantized()));
  const std::string dir = testing::TestTempDir("bad_sources");
  EXPECT_EQ(train::LoadMatchingTensors(dir + "/none.pt", *c.model).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(train::LoadMatchingTensors(dir, *c.model).status().message()),
              HasSubstr("a run folder is read through its checkpoints/last.pt"));
  PACT_ASSERT_OK(WriteFileAtomically(dir + "/junk.pt", "not a tensor file"));
  EXPECT_EQ(train::LoadMatchingTensors(dir + "/junk.pt", *c.model).status().code(),
            absl::StatusCode::kDataLoss);
  train::TrainerOptions options;
  options.output_dir = testing::TestTempDir("both");
  options.init_from = FullPrecisionRun();
  options.resume = FullPrecisionRun();
  EXPECT_THAT(std::string(CreateTrainer(Quantized(), options).status().message()),
              HasSubstr("give one of them"));
}

TEST(InitFromTest, ReadsAStateDictSavedByPythonTorchSave) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-torch is not installed";
  }
  const std::string in = FullPrecisionRun() + "/checkpoints/last_state_dict.pt";
  const std::string out = testing::TestTempDir("python") + "/resaved.pt";
  // A real state_dict(): an OrderedDict with _metadata, as torch.save(model.state_dict())
  // writes it.
  const std::string script = absl::StrCat(
      "import torch; sd = torch.nn.Sequential(torch.nn.Linear(2, 2)).state_dict(); sd.clear(); "
      "sd.update((k, v * 1) for k, v in torch.load('",
      in, "').items()); torch.save(sd, '", out, "')");
  ASSERT_EQ(std::system(absl::StrCat("/usr/bin/python3 -c \"", script, "\"").c_str()), 0);
  PACT_ASSERT_OK_AND_ASSIGN(train::Components a, train::BuildComponents(Quantized()));
  PACT_ASSERT_OK_AND_ASSIGN(train::Components b, train::BuildComponents(Quantized()));
  PACT_ASSERT_OK_AND_ASSIGN(train::InitReport from_python,
                            train::LoadMatchingTensors(out, *a.model));
  PACT_ASSERT_OK(train::LoadMatchingTensors(in, *b.model).status());
  EXPECT_EQ(from_python.missing.size(), 3u);
  const auto expected = Tensors(*b.model);
  for (const auto& [name, tensor] : Tensors(*a.model)) {
    EXPECT_TRUE(torch::equal(tensor, expected.at(name))) << name;
  }
}

}  // namespace
}  // namespace pact
