// The loops of pact_kernels.h, compiled once per instruction set: a .cc defines
// PACT_KERNEL_ISA (the namespace, e.g. avx2) and includes this file. Everything but Table()
// has internal linkage, so the AVX2 copy can never stand in for the baseline one at link time
// (the usual ODR trap of per-ISA translation units); for the same reason this file calls no
// out-of-line library function, only compiler builtins and (always-inlined) intrinsics.
//
// The loops are plain C++ written so that GCC's vectorizer (-O3) turns them into SSE2 or AVX2
// code: selections are bit masks rather than branches, and reductions accumulate into a fixed
// array of kLanes double partial sums (lane j takes elements j, j + kLanes, ...), which the
// vectorizer may keep in registers without reordering any addition. The two hottest loops,
// float PACT forward-with-codes and backward-from-codes, also have AVX2 intrinsic versions
// (GCC's code for their byte <-> float mask conversions was the bottleneck); they perform the
// same operations in the same order, and pact_ops_test checks that both builds agree bit for
// bit.
#ifndef PACT_KERNEL_ISA
#error "define PACT_KERNEL_ISA before including pact_kernels_impl.h"
#endif

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "pact/quant/pact_kernels.h"

#define PACT_KERNEL_STRINGIFY_INNER(x) #x
#define PACT_KERNEL_STRINGIFY(x) PACT_KERNEL_STRINGIFY_INNER(x)

namespace pact::quant::kernels::PACT_KERNEL_ISA {
namespace {

constexpr int kLanes = 8;
// Inner chunk: small enough that its scratch buffer stays in L1.
constexpr int64_t kChunk = 512;

template <typename T>
struct FloatTraits;
template <>
struct FloatTraits<float> {
  using Bits = uint32_t;
  using SignedBits = int32_t;
  static constexpr float kRoundMagic = 8388608.0f;  // 2^23
};
template <>
struct FloatTraits<double> {
  using Bits = uint64_t;
  using SignedBits = int64_t;
  static constexpr double kRoundMagic = 4503599627370496.0;  // 2^52
};

inline int64_t MinIndex(int64_t a, int64_t b) { return a < b ? a : b; }
inline float Abs(float v) { return __builtin_fabsf(v); }
inline double Abs(double v) { return __builtin_fabs(v); }

template <typename T>
inline typename FloatTraits<T>::Bits ToBits(T v) {
  typename FloatTraits<T>::Bits b;
  __builtin_memcpy(&b, &v, sizeof(b));
  return b;
}
template <typename T>
inline T FromBits(typename FloatTraits<T>::Bits b) {
  T v;
  __builtin_memcpy(&v, &b, sizeof(v));
  return v;
}
// All ones when `keep`, else 0: `value_bits & Mask` keeps or zeroes a value without a branch.
template <typename T>
inline typename FloatTraits<T>::Bits Mask(bool keep) {
  using Bits = typename FloatTraits<T>::Bits;
  return Bits{0} - static_cast<Bits>(keep);
}

// round() with ties to even (torch.round, std::nearbyint) for 0 <= v < 2^23 (float) or 2^52
// (double): v + 2^23 has no fraction bits left, so the addition itself rounds v to the nearest
// integer, ties to even, and subtracting 2^23 back is exact. NaN and +inf pass through. It
// relies on IEEE semantics, so the kernels must not be built with -ffast-math. Unlike a call
// to nearbyint it vectorizes without SSE4.1.
template <typename T>
inline T RoundNonNegative(T v) {
  return (v + FloatTraits<T>::kRoundMagic) - FloatTraits<T>::kRoundMagic;
}

// Adds buf[0, len) to the lanes (zero-padding buf to a whole number of lane groups first;
// buf must have room for that).
template <typename T>
inline void AccumulateLanes(T* buf, int64_t len, double* lanes) {
  const int64_t padded = (len + kLanes - 1) / kLanes * kLanes;
  for (int64_t k = len; k < padded; ++k) buf[k] = T(0);
  for (int64_t k = 0; k < padded; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += static_cast<double>(buf[k + j]);
  }
}

inline double SumLanes(const double* lanes) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// PACT forward (Eq. 1 and 2). The clip is written as max(0, v) then min(alpha, c) in the
// operand order of SSE's maxps/minps, which return their second operand when either is NaN,
// so NaN stays NaN (like torch.clamp) without extra instructions.
template <typename T, bool kQuantize, bool kCodes>
void PactForwardLoop(const T* __restrict x, T* __restrict y, uint8_t* __restrict code, int64_t n,
                     T alpha, T scale, T step) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    T c = T(0) > v ? T(0) : v;
    c = alpha < c ? alpha : c;
    if (kQuantize) c = RoundNonNegative(c * scale) * step;
    y[i] = c;
    if (kCodes) {
      code[i] = static_cast<uint8_t>(static_cast<int>(v >= T(0)) + static_cast<int>(v >= alpha));
    }
  }
}

#if defined(__AVX2__)
// The float forward with codes, hand-vectorized: GCC narrows the two comparison masks to
// bytes separately with ~40 instructions per 32 elements; saturating packs of their sum need
// 6. Values and codes are bit-identical to PactForwardLoop (same operations, same order; the
// max/min operand order keeps NaN and -0.0 exactly as the scalar expressions do).
template <bool kQuantize>
void PactForwardCodesAvx2(const float* __restrict x, float* __restrict y, uint8_t* __restrict code,
                          int64_t n, float alpha, float scale, float step) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 vstep = _mm256_set1_ps(step);
  const __m256 magic = _mm256_set1_ps(FloatTraits<float>::kRoundMagic);
  // packs work within 128-bit halves; this puts the 4-byte groups back in element order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i sums[4];
    for (int u = 0; u < 4; ++u) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * u);
      __m256 c = _mm256_min_ps(va, _mm256_max_ps(zero, v));
      if (kQuantize) {
        c = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(c, vscale), magic), magic),
                          vstep);
      }
      _mm256_storeu_ps(y + i + 8 * u, c);
      // (v >= 0) + (v >= alpha) as 0 / -1 / -2 per 32-bit lane.
      sums[u] = _mm256_add_epi32(_mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_GE_OQ)),
                                 _mm256_castps_si256(_mm256_cmp_ps(v, va, _CMP_GE_OQ)));
    }
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(sums[0], sums[1]),
                                              _mm256_packs_epi32(sums[2], sums[3]));
    const __m256i codes =
        _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_permutevar8x32_epi32(packed, order));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(code + i), codes);
  }
  PactForwardLoop<float, kQuantize, true>(x + i, y + i, code + i, n - i, alpha, scale, step);
}
#endif  // __AVX2__

template <typename T>
void PactForward(const T* x, T* y, uint8_t* code, int64_t n, T alpha, T scale, T step,
                 bool quantize) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (code != nullptr) {
      if (quantize) {
        PactForwardCodesAvx2<true>(x, y, code, n, alpha, scale, step);
      } else {
        PactForwardCodesAvx2<false>(x, y, code, n, alpha, scale, step);
      }
      return;
    }
  }
#endif
  if (quantize) {
    if (code != nullptr) {
      PactForwardLoop<T, true, true>(x, y, code, n, alpha, scale, step);
    } else {
      PactForwardLoop<T, true, false>(x, y, code, n, alpha, scale, step);
    }
  } else if (code != nullptr) {
    PactForwardLoop<T, false, true>(x, y, code, n, alpha, scale, step);
  } else {
    PactForwardLoop<T, false, false>(x, y, code, n, alpha, scale, step);
  }
}

// PACT backward from codes (Eq. 3). Codes are 0/1/2, so bit 0 means "inside" and bit 1
// "above"; the masks are built as bytes and sign-extended, which the vectorizer handles well.
template <typename T, bool kBroadcast>
double PactBackwardCodesLoop(const T* __restrict g, const uint8_t* __restrict code,
                             T* __restrict grad_x, int64_t n) {
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  static_assert(kCodeInside == 1 && kCodeAbove == 2, "the masks below assume these codes");
  double lanes[kLanes] = {};
  alignas(64) T above[kChunk];
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = MinIndex(kChunk, n - start);
    const T* gs = kBroadcast ? g : g + start;
    const uint8_t* cs = code + start;
    T* gx = grad_x + start;
    for (int64_t k = 0; k < len; ++k) {
      const Bits gb = ToBits(kBroadcast ? gs[0] : gs[k]);
      // Byte-wide 0 / -1 masks, sign-extended to the value's width.
      const int8_t inside = static_cast<int8_t>(-(cs[k] & 1));
      const int8_t is_above = static_cast<int8_t>(-(cs[k] >> 1));
      gx[k] = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(inside)));
      above[k] = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(is_above)));
    }
    AccumulateLanes(above, len, lanes);
  }
  return SumLanes(lanes);
}

#if defined(__AVX2__)
// The float backward from codes, hand-vectorized (GCC widens the code bytes twice, through
// 16 bits). Lane j of the two double accumulators takes elements j, j + 8, ... exactly as in
// PactBackwardCodesLoop, so the sum is bit-identical to the generic build's.
double PactBackwardCodesAvx2(const float* __restrict g, const uint8_t* __restrict code,
                             float* __restrict grad_x, int64_t n) {
  const __m256i one = _mm256_set1_epi32(kCodeInside);
  const __m256i two = _mm256_set1_epi32(kCodeAbove);
  __m256d low = _mm256_setzero_pd();   // lanes 0-3
  __m256d high = _mm256_setzero_pd();  // lanes 4-7
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i c =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + i)));
    const __m256 gv = _mm256_loadu_ps(g + i);
    _mm256_storeu_ps(grad_x + i,
                     _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(c, one))));
    const __m256 above = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(c, two)));
    low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(above)));
    high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(above, 1)));
  }
  alignas(32) double lanes[kLanes];
  _mm256_store_pd(lanes, low);
  _mm256_store_pd(lanes + 4, high);
  for (int j = 0; i < n; ++i, ++j) {
    grad_x[i] = code[i] == kCodeInside ? g[i] : 0.0f;
    if (code[i] == kCodeAbove) lanes[j] += static_cast<double>(g[i]);
  }
  return SumLanes(lanes);
}
#endif  // __AVX2__

template <typename T>
double PactBackwardCodes(const T* g, bool broadcast_g, const uint8_t* code, T* grad_x, int64_t n) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (!broadcast_g) return PactBackwardCodesAvx2(g, code, grad_x, n);
  }
#endif
  return broadcast_g ? PactBackwardCodesLoop<T, true>(g, code, grad_x, n)
                     : PactBackwardCodesLoop<T, false>(g, code, grad_x, n);
}

template <typename T, bool kBroadcast>
double PactBackwardXLoop(const T* __restrict g, const T* __restrict x, T alpha,
                         T* __restrict grad_x, int64_t n) {
  using Bits = typename FloatTraits<T>::Bits;
  double lanes[kLanes] = {};
  alignas(64) T above[kChunk];
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = MinIndex(kChunk, n - start);
    const T* gs = kBroadcast ? g : g + start;
    const T* xs = x + start;
    T* gx = grad_x + start;
    for (int64_t k = 0; k < len; ++k) {
      const Bits gb = ToBits(kBroadcast ? gs[0] : gs[k]);
      const T v = xs[k];
      gx[k] = FromBits<T>(gb & Mask<T>((v >= T(0)) & (v < alpha)));
      above[k] = FromBits<T>(gb & Mask<T>(v >= alpha));
    }
    AccumulateLanes(above, len, lanes);
  }
  return SumLanes(lanes);
}

template <typename T>
double PactBackwardX(const T* g, bool broadcast_g, const T* x, T alpha, T* grad_x, int64_t n) {
  return broadcast_g ? PactBackwardXLoop<T, true>(g, x, alpha, grad_x, n)
                     : PactBackwardXLoop<T, false>(g, x, alpha, grad_x, n);
}

// For non-negative IEEE values the bit patterns, read as integers, order like the values,
// and every NaN pattern (sign cleared) is above +inf; so an integer max over |t|'s bits is the
// NaN-propagating max|t|, and integer max is a reduction the vectorizer may reorder freely.
template <typename T>
T AbsMax(const T* __restrict t, int64_t n) {
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  constexpr Bits kAbsMask = ~Bits{0} >> 1;
  SignedBits m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const SignedBits a = static_cast<SignedBits>(ToBits(t[i]) & kAbsMask);
    m = a > m ? a : m;
  }
  return FromBits<T>(static_cast<Bits>(m));
}

// DoReFa forward (Zhou et al. 2016, Eq. 9) on t = tanh(w); the same operation order as the
// composed expression, so the values agree bit for bit.
template <typename T>
void DorefaForward(const T* __restrict t, T* __restrict out, int64_t n, T two_m, T levels) {
  for (int64_t i = 0; i < n; ++i) {
    const T a = t[i] / two_m + T(0.5);
    out[i] = T(2) * (RoundNonNegative(a * levels) / levels) - T(1);
  }
}

template <typename T, bool kBroadcast>
double DorefaDotLoop(const T* __restrict g, const T* __restrict t, T m, int64_t n, int64_t* ties) {
  double lanes[kLanes] = {};
  alignas(64) double products[kChunk];
  int64_t tie_count = 0;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = MinIndex(kChunk, n - start);
    const T* gs = kBroadcast ? g : g + start;
    const T* ts = t + start;
    for (int64_t k = 0; k < len; ++k) {
      products[k] = static_cast<double>(kBroadcast ? gs[0] : gs[k]) * static_cast<double>(ts[k]);
      tie_count += static_cast<int64_t>(Abs(ts[k]) == m);
    }
    AccumulateLanes(products, len, lanes);
  }
  *ties += tie_count;
  return SumLanes(lanes);
}

template <typename T>
double DorefaDot(const T* g, bool broadcast_g, const T* t, T m, int64_t n, int64_t* ties) {
  return broadcast_g ? DorefaDotLoop<T, true>(g, t, m, n, ties)
                     : DorefaDotLoop<T, false>(g, t, m, n, ties);
}

template <typename T, bool kBroadcast>
void DorefaBackwardLoop(const T* __restrict g, const T* __restrict t, T* __restrict grad_w,
                        int64_t n, T two_m, T m, T share) {
  for (int64_t i = 0; i < n; ++i) {
    const T gv = kBroadcast ? g[0] : g[i];
    const T tv = t[i];
    const T direct = (gv + gv) / two_m;
    const T signed_share = tv > T(0) ? share : -share;
    const T via_max = Abs(tv) == m ? signed_share : T(0);
    grad_w[i] = (direct + via_max) * (T(1) - tv * tv);
  }
}

template <typename T>
void DorefaBackward(const T* g, bool broadcast_g, const T* t, T* grad_w, int64_t n, T two_m, T m,
                    T share) {
  if (broadcast_g) {
    DorefaBackwardLoop<T, true>(g, t, grad_w, n, two_m, m, share);
  } else {
    DorefaBackwardLoop<T, false>(g, t, grad_w, n, two_m, m, share);
  }
}

template <typename T>
constexpr Kernels<T> MakeKernels() {
  return Kernels<T>{&PactForward<T>,   &PactBackwardCodes<T>, &PactBackwardX<T>, &AbsMax<T>,
                    &DorefaForward<T>, &DorefaDot<T>,         &DorefaBackward<T>};
}

}  // namespace

const KernelTable& Table() {
  static constexpr KernelTable kTable = {PACT_KERNEL_STRINGIFY(PACT_KERNEL_ISA),
                                         MakeKernels<float>(), MakeKernels<double>()};
  return kTable;
}

}  // namespace pact::quant::kernels::PACT_KERNEL_ISA

#undef PACT_KERNEL_STRINGIFY
#undef PACT_KERNEL_STRINGIFY_INNER
