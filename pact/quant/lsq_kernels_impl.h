// The loops of lsq_kernels.h, compiled once per instruction set: a .cc defines LSQ_KERNEL_ISA
// (the namespace, e.g. avx2) and includes this file. As in pact_kernels_impl.h, everything but
// LsqTable() has internal linkage (the per-ISA copies can never stand in for each other at link
// time) and nothing here calls an out-of-line library function.
//
// The portable loops are plain C++ that GCC's vectorizer (-O3) turns into SSE2 or AVX2 code:
// selections are bit masks, the clamp is written in the operand order of maxps/minps, and the
// backward accumulates into kLanes double partial sums through a per-chunk buffer. The AVX2
// build also has intrinsic versions of the float loops (the common case), which use roundps
// instead of the five-instruction portable rounding and keep the backward to ~25 vector
// instructions per 8 elements: on the development VM (AMD EPYC) the backward is bound by
// instruction throughput rather than by the division, and GCC's AVX2 code for the portable loops
// took ~35% longer (forward and backward, cache-resident). They perform the same operations in
// the same order, so both builds agree bit for bit (lsq_ops_test checks it).
#ifndef LSQ_KERNEL_ISA
#error "define LSQ_KERNEL_ISA before including lsq_kernels_impl.h"
#endif

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "pact/quant/lsq_kernels.h"

#define LSQ_KERNEL_STRINGIFY_INNER(x) #x
#define LSQ_KERNEL_STRINGIFY(x) LSQ_KERNEL_STRINGIFY_INNER(x)

namespace pact::quant::kernels::LSQ_KERNEL_ISA {
namespace {

#include "pact/quant/kernel_bits_impl.h"

// Inner chunk of the backward: its buffer of double products stays in L1.
constexpr int64_t kChunk = 512;
static_assert(kChunk % kLanes == 0, "lane j takes element j of every group of kLanes");

template <typename T>
inline T Select(T v, bool keep) {
  return FromBits<T>(ToBits(v) & Mask<T>(keep));
}

// clamp(q, lo, hi) as lsq_kernels.h defines it, written as max(lo, q) then min(hi, c) in the
// operand order of SSE's maxps/minps (which return their second operand when the comparison is
// false): NaN and -0.0 stay as they are.
template <typename T>
inline T Clamp(T q, T lo, T hi) {
  const T c = lo > q ? lo : q;
  return hi < c ? hi : c;
}

// Round half to even for |v| < 2^23 (float) or 2^52 (double), any sign: |v| + 2^23 has no
// fraction bits left, so the addition itself rounds |v| to the nearest integer, ties to even, and
// subtracting 2^23 back is exact; the sign bit is put back afterwards, so -0.3 gives -0.0 as
// torch.round does (adding the magic constant to a negative value would give +0.0). NaN keeps its
// bits. Needs IEEE semantics: no -ffast-math.
template <typename T>
inline T RoundHalfEven(T v) {
  using Bits = typename FloatTraits<T>::Bits;
  constexpr Bits kSign = Bits{1} << (8 * sizeof(Bits) - 1);
  const Bits bits = ToBits(v);
  const T magnitude = FromBits<T>(bits & ~kSign);
  const T rounded = (magnitude + FloatTraits<T>::kRoundMagic) - FloatTraits<T>::kRoundMagic;
  return FromBits<T>(ToBits(rounded) | (bits & kSign));
}

// Eq. 1 and 2 of one element.
template <typename T>
inline T LsqValue(T x, T step, T lo, T hi) {
  return RoundHalfEven(Clamp(x / step, lo, hi)) * step;
}

// The backward of one element: writes dL/dx and returns its term of the step's sum
// (lsq_kernels.h, lsq_backward). d = r - (q where inside, else +0.0): r - q inside, and r itself
// outside, which is c there, i.e. lo or hi (Eq. 3's -Qn or Qp), or NaN for a NaN q. Both d and g
// are then kept only where d is neither 0 nor NaN, so such elements add exactly 0 (0 * 0).
template <typename T>
inline double LsqElementBackward(T gv, T xv, T step, T lo, T hi, T* grad_x) {
  const T q = xv / step;
  const T r = RoundHalfEven(Clamp(q, lo, hi));
  const bool inside = (q > lo) & (q < hi);  // false for NaN
  const T d = r - Select(q, inside);
  const bool keep = (d < T(0)) | (d > T(0));  // false for 0 and NaN
  *grad_x = Select(gv, inside);
  return static_cast<double>(Select(gv, keep)) * static_cast<double>(Select(d, keep));
}

template <typename T>
void LsqForwardLoop(const T* __restrict x, T* __restrict y, int64_t n, T step, T lo, T hi) {
  for (int64_t i = 0; i < n; ++i) y[i] = LsqValue(x[i], step, lo, hi);
}

template <typename T, bool kBroadcast>
double LsqBackwardLoop(const T* __restrict g, const T* __restrict x, T* __restrict grad_x,
                       int64_t n, T step, T lo, T hi) {
  double lanes[kLanes] = {};
  alignas(64) double products[kChunk];
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = MinIndex(kChunk, n - start);
    const T* gs = kBroadcast ? g : g + start;
    const T* xs = x + start;
    T* gx = grad_x + start;
    for (int64_t k = 0; k < len; ++k) {
      products[k] = LsqElementBackward(kBroadcast ? gs[0] : gs[k], xs[k], step, lo, hi, gx + k);
    }
    // Zero-padded to whole lane groups: adding +0.0 leaves a lane as it is (a lane that starts at
    // +0.0 never becomes -0.0).
    const int64_t padded = (len + kLanes - 1) / kLanes * kLanes;
    for (int64_t k = len; k < padded; ++k) products[k] = 0.0;
    for (int64_t k = 0; k < padded; k += kLanes) {
      for (int j = 0; j < kLanes; ++j) lanes[j] += products[k + j];
    }
  }
  return SumLanes(lanes);
}

#if defined(__AVX2__)
// The float loops by hand, eight elements per step with the same operations in the same order
// as LsqValue / LsqElementBackward: maxps(lo, q) and minps(hi, c) are Clamp's ternaries, roundps
// (AVX) rounds half to even keeping the sign and NaN exactly as RoundHalfEven does, and the
// backward's two double accumulators are lanes 0-3 and 4-7 of LsqBackwardLoop (bit-identical).
struct LsqConstantsAvx2 {
  explicit LsqConstantsAvx2(float step, float lo, float hi)
      : step(_mm256_set1_ps(step)), lo(_mm256_set1_ps(lo)), hi(_mm256_set1_ps(hi)) {}
  __m256 step, lo, hi;
};

// r = R(clamp(q, lo, hi)).
inline __m256 LevelAvx2(__m256 q, const LsqConstantsAvx2& k) {
  return _mm256_round_ps(_mm256_min_ps(k.hi, _mm256_max_ps(k.lo, q)),
                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

void LsqForwardAvx2(const float* __restrict x, float* __restrict y, int64_t n, float step, float lo,
                    float hi) {
  const LsqConstantsAvx2 k(step, lo, hi);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), k.step);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(LevelAvx2(q, k), k.step));
  }
  LsqForwardLoop<float>(x + i, y + i, n - i, step, lo, hi);
}

template <bool kBroadcast>
double LsqBackwardAvx2(const float* __restrict g, const float* __restrict x,
                       float* __restrict grad_x, int64_t n, float step, float lo, float hi) {
  const LsqConstantsAvx2 k(step, lo, hi);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 g_all = kBroadcast ? _mm256_set1_ps(g[0]) : zero;
  __m256d low = _mm256_setzero_pd();   // lanes 0-3
  __m256d high = _mm256_setzero_pd();  // lanes 4-7
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = kBroadcast ? g_all : _mm256_loadu_ps(g + i);
    const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), k.step);
    const __m256 inside =
        _mm256_and_ps(_mm256_cmp_ps(q, k.lo, _CMP_GT_OQ), _mm256_cmp_ps(q, k.hi, _CMP_LT_OQ));
    const __m256 d = _mm256_sub_ps(LevelAvx2(q, k), _mm256_and_ps(q, inside));
    const __m256 keep = _mm256_cmp_ps(d, zero, _CMP_NEQ_OQ);  // false for 0 and NaN
    _mm256_storeu_ps(grad_x + i, _mm256_and_ps(gv, inside));
    const __m256 g_kept = _mm256_and_ps(gv, keep);
    const __m256 d_kept = _mm256_and_ps(d, keep);
    low = _mm256_add_pd(low, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(g_kept)),
                                           _mm256_cvtps_pd(_mm256_castps256_ps128(d_kept))));
    high = _mm256_add_pd(high, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(g_kept, 1)),
                                             _mm256_cvtps_pd(_mm256_extractf128_ps(d_kept, 1))));
  }
  alignas(32) double lanes[kLanes];
  _mm256_store_pd(lanes, low);
  _mm256_store_pd(lanes + 4, high);
  for (int j = 0; i + j < n; ++j) {  // the last, partial group: lane j takes element i + j
    lanes[j] +=
        LsqElementBackward(kBroadcast ? g[0] : g[i + j], x[i + j], step, lo, hi, grad_x + i + j);
  }
  return SumLanes(lanes);
}
#endif  // __AVX2__

template <typename T>
void LsqForward(const T* x, T* y, int64_t n, T step, T lo, T hi) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    LsqForwardAvx2(x, y, n, step, lo, hi);
    return;
  }
#endif
  LsqForwardLoop<T>(x, y, n, step, lo, hi);
}

template <typename T>
double LsqBackward(const T* g, bool broadcast_g, const T* x, T* grad_x, int64_t n, T step, T lo,
                   T hi) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    return broadcast_g ? LsqBackwardAvx2<true>(g, x, grad_x, n, step, lo, hi)
                       : LsqBackwardAvx2<false>(g, x, grad_x, n, step, lo, hi);
  }
#endif
  return broadcast_g ? LsqBackwardLoop<T, true>(g, x, grad_x, n, step, lo, hi)
                     : LsqBackwardLoop<T, false>(g, x, grad_x, n, step, lo, hi);
}

template <typename T>
constexpr LsqKernels<T> MakeLsqKernels() {
  return LsqKernels<T>{&LsqForward<T>, &LsqBackward<T>};
}

}  // namespace

const LsqKernelTable& LsqTable() {
  static constexpr LsqKernelTable kTable = {LSQ_KERNEL_STRINGIFY(LSQ_KERNEL_ISA),
                                            MakeLsqKernels<float>(), MakeLsqKernels<double>()};
  return kTable;
}

}  // namespace pact::quant::kernels::LSQ_KERNEL_ISA

#undef LSQ_KERNEL_STRINGIFY
#undef LSQ_KERNEL_STRINGIFY_INNER
