#include "pact/quant/pact_kernels.h"

#include <atomic>

namespace pact::quant::kernels {
namespace generic {
const KernelTable& Table();
}  // namespace generic
namespace avx2 {
const KernelTable& Table();
}  // namespace avx2

namespace {

bool CpuHasAvx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // needed when first called during static initialization
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

std::atomic<const KernelTable*>& ActiveTable() {
  static std::atomic<const KernelTable*> table{CpuHasAvx2() ? &avx2::Table() : &generic::Table()};
  return table;
}

}  // namespace

const KernelTable& ActiveKernels() { return *ActiveTable().load(std::memory_order_relaxed); }

bool KernelIsaSupported(KernelIsa isa) { return isa == KernelIsa::kGeneric || CpuHasAvx2(); }

KernelIsa ActiveKernelIsa() {
  return &ActiveKernels() == &avx2::Table() ? KernelIsa::kAvx2 : KernelIsa::kGeneric;
}

std::vector<KernelIsa> SupportedKernelIsas() {
  std::vector<KernelIsa> isas = {KernelIsa::kGeneric};
  if (KernelIsaSupported(KernelIsa::kAvx2)) isas.push_back(KernelIsa::kAvx2);
  return isas;
}

bool SetKernelIsa(KernelIsa isa) {
  if (!KernelIsaSupported(isa)) return false;
  ActiveTable().store(isa == KernelIsa::kAvx2 ? &avx2::Table() : &generic::Table(),
                      std::memory_order_relaxed);
  return true;
}

}  // namespace pact::quant::kernels
