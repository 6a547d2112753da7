// Raw, single-threaded CPU loops behind the fused LSQ op (lsq_ops.h).
//
// No LibTorch here, as in pact_kernels.h: each function works on contiguous arrays and is
// compiled twice from lsq_kernels_impl.h, once for baseline x86-64 (SSE2) and once with
// AVX2+FMA; ActiveLsqKernels() follows kernels::ActiveKernelIsa(), so kernels::SetKernelIsa()
// switches the PACT and the LSQ kernels together. lsq_ops.cc splits tensors into ranges and runs
// these loops under at::parallel_for.
//
// Exactness rules (the same as pact_kernels.h's): -ffp-contract=off, never -ffast-math, every
// operation in the element type T as the composed ATen ops do it (true division x / s, not a
// multiplication by 1 / s), and the backward's reduction sums in double over blocks of at most
// kReduceBlock elements with a fixed lane order, so results are bitwise identical across the two
// builds and for any number of threads.
#ifndef PACT_QUANT_LSQ_KERNELS_H_
#define PACT_QUANT_LSQ_KERNELS_H_

#include <cstdint>

#include "pact/quant/pact_kernels.h"

namespace pact::quant::kernels {

// LSQ (Esser et al. 2019, arXiv:1902.08153) with the quantization range [lo, hi] = [-Qn, Qp]
// (integers, lo <= 0 < hi, |lo|, hi <= 2^16; lo = 0 as +0.0) and step s > 0. For one element, with
// q = x / s (true division in T) and r = R(clamp(q, lo, hi)):
//   - clamp(q, lo, hi) replaces q only when q < lo or q > hi, so NaN stays NaN and -0.0 stays
//     -0.0 (with lo = 0);
//   - R rounds half to even, valid for negative values too (the portable loops split the sign
//     off, round |c| with the 2^23 / 2^52 magic constant and put the sign back; the AVX2 float
//     loops use roundps), so R agrees bit for bit with torch.round (nearbyint), signed zeros and
//     NaN included.
template <typename T>
struct LsqKernels {
  // Eq. 1 and 2: y = R(clamp(x / s, lo, hi)) * s, every operation in T, no FMA.
  void (*lsq_forward)(const T* x, T* y, int64_t n, T step, T lo, T hi);
  // One block (n <= kReduceBlock). Eq. 5 (straight-through estimator): grad_x = g where
  // lo < q < hi (strict), else exactly 0; selected, never multiplied, so an inf or NaN gradient
  // at a masked element does not leak, and a NaN q gives 0. Returns the block's sum, in double,
  // of g * d with Eq. 3's
  //   d = r - q  where lo < q < hi  (exact in T: |r - q| <= 0.5 and r - q is a multiple of
  //                                  q's ulp),
  //   d = lo     where q <= lo,   d = hi where q >= hi,   d = 0 where q is NaN,
  // each product double(g') * double(d) with g' = g where d != 0, else 0 (selected too: an
  // element whose d is 0 adds exactly 0), added into 8 double lanes (lane j takes elements j,
  // j + 8, ... of the block) which are combined in a fixed order at the end. With
  // `broadcast_g`, every element's gradient is g[0] (a gradient expanded from a scalar).
  double (*lsq_backward)(const T* g, bool broadcast_g, const T* x, T* grad_x, int64_t n, T step,
                         T lo, T hi);
};

struct LsqKernelTable {
  const char* isa;  // "generic" or "avx2"
  LsqKernels<float> f32;
  LsqKernels<double> f64;

  template <typename T>
  const LsqKernels<T>& get() const;
};

template <>
inline const LsqKernels<float>& LsqKernelTable::get<float>() const {
  return f32;
}
template <>
inline const LsqKernels<double>& LsqKernelTable::get<double>() const {
  return f64;
}

// The LSQ kernels of the build ActiveKernelIsa() names (pact_kernels.h).
const LsqKernelTable& ActiveLsqKernels();

}  // namespace pact::quant::kernels

#endif  // PACT_QUANT_LSQ_KERNELS_H_
