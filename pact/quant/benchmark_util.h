// What the fused-op benchmarks (pact_benchmark.cc, lsq_benchmark.cc) share: the
// implementations they compare, the activation shapes, labels, the thread/ISA setup and the
// malloc policy (pact_benchmark.cc's header explains it). Benchmarks only.
#ifndef PACT_QUANT_BENCHMARK_UTIL_H_
#define PACT_QUANT_BENCHMARK_UTIL_H_

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "pact/quant/pact_kernels.h"

namespace pact::quant::bench {

// Freed memory stays in glibc's heap for the next iteration (no mmap'ed blocks, no trimming),
// unless PACT_BENCHMARK_GLIBC_MALLOC_DEFAULTS is set. Set at static initialization.
inline const bool kMallocTuned = [] {
  if (std::getenv("PACT_BENCHMARK_GLIBC_MALLOC_DEFAULTS") != nullptr) return false;
  mallopt(M_MMAP_MAX, 0);              // no mmap'ed blocks: large blocks come from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and freed heap memory is kept for the next iteration
  return true;
}();

// kFusedGeneric: the fused op forced to the baseline (SSE2) kernel build.
enum class Impl { kFused, kFusedGeneric, kReference, kRelu };

// Activation shapes: CIFAR ResNet-20 stage 1 at batch 128, a small late stage, and an
// ImageNet ResNet stage-3-sized tensor.
inline const std::vector<std::vector<int64_t>>& ActivationShapes() {
  static const auto* shapes =
      new std::vector<std::vector<int64_t>>{{128, 16, 32, 32}, {128, 64, 8, 8}, {256, 256, 14, 14}};
  return *shapes;
}

// "128x16x32x32", marked when glibc's malloc defaults are in effect.
inline std::string Label(const std::vector<int64_t>& shape) {
  std::string label;
  for (int64_t d : shape) label += (label.empty() ? "" : "x") + std::to_string(d);
  return kMallocTuned ? label : label + " glibc-malloc-defaults";
}

// Sets the thread count (the benchmark's second argument) and, for kFusedGeneric, the kernel
// ISA; restores the ISA after.
class BenchmarkSetup {
 public:
  BenchmarkSetup(benchmark::State& state, Impl impl) : isa_(kernels::ActiveKernelIsa()) {
    at::set_num_threads(static_cast<int>(state.range(1)));
    if (impl == Impl::kFusedGeneric) kernels::SetKernelIsa(kernels::KernelIsa::kGeneric);
  }
  ~BenchmarkSetup() { kernels::SetKernelIsa(isa_); }

 private:
  kernels::KernelIsa isa_;
};

}  // namespace pact::quant::bench

#endif  // PACT_QUANT_BENCHMARK_UTIL_H_
