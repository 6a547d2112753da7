// Raw, single-threaded CPU loops behind the fused PACT and DoReFa ops (pact_ops.h).
//
// No LibTorch here: each function works on contiguous arrays and is compiled twice, once for
// baseline x86-64 (SSE2) and once with AVX2+FMA (pact_kernels_impl.h holds the one source);
// ActiveKernels() picks the build the CPU supports at run time. pact_ops.cc splits tensors
// into ranges and runs these loops under at::parallel_for. Out of cache they are memory-bound;
// the AVX2 build still halves the PACT forward (the SSE2 code is compute-bound there) and
// speeds up PACT forward+backward ~2.5x on cache-resident tensors (pact_benchmark).
//
// Exactness rules shared by both builds (so they agree bit for bit with each other and with
// the composed ATen ops): the kernels are compiled with -ffp-contract=off (an FMA would round
// y * scale differently before round()), never with -ffast-math, and every reduction sums in
// double over fixed blocks of kReduceBlock elements with a fixed lane order, so the result
// does not depend on the ISA or on how many threads ran the blocks.
#ifndef PACT_QUANT_PACT_KERNELS_H_
#define PACT_QUANT_PACT_KERNELS_H_

#include <cstdint>

namespace pact::quant::kernels {

// The 1-byte code the PACT forward saves per element instead of x (a quarter of the memory
// and backward traffic of saving x): which side of the clip the input fell on.
inline constexpr uint8_t kCodeBelow = 0;   // x < 0, or x is NaN: no gradient at all
inline constexpr uint8_t kCodeInside = 1;  // 0 <= x < alpha: dL/dx = dL/dy (STE, Eq. 3)
inline constexpr uint8_t kCodeAbove = 2;   // x >= alpha: dL/dalpha += dL/dy (Eq. 3)

// Reductions are computed per block of this many elements (the last block may be shorter),
// and the block results are added in block order by the caller.
inline constexpr int64_t kReduceBlock = 4096;

template <typename T>
struct Kernels {
  // y = clip(x, 0, alpha) (Eq. 1); when `quantize`, y = round(y * scale) * step (Eq. 2) with
  // scale = (2^k - 1) / alpha, step = alpha / (2^k - 1) and round half to even. NaN stays NaN.
  // Writes code[i] unless `code` is null.
  void (*pact_forward)(const T* x, T* y, uint8_t* code, int64_t n, T alpha, T scale, T step,
                       bool quantize);
  // One block (n <= kReduceBlock): grad_x = g where code is inside, else exactly 0 (a NaN or
  // inf gradient elsewhere does not leak); returns the sum of g over code == above. With
  // `broadcast_g`, every element's gradient is g[0] (a gradient expanded from a scalar).
  double (*pact_backward_codes)(const T* g, bool broadcast_g, const uint8_t* code, T* grad_x,
                                int64_t n);
  // As pact_backward_codes, but classifies x against alpha on the fly.
  double (*pact_backward_x)(const T* g, bool broadcast_g, const T* x, T alpha, T* grad_x,
                            int64_t n);
  // max |t| over t[0, n); NaN if any t is NaN; 0 for n == 0.
  T (*abs_max)(const T* t, int64_t n);
  // DoReFa: out = 2 * round((t / two_m + 0.5) * levels) / levels - 1.
  void (*dorefa_forward)(const T* t, T* out, int64_t n, T two_m, T levels);
  // One block (n <= kReduceBlock): returns sum g * t (in double) and adds the number of
  // |t| == m to *ties.
  double (*dorefa_dot)(const T* g, bool broadcast_g, const T* t, T m, int64_t n, int64_t* ties);
  // grad_w = ((g + g) / two_m + (|t| == m ? sign(t) * share : 0)) * (1 - t * t): the chain
  // rule of the un-rounded DoReFa expression, with `share` the gradient of max|t| per tie.
  void (*dorefa_backward)(const T* g, bool broadcast_g, const T* t, T* grad_w, int64_t n, T two_m,
                          T m, T share);
};

struct KernelTable {
  const char* isa;  // "generic" or "avx2"
  Kernels<float> f32;
  Kernels<double> f64;

  template <typename T>
  const Kernels<T>& get() const;
};

template <>
inline const Kernels<float>& KernelTable::get<float>() const {
  return f32;
}
template <>
inline const Kernels<double>& KernelTable::get<double>() const {
  return f64;
}

enum class KernelIsa { kGeneric, kAvx2 };

// The kernels in use: AVX2 when the CPU has AVX2 and FMA, else generic.
const KernelTable& ActiveKernels();

// Whether this CPU can run `isa`.
bool KernelIsaSupported(KernelIsa isa);

// For tests and benchmarks: switches the kernels in use; false (and no change) when the CPU
// lacks `isa`. Not meant to be called while ops are running on other threads.
bool SetKernelIsa(KernelIsa isa);

}  // namespace pact::quant::kernels

#endif  // PACT_QUANT_PACT_KERNELS_H_
