// Fused LSQ (lsq_ops.h) vs the composed pure-autograd reference (reference_ops.h) vs
// torch::relu, on pact_benchmark's activation shapes, 4-bit unsigned (activations).
//
//   bazel run //pact/quant:lsq_benchmark -- --benchmark_filter='threads:2'
//       --benchmark_repetitions=6 --benchmark_enable_random_interleaving=true   (one line)
//
// Conventions as in pact_benchmark.cc: `shape` indexes the shape list, `threads` is
// at::set_num_threads, wall time (UseRealTime), and bytes_per_second counts the same nominal
// traffic for every implementation (forward: read x + write y; forward + backward adds read
// dL/dy + write dL/dx). kFusedGeneric forces the baseline (SSE2) kernel build; BM_LsqKernelsOnly
// runs the kernels without autograd. glibc's malloc keeps freed memory (see pact_benchmark.cc
// for why; PACT_BENCHMARK_GLIBC_MALLOC_DEFAULTS=1 measures with the defaults).
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "pact/quant/benchmark_util.h"
#include "pact/quant/lsq_ops.h"
#include "pact/quant/pact_kernels.h"
#include "pact/quant/reference_ops.h"

namespace pact::quant {
namespace {

using bench::ActivationShapes;
using bench::BenchmarkSetup;
using bench::Impl;
using bench::Label;

constexpr int64_t kActivationBits = 4;
constexpr double kStepMin = 1e-5;
// x ~ N(0, 3^2): half the elements fall below 0, about a tenth at or above Qp * s = 3.75.
constexpr double kStep = 0.25;

// The paper's gradient scale for activations: 1 / sqrt(features per example * Qp).
double GradScale(const torch::Tensor& x, LsqRange range) {
  return 1.0 / std::sqrt(static_cast<double>(x.numel() / x.size(0)) * range.qp);
}

torch::Tensor Activation(Impl impl, const torch::Tensor& x, const torch::Tensor& step) {
  const LsqRange range = LsqUnsignedRange(kActivationBits);
  switch (impl) {
    case Impl::kFused:
    case Impl::kFusedGeneric:
      return Lsq(x, step, range, GradScale(x, range), kStepMin);
    case Impl::kReference:
      return ReferenceLsq(x, step, range, GradScale(x, range), kStepMin);
    case Impl::kRelu:
      return torch::relu(x);
  }
  return {};
}

template <Impl kImpl>
void BM_LsqForward(benchmark::State& state) {
  const BenchmarkSetup setup(state, kImpl);
  const std::vector<int64_t>& shape = ActivationShapes()[state.range(0)];
  const torch::Tensor x = torch::randn(shape) * 3.0;
  const torch::Tensor step = torch::full({1}, kStep);
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor y = Activation(kImpl, x, step);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 2 * x.nbytes());
  state.SetLabel(Label(shape));
}

template <Impl kImpl>
void BM_LsqForwardBackward(benchmark::State& state) {
  const BenchmarkSetup setup(state, kImpl);
  const std::vector<int64_t>& shape = ActivationShapes()[state.range(0)];
  torch::Tensor x = (torch::randn(shape) * 3.0).requires_grad_(true);
  torch::Tensor step = torch::full({1}, kStep).requires_grad_(true);
  const torch::Tensor grad = torch::randn(shape);
  for (auto _ : state) {
    torch::Tensor y = Activation(kImpl, x, step);
    y.backward(grad);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
    step.mutable_grad().reset();
  }
  state.SetBytesProcessed(state.iterations() * 4 * x.nbytes());
  state.SetLabel(Label(shape));
}

// The fused kernels without autograd: forward, then the backward (which reads x again).
void BM_LsqKernelsOnly(benchmark::State& state) {
  const BenchmarkSetup setup(state, Impl::kFused);
  const std::vector<int64_t>& shape = ActivationShapes()[state.range(0)];
  const torch::Tensor x = torch::randn(shape) * 3.0;
  const torch::Tensor grad = torch::randn(shape);
  const LsqRange range = LsqUnsignedRange(kActivationBits);
  for (auto _ : state) {
    torch::Tensor y = LsqForwardKernel(x, kStep, range);
    auto [grad_x, sum] = LsqBackwardKernel(grad, x, kStep, range);
    benchmark::DoNotOptimize(y.data_ptr());
    benchmark::DoNotOptimize(grad_x.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 4 * x.nbytes());
  state.SetLabel(Label(shape));
}

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

BENCHMARK_TEMPLATE(BM_LsqForward, Impl::kFused)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_LsqForward, Impl::kReference)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_LsqForward, Impl::kRelu)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_LsqForwardBackward, Impl::kFused)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_LsqForwardBackward, Impl::kFusedGeneric)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_LsqForwardBackward, Impl::kReference)->Apply(ActivationArgs);
BENCHMARK_TEMPLATE(BM_LsqForwardBackward, Impl::kRelu)->Apply(ActivationArgs);
BENCHMARK(BM_LsqKernelsOnly)->Apply(ActivationArgs);

}  // namespace
}  // namespace pact::quant
