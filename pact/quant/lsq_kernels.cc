#include "pact/quant/lsq_kernels.h"

namespace pact::quant::kernels {
namespace generic {
const LsqKernelTable& LsqTable();
}  // namespace generic
namespace avx2 {
const LsqKernelTable& LsqTable();
}  // namespace avx2

// One switch for both op families: SetKernelIsa() (pact_kernels.h) already checks the CPU, and
// following it here means a test or benchmark that forces the generic build gets it for LSQ too.
const LsqKernelTable& ActiveLsqKernels() {
  return ActiveKernelIsa() == KernelIsa::kAvx2 ? avx2::LsqTable() : generic::LsqTable();
}

}  // namespace pact::quant::kernels
