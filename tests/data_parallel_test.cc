// Data-parallel training over 2 real processes (Gloo on 127.0.0.1) against one process:
//  - K steps on 2 ranks give the weights of K steps of one process on the concatenated
//    per-rank batches (same global batch), for one bucket and for many small ones;
//  - with 4-bit PACT + DoReFa every rank holds bit-identical weights and alphas;
//  - the Trainer: sharded evaluation sums, only rank 0 writes, resume with the same world size.
// The model is a BN-free test net registered as "fashion_convnet" (the real one is not linked),
// so no per-rank BatchNorm statistics enter the comparison.
#include "pact/dist/data_parallel.h"

#include <sys/wait.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "datasets/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/fashion_convnet_options.pb.h"
#include "models/model.h"
#include "pact/core/registry.h"
#include "pact/core/status_macros.h"
#include "pact/core/test_util.h"
#include "pact/core/text_proto.h"
#include "pact/core/torch_status.h"
#include "pact/dist/env.h"
#include "pact/dist/process_group.h"
#include "pact/dist/test_workers.h"
#include "pact/recipe/recipe.h"
#include "pact/train/checkpoint.h"
#include "pact/train/components.h"
#include "pact/train/trainer.h"

namespace pact::dist {
namespace {

namespace fs = std::filesystem;
using testing::Workers;

// conv 3x3 (first) -> act -> avgpool 4 -> conv 3x3 -> act -> linear (last): smooth apart from
// the activations, alphas in both activations, no BatchNorm.
class TinyNet : public models::Model {
 public:
  TinyNet(const models::FashionConvNetOptions& options, const quant::LayerBuilder& layers) {
    const int64_t c1 = options.channels1(), c2 = options.channels2();
    conv1_ = register_module("conv1", layers.Conv(torch::nn::Conv2dOptions(1, c1, 3).padding(1),
                                                  quant::LayerPosition::kFirst));
    act1_ = register_module("act1", layers.Activation(quant::LayerPosition::kFirst));
    conv2_ = register_module("conv2", layers.Conv(torch::nn::Conv2dOptions(c1, c2, 3).padding(1),
                                                  quant::LayerPosition::kMiddle));
    act2_ = register_module("act2", layers.Activation(quant::LayerPosition::kMiddle));
    fc_ = register_module("fc",
                          layers.Linear(torch::nn::LinearOptions(c2 * 7 * 7, options.num_classes()),
                                        quant::LayerPosition::kLast));
  }
  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor x = act1_->forward(conv1_->forward(images));
    x = torch::avg_pool2d(x, 4);
    x = act2_->forward(conv2_->forward(x));
    return fc_->forward(x.flatten(1));
  }
  std::vector<int64_t> input_shape() const override { return {1, 28, 28}; }
  int64_t num_classes() const override { return 10; }

 private:
  quant::QuantConv2d conv1_{nullptr}, conv2_{nullptr};
  quant::QuantLinear fc_{nullptr};
  std::shared_ptr<quant::ActivationModule> act1_, act2_;
};

absl::StatusOr<std::shared_ptr<models::Model>> BuildTinyNet(
    const models::FashionConvNetOptions& options, const models::BuildContext& context) {
  return TorchCall("building the test net", [&]() -> std::shared_ptr<models::Model> {
    return std::make_shared<TinyNet>(options, *context.layers);
  });
}

// 256 training images: 8 global batches of 32 (16 per rank) per epoch. 101 eval images: the
// shards differ in size (51 + 50) and the last batches are partial.
constexpr char kRecipe[] = R"pb(
  name: "dp"
  seed: 5
  model { fashion_convnet { channels1: 4 channels2: 8 } }
  train_data {
    split: SPLIT_TRAIN
    workers: 0
    synthetic { num_examples: 256 channels: 1 height: 28 width: 28 num_classes: 10 }
  }
  eval_data {
    split: SPLIT_TEST
    workers: 0
    synthetic { num_examples: 101 channels: 1 height: 28 width: 28 num_classes: 10 }
  }
  optimizer { sgd { lr: 0.05 momentum: 0.9 weight_decay: 5e-4 } }
  quantization {
    activation { pact { bits: 0 alpha_init: 1.5 } }
    weight { none {} }
  }
  train { epochs: 2 batch_size: 32 eval_batch_size: 16 threads: 1 }
)pb";

// The same with 4-bit PACT activations (`pact_options` added to them) and 4-bit DoReFa
// weights.
std::string QuantizedRecipe(const std::string& pact_options = "") {
  std::string text = kRecipe;
  const std::string from =
      "activation { pact { bits: 0 alpha_init: 1.5 } }\n    weight { none {} }";
  text.replace(text.find(from), from.size(),
               absl::StrCat("activation { pact { bits: 4 alpha_init: 1.5 ", pact_options,
                            " } }\n    weight { dorefa { bits: 4 } }"));
  return text;
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  int64_t value = fallback;
  if (!Env(name).empty()) (void)absl::SimpleAtoi(Env(name), &value);
  return value;
}

absl::StatusOr<std::shared_ptr<ProcessGroup>> Connect() {
  absl::StatusOr<DistEnv> env = ReadDistEnv();
  if (!env.ok()) return env.status();
  GroupOptions options;
  options.timeout = absl::Seconds(30);
  return ProcessGroup::Connect(*env, options);
}

std::vector<torch::Tensor> Parameters(train::Components& c) {
  std::vector<torch::Tensor> values;
  for (const torch::Tensor& p : c.model->parameters()) values.push_back(p.detach().clone());
  return values;
}

// Role "steps": PACT_TEST_STEPS training steps of the Trainer's TrainStep with gradient
// averaging; saves the parameters to <dir>/params.<rank>.pt and the bucket counts to
// <dir>/buckets.<rank>.
absl::Status RunSteps() {
  at::set_num_threads(1);
  Recipe recipe;
  PACT_RETURN_IF_ERROR(ParseTextProto(Env("PACT_TEST_RECIPE"), "recipe", &recipe));
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<ProcessGroup> group, Connect());
  PACT_ASSIGN_OR_RETURN(train::Components c, train::BuildComponents(recipe));
  PACT_ASSIGN_OR_RETURN(
      std::unique_ptr<DataParallel> dp,
      DataParallel::Create(group, c.model, EnvInt("PACT_TEST_BUCKET_BYTES", kDefaultBucketBytes)));
  c.after_backward = [&dp] { return dp->AverageGradients(); };
  PACT_ASSIGN_OR_RETURN(auto dataset, train::BuildDataset(recipe.train_data()));
  datasets::LoaderOptions options =
      datasets::LoaderOptions::Train(recipe.train().batch_size() / group->size(), 0, recipe.seed());
  options.num_shards = group->size();
  options.shard_index = group->rank();
  PACT_ASSIGN_OR_RETURN(auto loader, datasets::DataLoader::Create(dataset, options));
  const int64_t steps = EnvInt("PACT_TEST_STEPS", 1);
  int started_early = 0;
  datasets::Batch batch;
  for (int64_t step = 0, epoch = 0; step < steps; ++epoch) {
    loader->StartEpoch(epoch);
    for (; step < steps && loader->Next(&batch); ++step) {
      PACT_RETURN_IF_ERROR(TorchCall("step", [&] {
        return train::TrainStep(c, train::LambdaAlpha(recipe.quantization(), *c.optimizer),
                                batch.images, batch.labels)
            .status();
      }));
      if (step == 0) {  // as the Trainer does after its first step
        PACT_RETURN_IF_ERROR(
            train::AverageQuantizerState(*c.model, group->size(), [&](std::vector<double>* values) {
              return group->AllReduceSum(values, "averaging the quantizer state");
            }));
      }
      started_early = std::max(started_early, dp->reducer().started_during_backward());
    }
  }
  const std::string dir = Env("PACT_TEST_DIR");
  PACT_RETURN_IF_ERROR(TorchCall("save", [&] {
    torch::save(Parameters(c), absl::StrCat(dir, "/params.", group->rank(), ".pt"));
  }));
  std::ofstream(absl::StrCat(dir, "/buckets.", group->rank()))
      << dp->reducer().num_buckets() << " " << started_early;
  return group->Barrier("end");
}

// Role "trainer": the Trainer on this rank, outputs in <dir>/out.<rank> (PACT_TEST_RESUME and
// PACT_TEST_MAX_STEPS as TrainerOptions); each epoch's metrics go to <dir>/history.<rank>.
absl::Status RunTrainer() {
  Recipe recipe;
  PACT_RETURN_IF_ERROR(ParseTextProto(Env("PACT_TEST_RECIPE"), "recipe", &recipe));
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<ProcessGroup> group, Connect());
  const std::string dir = Env("PACT_TEST_DIR");
  train::TrainerOptions options;
  options.output_dir = absl::StrCat(dir, "/out.", group->rank());
  options.resume = Env("PACT_TEST_RESUME");
  options.max_steps = EnvInt("PACT_TEST_MAX_STEPS", 0);
  PACT_ASSIGN_OR_RETURN(options.collectives, GroupCollectives(group));
  PACT_ASSIGN_OR_RETURN(ValidatedRecipe validated, ValidateRecipe(recipe));
  PACT_ASSIGN_OR_RETURN(auto trainer, train::Trainer::Create(validated, options));
  PACT_ASSIGN_OR_RETURN(train::RunOutcome outcome, trainer->Run());
  (void)outcome;
  std::ofstream history(absl::StrCat(dir, "/history.", group->rank()));
  for (const train::EpochMetrics& m : trainer->history()) {
    history << absl::StrFormat("%d %.17g %.17g %.17g %.17g %.17g\n", m.epoch(), m.train_loss(),
                               m.train_top1(), m.eval_loss(), m.eval_top1(), m.eval_top5());
  }
  return group->Barrier("end");
}

std::vector<torch::Tensor> LoadParameters(const std::string& path) {
  std::vector<torch::Tensor> values;
  torch::load(values, path);
  return values;
}

// What one process computes for `steps` steps on the concatenation of the 2 ranks' batches.
std::vector<torch::Tensor> OneProcessOnConcatenatedBatches(const Recipe& recipe, int64_t steps) {
  at::set_num_threads(1);
  auto c = train::BuildComponents(recipe);
  EXPECT_TRUE(c.ok()) << c.status();
  auto dataset = train::BuildDataset(recipe.train_data());
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  std::vector<std::unique_ptr<datasets::DataLoader>> shards;
  for (int rank = 0; rank < 2; ++rank) {
    datasets::LoaderOptions options =
        datasets::LoaderOptions::Train(recipe.train().batch_size() / 2, 0, recipe.seed());
    options.num_shards = 2;
    options.shard_index = rank;
    shards.push_back(*datasets::DataLoader::Create(*dataset, options));
  }
  datasets::Batch a, b;
  for (int64_t step = 0, epoch = 0; step < steps; ++epoch) {
    for (auto& shard : shards) shard->StartEpoch(epoch);
    for (; step < steps && shards[0]->Next(&a) && shards[1]->Next(&b); ++step) {
      auto result =
          train::TrainStep(*c, train::LambdaAlpha(recipe.quantization(), *c->optimizer),
                           torch::cat({a.images, b.images}), torch::cat({a.labels, b.labels}));
      EXPECT_TRUE(result.ok()) << result.status();
    }
  }
  return Parameters(*c);
}

class GradientAveragingTest : public ::testing::TestWithParam<int64_t> {};

// Float tolerance: the two runs differ only in summation order (a batch-16 mean on each rank
// then a sum of 2, against one batch-32 mean; oneDNN may also block a batch of 16 differently
// from one of 32). Each is a float32 rounding difference of a few ulp (~1e-7 relative) in a
// gradient; through 10 steps of lr 0.05 with momentum 0.9 that stays around 1e-7 absolute on
// weights of size ~0.1-1 (1.5e-7 measured). The bound, 1e-5 absolute and below 1% of how far
// training moved each parameter tensor, leaves ~50x margin while a wrong average (a sum, one
// rank's gradient, a stale bucket) moves weights by a sizeable fraction of their movement.
TEST_P(GradientAveragingTest, TwoProcessesMatchOneProcessOnTheGlobalBatch) {
  const int64_t bucket_bytes = GetParam();
  const std::string dir = ::pact::testing::TestTempDir(absl::StrCat("steps_", bucket_bytes));
  constexpr int kSteps = 10;  // crosses an epoch boundary (8 steps per epoch)
  PACT_ASSERT_OK_AND_ASSIGN(
      Workers workers, Workers::Start("steps", 2,
                                      {{"PACT_TEST_RECIPE", kRecipe},
                                       {"PACT_TEST_DIR", dir},
                                       {"PACT_TEST_STEPS", std::to_string(kSteps)},
                                       {"PACT_TEST_BUCKET_BYTES", std::to_string(bucket_bytes)}},
                                      dir));
  const Recipe recipe = pact::testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  const std::vector<torch::Tensor> single = OneProcessOnConcatenatedBatches(recipe, kSteps);
  PACT_ASSERT_OK(workers.WaitAllOk(absl::Seconds(50)));

  const std::vector<torch::Tensor> rank0 = LoadParameters(dir + "/params.0.pt");
  const std::vector<torch::Tensor> rank1 = LoadParameters(dir + "/params.1.pt");
  auto initial = train::BuildComponents(recipe);
  ASSERT_TRUE(initial.ok());
  const std::vector<torch::Tensor> start = Parameters(*initial);
  ASSERT_EQ(rank0.size(), single.size());
  ASSERT_EQ(rank1.size(), single.size());
  double max_difference = 0;
  for (size_t i = 0; i < single.size(); ++i) {
    EXPECT_TRUE(torch::equal(rank0[i], rank1[i])) << "parameter " << i << " differs between ranks";
    const double difference = (rank0[i] - single[i]).abs().max().item<double>();
    const double movement = (single[i] - start[i]).abs().max().item<double>();
    EXPECT_LT(difference, 1e-5) << "parameter " << i;
    EXPECT_LT(difference, 0.01 * movement) << "parameter " << i;
    max_difference = std::max(max_difference, difference);
  }
  std::cerr << "bucket " << bucket_bytes << " B: max |2 processes - 1 process| = " << max_difference
            << "\n";

  std::ifstream buckets(dir + "/buckets.0");
  int num_buckets = 0, started_early = 0;
  buckets >> num_buckets >> started_early;
  std::cerr << num_buckets << " buckets, " << started_early << " started during backward\n";
  if (bucket_bytes < 1024) {
    // The three weights get a bucket each, alphas and biases share the rest; buckets start
    // while backward still runs.
    EXPECT_GE(num_buckets, 4);
    EXPECT_GE(started_early, num_buckets - 2);
  } else {
    EXPECT_EQ(num_buckets, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(BucketSizes, GradientAveragingTest,
                         ::testing::Values(kDefaultBucketBytes, int64_t{256}));

class RankAgreementTest : public ::testing::TestWithParam<std::string> {};

// Also with alphas that each rank initializes from its own shard of the first batch
// (alpha_init_percentile): AverageQuantizerState gives every rank their mean after the first
// step.
TEST_P(RankAgreementTest, QuantizedWeightsAndAlphasStayIdenticalOnEveryRank) {
  const std::string dir = ::pact::testing::TestTempDir("quantized");
  PACT_ASSERT_OK_AND_ASSIGN(Workers workers,
                            Workers::Start("steps", 2,
                                           {{"PACT_TEST_RECIPE", QuantizedRecipe(GetParam())},
                                            {"PACT_TEST_DIR", dir},
                                            {"PACT_TEST_STEPS", "12"},
                                            {"PACT_TEST_BUCKET_BYTES", "4096"}},
                                           dir));
  PACT_ASSERT_OK(workers.WaitAllOk(absl::Seconds(50)));
  const std::vector<torch::Tensor> rank0 = LoadParameters(dir + "/params.0.pt");
  const std::vector<torch::Tensor> rank1 = LoadParameters(dir + "/params.1.pt");
  ASSERT_EQ(rank0.size(), rank1.size());
  int alphas = 0;
  for (size_t i = 0; i < rank0.size(); ++i) {
    EXPECT_TRUE(torch::equal(rank0[i], rank1[i])) << "parameter " << i << " differs between ranks";
    if (rank0[i].numel() == 1) {  // a PACT alpha: trained away from its initial 1.5
      ++alphas;
      EXPECT_NE(rank0[i].item<float>(), 1.5f);
    }
  }
  EXPECT_EQ(alphas, 2);
}

INSTANTIATE_TEST_SUITE_P(AlphaInit, RankAgreementTest,
                         ::testing::Values("", "alpha_init_percentile: 99"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.empty() ? "AlphaInit" : "Percentile";
                         });

struct Row {
  double train_loss, train_top1, eval_loss, eval_top1, eval_top5;
};

std::vector<Row> ReadHistory(const std::string& path) {
  std::ifstream in(path);
  std::vector<Row> rows;
  int epoch;
  Row row;
  while (in >> epoch >> row.train_loss >> row.train_top1 >> row.eval_loss >> row.eval_top1 >>
         row.eval_top5) {
    rows.push_back(row);
  }
  return rows;
}

// The full eval set in one process with the weights of `checkpoint`.
train::EvalSums EvaluateCheckpoint(const Recipe& recipe, const std::string& checkpoint) {
  auto c = train::BuildComponents(recipe);
  EXPECT_TRUE(c.ok());
  train::TrainingProgress progress;
  PACT_EXPECT_OK(
      train::LoadCheckpoint(checkpoint, *c->model, *c->optimizer->torch_optimizer, &progress));
  auto dataset = train::BuildDataset(recipe.eval_data());
  auto loader = datasets::DataLoader::Create(*dataset, datasets::LoaderOptions::Eval(101, 0));
  train::EvalSums sums;
  c->model->eval();
  torch::NoGradGuard no_grad;
  (*loader)->StartEpoch(0);
  datasets::Batch batch;
  while ((*loader)->Next(&batch))
    train::EvalStep(*c->model, c->device, batch.images, batch.labels, sums);
  return sums;
}

TEST(DataParallelTest, TrainerSumsShardedEvaluationAndOnlyRankZeroWrites) {
  const std::string dir = ::pact::testing::TestTempDir("trainer");
  // A small learning rate keeps the net mediocre, so top-1 and the loss depend on which
  // examples are counted.
  std::string text = kRecipe;
  text.replace(text.find("lr: 0.05"), 8, "lr: 0.002");
  PACT_ASSERT_OK_AND_ASSIGN(
      Workers workers,
      Workers::Start("trainer", 2, {{"PACT_TEST_RECIPE", text}, {"PACT_TEST_DIR", dir}}, dir));
  PACT_ASSERT_OK(workers.WaitAllOk(absl::Seconds(50)));

  // Rank 0 wrote every output; rank 1 wrote nothing at all.
  for (const char* file : {"/metrics.csv", "/metrics.jsonl", "/recipe.pbtxt", "/curves.png",
                           "/checkpoints/last.pt", "/checkpoints/last_state_dict.pt"}) {
    EXPECT_TRUE(fs::exists(dir + "/out.0" + file)) << file;
  }
  bool events = false;
  for (const auto& entry : fs::directory_iterator(dir + "/out.0")) {
    events = events || entry.path().filename().string().rfind("events.out.tfevents", 0) == 0;
  }
  EXPECT_TRUE(events);
  EXPECT_FALSE(fs::exists(dir + "/out.1"));

  // Both ranks report the same global metrics.
  const std::vector<Row> rank0 = ReadHistory(dir + "/history.0");
  const std::vector<Row> rank1 = ReadHistory(dir + "/history.1");
  ASSERT_EQ(rank0.size(), 2u);
  ASSERT_EQ(rank1.size(), 2u);
  EXPECT_EQ(rank0[1].eval_loss, rank1[1].eval_loss);
  EXPECT_EQ(rank0[1].train_loss, rank1[1].train_loss);

  // The final evaluation counts all 101 examples once: one process evaluating the final
  // weights gets the same numbers.
  const Recipe recipe = pact::testing::ParseTextProtoOrDie<Recipe>(text);
  const train::EvalSums sums = EvaluateCheckpoint(recipe, dir + "/out.0/checkpoints/last.pt");
  ASSERT_EQ(sums.seen, 101);
  EXPECT_DOUBLE_EQ(rank0[1].eval_top1, 100.0 * sums.top1 / 101);
  EXPECT_DOUBLE_EQ(rank0[1].eval_top5, 100.0 * sums.top5 / 101);
  EXPECT_NEAR(rank0[1].eval_loss, sums.loss_sum / 101, 1e-6 * sums.loss_sum / 101);
  EXPECT_GT(rank0[1].eval_top1, 5.0);
  EXPECT_LT(rank0[1].eval_top1, 95.0);
}

TEST(DataParallelTest, ResumeWithTheSameWorldSizeIsBitIdentical) {
  const std::string straight = ::pact::testing::TestTempDir("straight");
  const std::string resumed = ::pact::testing::TestTempDir("resumed");
  const auto run = [](const std::string& dir, const std::string& resume, int max_steps) {
    auto workers = Workers::Start("trainer", 2,
                                  {{"PACT_TEST_RECIPE", kRecipe},
                                   {"PACT_TEST_DIR", dir},
                                   {"PACT_TEST_RESUME", resume},
                                   {"PACT_TEST_MAX_STEPS", std::to_string(max_steps)}},
                                  dir);
    ASSERT_TRUE(workers.ok());
    PACT_ASSERT_OK(workers->WaitAllOk(absl::Seconds(50)));
  };
  run(straight, "", 0);
  run(resumed, "", 11);  // stops in the middle of epoch 1
  ASSERT_TRUE(fs::exists(resumed + "/out.0/checkpoints/last.pt"));
  run(resumed, resumed + "/out.0", 0);  // every rank reads rank 0's checkpoint

  const Recipe recipe = pact::testing::ParseTextProtoOrDie<Recipe>(kRecipe);
  std::vector<torch::Tensor> a, b;
  for (const auto& [dir, out] : {std::pair{straight, &a}, std::pair{resumed, &b}}) {
    auto c = train::BuildComponents(recipe);
    ASSERT_TRUE(c.ok());
    train::TrainingProgress progress;
    PACT_ASSERT_OK(train::LoadCheckpoint(dir + "/out.0/checkpoints/last.pt", *c->model,
                                         *c->optimizer->torch_optimizer, &progress));
    EXPECT_EQ(progress.epoch(), 2);
    *out = Parameters(*c);
  }
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
}

}  // namespace
}  // namespace pact::dist

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // The test net stands in for "fashion_convnet" in tests and in re-executed ranks alike.
  auto registration = pact::ScopedRegistration<pact::models::ModelRegistry>::Create<
      pact::models::FashionConvNetOptions>(pact::models::GetModelRegistry(), "fashion_convnet",
                                           pact::dist::BuildTinyNet);
  if (!registration.ok()) {
    std::cerr << registration.status() << "\n";
    return 2;
  }
  if (auto role = pact::dist::testing::RoleFromEnvironment()) {
    absl::Status status = absl::InvalidArgumentError("unknown role " + *role);
    if (*role == "steps") status = pact::dist::RunSteps();
    if (*role == "trainer") status = pact::dist::RunTrainer();
    if (!status.ok()) std::cerr << "error: " << status << std::endl;
    return status.ok() ? 0 : 1;
  }
  return RUN_ALL_TESTS();
}
