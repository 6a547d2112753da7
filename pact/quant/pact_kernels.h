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
#include <vector>

namespace pact::quant::kernels {

// Which side of the clip an input fell on, as a 1-byte code per element (the BatchNorm
// kernels save these, and UnpackPactCodes in pact_ops.h shows the PACT mask this way).
inline constexpr uint8_t kCodeBelow = 0;   // x < 0, or x is NaN: no gradient at all
inline constexpr uint8_t kCodeInside = 1;  // 0 <= x < alpha: dL/dx = dL/dy (STE, Eq. 3)
inline constexpr uint8_t kCodeAbove = 2;   // x >= alpha: dL/dalpha += dL/dy (Eq. 3)

// What the PACT forward saves per element instead of x: 2 bits, packed per group of
// kMaskGroup consecutive elements (in memory order) into one 16-bit word. Bit j of the low byte
// is x[j] >= 0 and bit j of the high byte is x[j] >= alpha (a NaN sets neither), so an element
// is below with neither bit, inside with the low bit only and above with both. Bits past the
// end of the last, partial group are 0. A sixteenth of x's float memory, and less backward
// traffic than the 1-byte codes: the op is memory-bound (pact_benchmark).
inline constexpr int64_t kMaskGroup = 8;
using PactMaskWord = uint16_t;
inline constexpr int64_t PactMaskWords(int64_t n) { return (n + kMaskGroup - 1) / kMaskGroup; }

// Reductions are computed per block of this many elements (the last block may be shorter),
// and the block results are added in block order by the caller.
inline constexpr int64_t kReduceBlock = 4096;
static_assert(kReduceBlock % kMaskGroup == 0, "a block starts a mask group");

// The activation a fused BatchNorm kernel applies to z = BN(x) (+ residual).
template <typename T>
struct ClipParams {
  // ReLU: y = max(z, 0) (NaN stays NaN), gradient where !(z <= 0), as torch.relu's backward.
  // Otherwise PACT: y = clip(z, 0, alpha), rounded as in pact_forward when `quantize`, with
  // 1-byte codes (kCode*).
  bool relu = true;
  bool quantize = false;
  T alpha = T(0);
  T scale = T(0);
  T step = T(0);
};

// Lanes of the fixed-order double sums the BatchNorm kernels accumulate into: element i of a
// plane goes to lane i % kSumLanes; the caller adds planes in order and the lanes last.
inline constexpr int kSumLanes = 8;

template <typename T>
struct Kernels {
  // y = clip(x, 0, alpha) (Eq. 1); when `quantize`, y = round(y * scale) * step (Eq. 2) with
  // scale = (2^k - 1) / alpha, step = alpha / (2^k - 1) and round half to even. NaN stays NaN.
  // Writes mask[0, PactMaskWords(n)) unless `mask` is null; x[0] starts a group, so callers
  // split tensors at multiples of kMaskGroup. `stream`: write y with non-temporal stores, for
  // tensors bigger than the last-level cache, which a normal store would first read in (the
  // float kernels honour it when writing a mask; values are the same either way).
  void (*pact_forward)(const T* x, T* y, PactMaskWord* mask, int64_t n, T alpha, T scale, T step,
                       bool quantize, bool stream);
  // One block (n <= kReduceBlock, g[0] starting a group): grad_x = g where the mask says
  // inside, else exactly 0 (a NaN or inf gradient elsewhere does not leak); returns the sum of
  // g over the elements above. With `broadcast_g`, every element's gradient is g[0] (a
  // gradient expanded from a scalar). `stream` as in pact_forward, for grad_x.
  double (*pact_backward_mask)(const T* g, bool broadcast_g, const PactMaskWord* mask, T* grad_x,
                               int64_t n, bool stream);
  // As pact_backward_mask, but classifies x against alpha on the fly.
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

  // Fused BatchNorm + activation (bn_act_ops.h), one NCHW plane (n elements of one channel)
  // per call.
  // Statistics: lanes[0, 8) += x - shift, lanes[8, 16) += (x - shift)^2, in double; `shift`
  // (a value of the channel) keeps the one-pass variance free of cancellation.
  void (*bn_stats)(const T* x, int64_t n, T shift, double* lanes);
  // z = x * scale + shift, plus r[i] when r is not null (the residual); y = activation(z);
  // the code (kCode*) when `code` is not null (ReLU: inside or below).
  void (*bn_act_forward)(const T* x, const T* r, T* y, uint8_t* code, int64_t n, T scale, T shift,
                         const ClipParams<T>& clip);
  // Backward sums: with g' = g where code is inside, else 0: lanes[0, 8) += g',
  // lanes[8, 16) += (x - mean) * g', lanes[16, 24) += g where code is above. Writes g' to
  // g_masked when it is not null (the residual's gradient).
  void (*bn_act_backward_reduce)(const T* g, const uint8_t* code, const T* x, T mean, T* g_masked,
                                 int64_t n, double* lanes);
  // grad_x = (g' - grad_mean - (x - mean) * k) * invstd * w, ATen's training-mode BatchNorm
  // backward with its operation order.
  void (*bn_backward_apply)(const T* g, const uint8_t* code, const T* x, T* grad_x, int64_t n,
                            T mean, T grad_mean, T k, T invstd, T w);

  // The same four for channels-last (NHWC) tensors: `rows` pixels of `c` channels each, the
  // per-channel values as arrays of c. Sums accumulate row by row into per-channel doubles
  // (s1/s2, or sums[0, c), [c, 2c), [2c, 3c)), so each channel's sum has one fixed order.
  void (*bn_stats_nhwc)(const T* x, int64_t rows, int64_t c, const T* shift, double* sums);
  void (*bn_act_forward_nhwc)(const T* x, const T* r, T* y, uint8_t* code, int64_t rows, int64_t c,
                              const T* scale, const T* shift, const ClipParams<T>& clip);
  void (*bn_act_backward_reduce_nhwc)(const T* g, const uint8_t* code, const T* x, const T* mean,
                                      T* g_masked, int64_t rows, int64_t c, double* sums);
  void (*bn_backward_apply_nhwc)(const T* g, const uint8_t* code, const T* x, T* grad_x,
                                 int64_t rows, int64_t c, const T* mean, const T* grad_mean,
                                 const T* k, const T* invstd, const T* w);
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

// The build ActiveKernels() runs.
KernelIsa ActiveKernelIsa();

// Every build this CPU can run (generic first).
std::vector<KernelIsa> SupportedKernelIsas();

// For tests and benchmarks: switches the kernels in use; false (and no change) when the CPU
// lacks `isa`. Not meant to be called while ops are running on other threads.
bool SetKernelIsa(KernelIsa isa);

}  // namespace pact::quant::kernels

#endif  // PACT_QUANT_PACT_KERNELS_H_
