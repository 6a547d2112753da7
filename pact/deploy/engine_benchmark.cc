// Integer engine throughput against LibTorch's FP32 evaluation forward of the same network
// (CIFAR-10 ResNet-20, batch 256, as the trainer evaluates: eval mode, no grad, channels-last
// input). Integer programs come from synthetic-weight W4A4 / W2A2 models with every layer
// quantized (what the FL8 recipe exports: integer from the input codes to the logits).
//
//   bazel run //pact/deploy:engine_benchmark -- --benchmark_repetitions=5 \
//       --benchmark_enable_random_interleaving=true
//
// images/s is items_per_second. The process is set up as the trainer's (malloc keeps large
// blocks, TuneProcessForTraining), so the FP32 figure is the trainer's evaluation forward
// (//tools:train_benchmark's "eval forward" row).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "glog/logging.h"
#include "models/model.h"
#include "models/test_builders.h"
#include "pact/deploy/engine.h"
#include "pact/deploy/int_kernels.h"
#include "pact/deploy/integer_model.h"
#include "pact/train/components.h"
#include "pact/train/trainer.h"

namespace pact::deploy {
namespace {

constexpr int64_t kBatch = 256;

std::shared_ptr<models::Model> ResNet20(const std::string& activation, const std::string& weight,
                                        bool quantize_first_last) {
  torch::manual_seed(1);
  models::BuildContext context;
  context.layers = models::testing::MakeLayerBuilder(activation, weight, quantize_first_last);
  models::ModelSpec spec;
  spec.mutable_resnet20();
  auto model = models::GetModelRegistry().Create(spec, context);
  CHECK(model.ok()) << model.status();
  return *model;
}

torch::Tensor Images() {
  torch::manual_seed(2);
  return torch::randn({kBatch, 3, 32, 32});
}

void BM_Fp32EvalForward(benchmark::State& state) {
  auto model = ResNet20("relu {}", "none {}", false);
  const torch::Tensor images = Images();
  model->train();
  {
    torch::NoGradGuard no_grad;
    model->forward(images);  // BatchNorm statistics off their initial values
  }
  model->eval();
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor logits = model->forward(train::ModelInput(images, torch::kCPU));
    benchmark::DoNotOptimize(logits.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetLabel("LibTorch FP32 (oneDNN), threads " + std::to_string(at::get_num_threads()));
}

void BM_IntegerEval(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  // 0: the best build this CPU runs; 1: generic; 2: avx2.
  const int build = static_cast<int>(state.range(1));
  auto model =
      ResNet20("pact { bits: " + std::to_string(bits) + " alpha_init: 4 }",
               "dorefa { bits: " + std::to_string(bits) + " }", /*quantize_first_last=*/true);
  const torch::Tensor images = Images();
  model->train();
  {
    torch::NoGradGuard no_grad;
    model->forward(images);
  }
  model->eval();
  auto lowered = Lower(*model, "resnet20");
  CHECK(lowered.ok()) << lowered.status();
  auto program = Compile(*lowered);
  CHECK(program.ok()) << program.status();
  const std::string previous = kernels::ActiveIntKernels().name;
  if (build != 0 && !kernels::SetIntKernels(build == 1 ? "generic" : "avx2")) {
    state.SkipWithError("this CPU cannot run that kernel build");
    return;
  }
  for (auto _ : state) {
    auto logits = RunProgram(*program, images);
    CHECK(logits.ok()) << logits.status();
    benchmark::DoNotOptimize(logits->data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetLabel(std::string("W") + std::to_string(bits) + "A" + std::to_string(bits) + " " +
                 kernels::ActiveIntKernels().name);
  CHECK(kernels::SetIntKernels(previous));
}

BENCHMARK(BM_Fp32EvalForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IntegerEval)
    ->ArgNames({"bits", "build"})
    ->Args({4, 0})
    ->Args({2, 0})
    ->Args({4, 1})
    ->Args({4, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace pact::deploy

int main(int argc, char** argv) {
  pact::train::TuneProcessForTraining();
  at::set_num_threads(pact::train::ResolveThreads(0));  // every core, as the trainer
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
