#include "pact/deploy/int_kernels.h"

#include <atomic>

namespace pact::deploy::kernels {
namespace generic {
const IntKernels& Table();
}  // namespace generic
namespace avx2 {
const IntKernels& Table();
}  // namespace avx2
namespace avx512_vnni {
const IntKernels& Table();
}  // namespace avx512_vnni

namespace {

bool CpuHasAvx512Vnni() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool CpuHasAvx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

std::atomic<const IntKernels*>& Active() {
  static std::atomic<const IntKernels*> table{SupportedIntKernels().back()};
  return table;
}

}  // namespace

std::vector<int8_t> PackGemmWeights(const int32_t* w, int64_t n, int64_t k) {
  const int64_t k4 = RoundUp(k, 4), n_pad = RoundUp(n, kGemmColumns);
  std::vector<int8_t> packed(static_cast<size_t>(k4 * n_pad), 0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < k; ++i) {
      packed[static_cast<size_t>((i / 4) * n_pad * 4 + j * 4 + i % 4)] =
          static_cast<int8_t>(w[j * k + i]);
    }
  }
  return packed;
}

std::vector<int16_t> PackGemmWeights16(const int32_t* w, int64_t n, int64_t k) {
  const int64_t k2 = RoundUp(k, 2), n_pad = RoundUp(n, kGemmColumns);
  std::vector<int16_t> packed(static_cast<size_t>(k2 * n_pad), 0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < k; ++i) {
      packed[static_cast<size_t>((i / 2) * n_pad * 2 + j * 2 + i % 2)] =
          static_cast<int16_t>(w[j * k + i]);
    }
  }
  return packed;
}

const IntKernels& ActiveIntKernels() { return *Active().load(std::memory_order_relaxed); }

std::vector<const IntKernels*> SupportedIntKernels() {
  std::vector<const IntKernels*> tables = {&generic::Table()};
  if (CpuHasAvx2()) tables.push_back(&avx2::Table());
  if (CpuHasAvx512Vnni()) tables.push_back(&avx512_vnni::Table());
  return tables;
}

bool SetIntKernels(const std::string& name) {
  for (const IntKernels* table : SupportedIntKernels()) {
    if (name == table->name) {
      Active().store(table, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

}  // namespace pact::deploy::kernels
