// Fused PACT / DoReFa ops vs the composed pure-autograd reference (reference_ops.h) vs
// torch::relu, forward only (no autograd) and forward + backward (autograd, fixed upstream
// gradient).
//
//   bazel run -c opt //pact/quant:pact_benchmark -- --benchmark_min_time=0.5
//
// Arguments: `shape` indexes the shape lists below, `threads` is at::set_num_threads.
// bytes_per_second counts the same nominal traffic for every implementation, so it compares
// them directly: forward = read x + write y; forward + backward adds read dL/dy + write dL/dx.
// kFusedGeneric runs the fused kernels forced to the baseline (SSE2) build, to show what the
// AVX2 build buys; BM_PactKernelsOnly runs them without autograd.
//
// Allocator: every iteration allocates its outputs afresh. With glibc's defaults, blocks of
// 32 MB and more are mmap'ed and unmapped on free, and a freed heap top above the (adaptive,
// here 16 MB) trim threshold is returned to the OS, so the next iteration page-faults all of it
// back in (several ms per iteration on the development VM: README.md, Benchmarks), and which
// implementation crosses the threshold is luck (fused PACT fwd+bwd holds 16.5 MB at its peak on
// 128x16x32x32, ReLU exactly 16 MB). To measure the ops rather than the page faults the
// benchmark keeps freed memory (mallopt below) for every implementation alike; set
// PACT_BENCHMARK_GLIBC_MALLOC_DEFAULTS=1 to measure with the defaults instead. The fused ops
// take their outputs from their own buffer cache (buffer_cache.h), part of what is measured:
// it keeps their addresses stable from iteration to iteration, which glibc's heap does not.
// On a shared machine compare rows of one run made with --benchmark_repetitions=N
// --benchmark_enable_random_interleaving=true and read the _min aggregates: with another
// process keeping a core busy, every 2-thread parallel region can wait a scheduler slice
// (several ms), for ATen's ops and ours alike, while 1-thread rows stay stable.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "pact/quant/benchmark_util.h"
#include "pact/quant/bn_act_ops.h"
#include "pact/quant/pact_kernels.h"
#include "pact/quant/pact_ops.h"
#include "pact/quant/reference_ops.h"

namespace pact::quant {
namespace {

using bench::ActivationShapes;
using bench::BenchmarkSetup;
using bench::Impl;
using bench::Label;

constexpr int64_t kActivationBits = 4;
constexpr int64_t kWeightBits = 4;
constexpr double kAlphaMin = 1e-3;

// Weight shapes: ResNet-20 (first three) and ResNet-50 layers.
const std::vector<std::vector<int64_t>>& WeightShapes() {
  static const auto* shapes = new std::vector<std::vector<int64_t>>{
      {16, 16, 3, 3},  {32, 32, 3, 3},   {64, 64, 3, 3},   {64, 64, 1, 1},
      {256, 64, 1, 1}, {512, 512, 3, 3}, {2048, 512, 1, 1}};
  return *shapes;
}

torch::Tensor Activation(Impl impl, const torch::Tensor& x, const torch::Tensor& alpha) {
  switch (impl) {
    case Impl::kFused:
    case Impl::kFusedGeneric:
      return Pact(x, alpha, kActivationBits, kAlphaMin);
    case Impl::kReference:
      return ReferencePact(x, alpha, kActivationBits, kAlphaMin);
    case Impl::kRelu:
      return torch::relu(x);
  }
  return {};
}

torch::Tensor Weight(Impl impl, const torch::Tensor& w) {
  return impl == Impl::kReference ? ReferenceDorefaWeight(w, kWeightBits)
                                  : DorefaWeight(w, kWeightBits);
}

template <Impl kImpl>
void BM_PactForward(benchmark::State& state) {
  const BenchmarkSetup setup(state, kImpl);
  const std::vector<int64_t>& shape = ActivationShapes()[state.range(0)];
  const torch::Tensor x = torch::randn(shape) * 3.0;
  const torch::Tensor alpha = torch::full({1}, 4.0f);
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor y = Activation(kImpl, x, alpha);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 2 * x.nbytes());
  state.SetLabel(Label(shape));
}

template <Impl kImpl>
void BM_PactForwardBackward(benchmark::State& state) {
  const BenchmarkSetup setup(state, kImpl);
  const std::vector<int64_t>& shape = ActivationShapes()[state.range(0)];
  torch::Tensor x = (torch::randn(shape) * 3.0).requires_grad_(true);
  torch::Tensor alpha = torch::full({1}, 4.0f).requires_grad_(true);
  const torch::Tensor grad = torch::randn(shape);
  for (auto _ : state) {
    torch::Tensor y = Activation(kImpl, x, alpha);
    y.backward(grad);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
    alpha.mutable_grad().reset();
  }
  state.SetBytesProcessed(state.iterations() * 4 * x.nbytes());
  state.SetLabel(Label(shape));
}

// The fused kernels without autograd: forward with codes, then the backward from them.
void BM_PactKernelsOnly(benchmark::State& state) {
  const BenchmarkSetup setup(state, Impl::kFused);
  const std::vector<int64_t>& shape = ActivationShapes()[state.range(0)];
  const torch::Tensor x = torch::randn(shape) * 3.0;
  const torch::Tensor grad = torch::randn(shape);
  for (auto _ : state) {
    auto [y, codes] = PactForwardWithCodesKernel(x, 4.0, kActivationBits);
    auto [grad_x, grad_alpha] = PactBackwardFromCodesKernel(grad, codes);
    benchmark::DoNotOptimize(grad_x.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 4 * x.nbytes());
  state.SetLabel(Label(shape));
}

template <Impl kImpl>
void BM_DorefaForward(benchmark::State& state) {
  const BenchmarkSetup setup(state, kImpl);
  const std::vector<int64_t>& shape = WeightShapes()[state.range(0)];
  const torch::Tensor w = torch::randn(shape) * 0.1;
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor w_q = Weight(kImpl, w);
    benchmark::DoNotOptimize(w_q.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 2 * w.nbytes());
  state.SetLabel(Label(shape));
}

template <Impl kImpl>
void BM_DorefaForwardBackward(benchmark::State& state) {
  const BenchmarkSetup setup(state, kImpl);
  const std::vector<int64_t>& shape = WeightShapes()[state.range(0)];
  torch::Tensor w = (torch::randn(shape) * 0.1).requires_grad_(true);
  const torch::Tensor grad = torch::randn(shape);
  for (auto _ : state) {
    torch::Tensor w_q = Weight(kImpl, w);
    w_q.backward(grad);
    benchmark::DoNotOptimize(w.grad().data_ptr());
    w.mutable_grad().reset();
  }
  state.SetBytesProcessed(state.iterations() * 4 * w.nbytes());
  state.SetLabel(Label(shape));
}

// BatchNorm2d -> (+ residual) -> PACT/ReLU, forward + backward, fused (bn_act_ops.h) vs the
// composed modules, on ResNet-20's stage-1 shape in channels-last, the layout the trainer uses.
// Arguments: activation (0 = ReLU, 1 = PACT 4-bit), residual (0/1), threads.
template <bool kFused>
void BM_BatchNormActivation(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(2)));
  const bool pact = state.range(0) == 1, residual = state.range(1) == 1;
  const std::vector<int64_t> shape = {128, 16, 32, 32};
  torch::nn::BatchNorm2d bn(shape[1]);
  const torch::Tensor x = (torch::randn(shape) * 2.0 + 0.5)
                              .contiguous(torch::MemoryFormat::ChannelsLast)
                              .requires_grad_(true);
  const torch::Tensor r = residual
                              ? torch::randn(shape).contiguous(torch::MemoryFormat::ChannelsLast)
                              : torch::Tensor();
  const torch::Tensor grad = torch::randn(shape).contiguous(torch::MemoryFormat::ChannelsLast);
  FusedActivation act;
  if (pact) {
    act.kind = FusedActivation::Kind::kPact;
    act.alpha = torch::full({1}, 4.0f).requires_grad_(true);
    act.alpha_min = kAlphaMin;
    act.bits = kActivationBits;
  }
  const bool saved = BatchNormActivationFusion();
  SetBatchNormActivationFusion(kFused);
  for (auto _ : state) {
    torch::Tensor y = BatchNormActivation(*bn, x, r, act);
    y.backward(grad);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
    for (torch::Tensor& p : bn->parameters()) p.mutable_grad().reset();
    if (pact) act.alpha.mutable_grad().reset();
  }
  SetBatchNormActivationFusion(saved);
  state.SetLabel(std::string(pact ? "pact4" : "relu") + (residual ? "+residual " : " ") +
                 Label(shape) + " channels-last");
}

// OpenMP threads do the work, so wall time (UseRealTime) is the measure.
double Min(const std::vector<double>& values) {
  return *std::min_element(values.begin(), values.end());
}

void ActivationArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "threads"})
      ->ComputeStatistics("min", Min)
      ->ArgsProduct({{0, 1, 2}, {2, 1}})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}
void WeightArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "threads"})
      ->ComputeStatistics("min", Min)
      ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {2, 1}})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

BENCHMARK_TEMPLATE(BM_PactForward, Impl::kFused)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForward, Impl::kFusedGeneric)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForward, Impl::kReference)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForward, Impl::kRelu)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForwardBackward, Impl::kFused)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForwardBackward, Impl::kFusedGeneric)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForwardBackward, Impl::kReference)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_PactForwardBackward, Impl::kRelu)->Apply(ActivationArgs);
BENCHMARK(BM_PactKernelsOnly)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_BatchNormActivation, true)
    ->ArgNames({"pact", "residual", "threads"})
    ->ArgsProduct({{0, 1}, {0, 1}, {2, 1}})
    ->ComputeStatistics("min", Min)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_BatchNormActivation, false)
    ->ArgNames({"pact", "residual", "threads"})
    ->ArgsProduct({{0, 1}, {0, 1}, {2, 1}})
    ->ComputeStatistics("min", Min)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_DorefaForward, Impl::kFused)->Apply(WeightArgs);
BENCHMARK_TEMPLATE(BM_DorefaForward, Impl::kReference)->Apply(WeightArgs);
BENCHMARK_TEMPLATE(BM_DorefaForwardBackward, Impl::kFused)->Apply(WeightArgs);
BENCHMARK_TEMPLATE(BM_DorefaForwardBackward, Impl::kReference)->Apply(WeightArgs);

}  // namespace
}  // namespace pact::quant
