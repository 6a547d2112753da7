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
// float PACT forward-with-mask and backward-from-mask, also have intrinsic versions, AVX2 in the
// AVX2 build and SSE2 (baseline x86-64) in the generic one: movemask and a per-lane bit test
// turn comparisons into mask bits and back in a few instructions, which GCC does not find.
// They perform the same operations in the same order, and pact_ops_test checks that both
// builds agree bit for bit.
#ifndef PACT_KERNEL_ISA
#error "define PACT_KERNEL_ISA before including pact_kernels_impl.h"
#endif

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pact/quant/pact_kernels.h"

#define PACT_KERNEL_STRINGIFY_INNER(x) #x
#define PACT_KERNEL_STRINGIFY(x) PACT_KERNEL_STRINGIFY_INNER(x)

namespace pact::quant::kernels::PACT_KERNEL_ISA {
namespace {

#include "pact/quant/kernel_bits_impl.h"

// Inner chunk: small enough that its scratch buffer stays in L1.
constexpr int64_t kChunk = 512;

inline float Abs(float v) { return __builtin_fabsf(v); }
inline double Abs(double v) { return __builtin_fabs(v); }

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

// PACT forward (Eq. 1 and 2) of one value. The clip is written as max(0, v) then min(alpha, c)
// in the operand order of SSE's maxps/minps, which return their second operand when either is
// NaN, so NaN stays NaN (like torch.clamp) without extra instructions.
template <typename T, bool kQuantize>
inline T PactValue(T v, T alpha, T scale, T step) {
  T c = T(0) > v ? T(0) : v;
  c = alpha < c ? alpha : c;
  if (kQuantize) c = RoundNonNegative(c * scale) * step;
  return c;
}

// Mask bits <-> one byte per element, eight at a time in a 64-bit word (byte j is element j:
// x86 is little-endian). Packing 0/1 bytes multiplies each byte j up to bit 56 + j; the partial
// products never overlap, so no carry disturbs the top byte.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "mask packing assumes little-endian");
inline unsigned PackFlags(const uint8_t* flags) {
  uint64_t bytes;
  __builtin_memcpy(&bytes, flags, sizeof(bytes));
  return static_cast<unsigned>((bytes * 0x0102040810204080ull) >> 56);
}
// Unpacking to 0 / -1 bytes: byte j of kByteMasks.masks[bits] is 0xff when bit j is set.
struct ByteMaskTable {
  uint64_t masks[256];
};
constexpr ByteMaskTable MakeByteMaskTable() {
  ByteMaskTable table{};
  for (unsigned bits = 0; bits < 256; ++bits) {
    for (unsigned j = 0; j < 8; ++j) {
      if ((bits >> j) & 1u) table.masks[bits] |= uint64_t{0xff} << (8 * j);
    }
  }
  return table;
}
constexpr ByteMaskTable kByteMasks = MakeByteMaskTable();

// The values and 0/1 comparison bytes in one vectorizable loop per chunk, then the chunk's mask
// words (pact_kernels.h): bit j of the low byte is x[j] >= 0, of the high byte x[j] >= alpha
// (NaN sets neither).
template <typename T, bool kQuantize, bool kMask>
void PactForwardLoop(const T* __restrict x, T* __restrict y, PactMaskWord* __restrict mask,
                     int64_t n, T alpha, T scale, T step) {
  static_assert(kChunk % kMaskGroup == 0, "chunks must hold whole mask groups");
  alignas(64) uint8_t ge0[kChunk];
  alignas(64) uint8_t ge_alpha[kChunk];
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = MinIndex(kChunk, n - start);
    const T* xs = x + start;
    T* ys = y + start;
    for (int64_t k = 0; k < len; ++k) {
      const T v = xs[k];
      ys[k] = PactValue<T, kQuantize>(v, alpha, scale, step);
      if (kMask) {
        ge0[k] = static_cast<uint8_t>(v >= T(0));
        ge_alpha[k] = static_cast<uint8_t>(v >= alpha);
      }
    }
    if (kMask) {
      for (int64_t k = len; k % kMaskGroup != 0; ++k) ge0[k] = ge_alpha[k] = 0;
      PactMaskWord* ms = mask + start / kMaskGroup;
      for (int64_t k = 0; k < len; k += kMaskGroup) {
        ms[k / kMaskGroup] =
            static_cast<PactMaskWord>(PackFlags(ge0 + k) | (PackFlags(ge_alpha + k) << 8));
      }
    }
  }
}

#if defined(__AVX2__)
// A 32-byte-aligned store of 8 floats; non-temporal when kStream (pact_kernels.h, `stream`).
template <bool kStream>
inline void StoreAligned8(float* p, __m256 v) {
  if (kStream) {
    _mm256_stream_ps(p, v);
  } else {
    _mm256_store_ps(p, v);
  }
}

inline bool Aligned32(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 31) == 0; }

// The float forward with the mask, hand-vectorized: one movemask per comparison gives a
// group's byte directly. Values and mask are bit-identical to PactForwardLoop (same
// operations, same order; the max/min operand order keeps NaN and -0.0 exactly as the scalar
// expressions do). y must be 32-byte aligned.
template <bool kQuantize, bool kStream>
void PactForwardMaskAvx2(const float* __restrict x, float* __restrict y,
                         PactMaskWord* __restrict mask, int64_t n, float alpha, float scale,
                         float step) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 vstep = _mm256_set1_ps(step);
  const __m256 magic = _mm256_set1_ps(FloatTraits<float>::kRoundMagic);
  int64_t i = 0;
  for (; i + 4 * kMaskGroup <= n; i += 4 * kMaskGroup) {
    uint64_t words = 0;  // four groups' words, the first group in the low 16 bits
    for (int u = 0; u < 4; ++u) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * u);
      __m256 c = _mm256_min_ps(va, _mm256_max_ps(zero, v));
      if (kQuantize) {
        c = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(c, vscale), magic), magic),
                          vstep);
      }
      StoreAligned8<kStream>(y + i + 8 * u, c);
      const auto ge0 =
          static_cast<uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ)));
      const auto ge_alpha =
          static_cast<uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, va, _CMP_GE_OQ)));
      words |= (ge0 | (ge_alpha << 8)) << (16 * u);
    }
    __builtin_memcpy(mask + i / kMaskGroup, &words, sizeof(words));  // little-endian x86
  }
  if (kStream) _mm_sfence();  // order the streamed stores before whatever the caller does next
  PactForwardLoop<float, kQuantize, true>(x + i, y + i, mask + i / kMaskGroup, n - i, alpha, scale,
                                          step);
}
#elif defined(__SSE2__)
// A 16-byte-aligned store of 4 floats; non-temporal when kStream.
template <bool kStream>
inline void StoreAligned4(float* p, __m128 v) {
  if (kStream) {
    _mm_stream_ps(p, v);
  } else {
    _mm_store_ps(p, v);
  }
}

inline bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// PactForwardMaskAvx2 with SSE2: two 4-lane halves per group, the same operations in the same
// order (bit-identical to it and to PactForwardLoop). y must be 16-byte aligned.
template <bool kQuantize, bool kStream>
void PactForwardMaskSse2(const float* __restrict x, float* __restrict y,
                         PactMaskWord* __restrict mask, int64_t n, float alpha, float scale,
                         float step) {
  const __m128 zero = _mm_setzero_ps();
  const __m128 va = _mm_set1_ps(alpha);
  const __m128 vscale = _mm_set1_ps(scale);
  const __m128 vstep = _mm_set1_ps(step);
  const __m128 magic = _mm_set1_ps(FloatTraits<float>::kRoundMagic);
  int64_t i = 0;
  for (; i + kMaskGroup <= n; i += kMaskGroup) {
    unsigned ge0 = 0, ge_alpha = 0;
    for (int u = 0; u < 2; ++u) {
      const __m128 v = _mm_loadu_ps(x + i + 4 * u);
      __m128 c = _mm_min_ps(va, _mm_max_ps(zero, v));
      if (kQuantize) {
        c = _mm_mul_ps(_mm_sub_ps(_mm_add_ps(_mm_mul_ps(c, vscale), magic), magic), vstep);
      }
      StoreAligned4<kStream>(y + i + 4 * u, c);
      ge0 |= static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(v, zero))) << (4 * u);
      ge_alpha |= static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(v, va))) << (4 * u);
    }
    mask[i / kMaskGroup] = static_cast<PactMaskWord>(ge0 | (ge_alpha << 8));
  }
  if (kStream) _mm_sfence();
  PactForwardLoop<float, kQuantize, true>(x + i, y + i, mask + i / kMaskGroup, n - i, alpha, scale,
                                          step);
}
#endif  // __AVX2__, __SSE2__

template <typename T>
void PactForward(const T* x, T* y, PactMaskWord* mask, int64_t n, T alpha, T scale, T step,
                 bool quantize, bool stream) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (mask != nullptr && Aligned32(y)) {
      if (quantize) {
        stream ? PactForwardMaskAvx2<true, true>(x, y, mask, n, alpha, scale, step)
               : PactForwardMaskAvx2<true, false>(x, y, mask, n, alpha, scale, step);
      } else {
        stream ? PactForwardMaskAvx2<false, true>(x, y, mask, n, alpha, scale, step)
               : PactForwardMaskAvx2<false, false>(x, y, mask, n, alpha, scale, step);
      }
      return;
    }
  }
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (mask != nullptr && Aligned16(y)) {
      if (quantize) {
        stream ? PactForwardMaskSse2<true, true>(x, y, mask, n, alpha, scale, step)
               : PactForwardMaskSse2<true, false>(x, y, mask, n, alpha, scale, step);
      } else {
        stream ? PactForwardMaskSse2<false, true>(x, y, mask, n, alpha, scale, step)
               : PactForwardMaskSse2<false, false>(x, y, mask, n, alpha, scale, step);
      }
      return;
    }
  }
#endif
  (void)stream;  // the portable loops store normally
  if (quantize) {
    if (mask != nullptr) {
      PactForwardLoop<T, true, true>(x, y, mask, n, alpha, scale, step);
    } else {
      PactForwardLoop<T, true, false>(x, y, mask, n, alpha, scale, step);
    }
  } else if (mask != nullptr) {
    PactForwardLoop<T, false, true>(x, y, mask, n, alpha, scale, step);
  } else {
    PactForwardLoop<T, false, false>(x, y, mask, n, alpha, scale, step);
  }
}

// PACT backward from the mask (Eq. 3): inside = low & ~high, above = high. Per chunk the mask
// becomes 0 / -1 bytes (a table lookup per group), then one vectorizable loop selects the
// gradients; lane j of the sum takes element j of every group, in group order.
template <typename T, bool kBroadcast>
double PactBackwardMaskLoop(const T* __restrict g, const PactMaskWord* __restrict mask,
                            T* __restrict grad_x, int64_t n) {
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  static_assert(kLanes == kMaskGroup, "lane j takes bit j of every word");
  double lanes[kLanes] = {};
  alignas(64) int8_t inside[kChunk];
  alignas(64) int8_t is_above[kChunk];
  alignas(64) T above[kChunk];
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = MinIndex(kChunk, n - start);
    const PactMaskWord* ms = mask + start / kMaskGroup;
    for (int64_t k = 0; k < len; k += kMaskGroup) {
      const unsigned word = ms[k / kMaskGroup];
      __builtin_memcpy(inside + k, &kByteMasks.masks[word & ~(word >> 8) & 0xffu], 8);
      __builtin_memcpy(is_above + k, &kByteMasks.masks[word >> 8], 8);
    }
    const T* gs = kBroadcast ? g : g + start;
    T* gx = grad_x + start;
    for (int64_t k = 0; k < len; ++k) {
      const Bits gb = ToBits(kBroadcast ? gs[0] : gs[k]);
      // The byte masks sign-extended to the value's width.
      gx[k] = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(inside[k])));
      above[k] = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(is_above[k])));
    }
    AccumulateLanes(above, len, lanes);
  }
  return SumLanes(lanes);
}

#if defined(__AVX2__)
// The float backward from the mask, hand-vectorized: a group's byte becomes a lane mask by
// sign-extending its kByteMasks entry, one load and one shuffle (broadcasting the byte and testing
// bit j in lane j takes four instructions, and measured slower: README.md, Benchmarks). The two
// double accumulators are lanes 0-3 and 4-7 of PactBackwardMaskLoop, added in the same order, so
// the sum is bit-identical. grad_x must be 32-byte aligned.
template <bool kStream>
double PactBackwardMaskAvx2(const float* __restrict g, const PactMaskWord* __restrict mask,
                            float* __restrict grad_x, int64_t n) {
  __m256d low = _mm256_setzero_pd();   // lanes 0-3
  __m256d high = _mm256_setzero_pd();  // lanes 4-7
  int64_t i = 0;
  for (; i + kMaskGroup <= n; i += kMaskGroup) {
    const unsigned word = mask[i / kMaskGroup];
    const unsigned above = word >> 8;
    const __m256 inside_mask = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
        reinterpret_cast<const __m128i*>(&kByteMasks.masks[word & ~above & 0xFFu]))));
    const __m256 above_mask = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(&kByteMasks.masks[above]))));
    const __m256 gv = _mm256_loadu_ps(g + i);
    StoreAligned8<kStream>(grad_x + i, _mm256_and_ps(gv, inside_mask));
    const __m256 above_g = _mm256_and_ps(gv, above_mask);
    low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(above_g)));
    high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(above_g, 1)));
  }
  if (kStream) _mm_sfence();
  alignas(32) double lanes[kLanes];
  _mm256_store_pd(lanes, low);
  _mm256_store_pd(lanes + 4, high);
  if (i < n) {  // the last, partial group
    const unsigned word = mask[i / kMaskGroup];
    const unsigned above = word >> 8;
    const unsigned inside = word & ~above & 0xFFu;
    for (int j = 0; i + j < n; ++j) {
      grad_x[i + j] = (inside >> j) & 1u ? g[i + j] : 0.0f;
      if ((above >> j) & 1u) lanes[j] += static_cast<double>(g[i + j]);
    }
  }
  return SumLanes(lanes);
}
#elif defined(__SSE2__)
// Eight 0 / -1 bytes (a kByteMasks entry) as the 0 / -1 dword masks of lanes 0-3 (out[0]) and
// 4-7 (out[1]): each byte unpacked with itself twice.
inline void DwordMasks(uint64_t byte_masks, __m128i out[2]) {
  const __m128i bytes = _mm_cvtsi64_si128(static_cast<long long>(byte_masks));
  const __m128i words = _mm_unpacklo_epi8(bytes, bytes);
  out[0] = _mm_unpacklo_epi16(words, words);
  out[1] = _mm_unpackhi_epi16(words, words);
}

// PactBackwardMaskAvx2 with SSE2: four double accumulators hold lanes 0-1, 2-3, 4-5 and 6-7,
// added in the same order (bit-identical). grad_x must be 16-byte aligned.
template <bool kStream>
double PactBackwardMaskSse2(const float* __restrict g, const PactMaskWord* __restrict mask,
                            float* __restrict grad_x, int64_t n) {
  __m128d acc[4] = {_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()};
  int64_t i = 0;
  for (; i + kMaskGroup <= n; i += kMaskGroup) {
    const unsigned word = mask[i / kMaskGroup];
    const unsigned above = word >> 8;
    __m128i inside_mask[2], above_mask[2];
    DwordMasks(kByteMasks.masks[word & ~above & 0xFFu], inside_mask);
    DwordMasks(kByteMasks.masks[above], above_mask);
    for (int u = 0; u < 2; ++u) {
      const __m128 gv = _mm_loadu_ps(g + i + 4 * u);
      StoreAligned4<kStream>(grad_x + i + 4 * u, _mm_and_ps(gv, _mm_castsi128_ps(inside_mask[u])));
      const __m128 above_g = _mm_and_ps(gv, _mm_castsi128_ps(above_mask[u]));
      acc[2 * u] = _mm_add_pd(acc[2 * u], _mm_cvtps_pd(above_g));
      acc[2 * u + 1] = _mm_add_pd(acc[2 * u + 1], _mm_cvtps_pd(_mm_movehl_ps(above_g, above_g)));
    }
  }
  if (kStream) _mm_sfence();
  alignas(16) double lanes[kLanes];
  for (int k = 0; k < 4; ++k) _mm_store_pd(lanes + 2 * k, acc[k]);
  if (i < n) {  // the last, partial group
    const unsigned word = mask[i / kMaskGroup];
    const unsigned above = word >> 8;
    const unsigned inside = word & ~above & 0xFFu;
    for (int j = 0; i + j < n; ++j) {
      grad_x[i + j] = (inside >> j) & 1u ? g[i + j] : 0.0f;
      if ((above >> j) & 1u) lanes[j] += static_cast<double>(g[i + j]);
    }
  }
  return SumLanes(lanes);
}
#endif  // __AVX2__, __SSE2__

template <typename T>
double PactBackwardMask(const T* g, bool broadcast_g, const PactMaskWord* mask, T* grad_x,
                        int64_t n, bool stream) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (!broadcast_g && Aligned32(grad_x)) {
      return stream ? PactBackwardMaskAvx2<true>(g, mask, grad_x, n)
                    : PactBackwardMaskAvx2<false>(g, mask, grad_x, n);
    }
  }
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (!broadcast_g && Aligned16(grad_x)) {
      return stream ? PactBackwardMaskSse2<true>(g, mask, grad_x, n)
                    : PactBackwardMaskSse2<false>(g, mask, grad_x, n);
    }
  }
#endif
  (void)stream;  // the portable loops store normally
  return broadcast_g ? PactBackwardMaskLoop<T, true>(g, mask, grad_x, n)
                     : PactBackwardMaskLoop<T, false>(g, mask, grad_x, n);
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

// ---------------------------------------------------------------------------------------------
// Fused BatchNorm + activation. Sums use kSumLanes double lanes: element i of the plane goes to
// lane i % kSumLanes, whichever build runs, so the results are bit-identical across builds.
static_assert(kSumLanes == kLanes, "the BatchNorm lanes follow the reduction lanes");

template <typename T>
void BnStats(const T* __restrict x, int64_t n, T shift, double* __restrict lanes) {
  double s1[kLanes], s2[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    s1[j] = lanes[j];
    s2[j] = lanes[kLanes + j];
  }
  const double k = static_cast<double>(shift);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double d = static_cast<double>(x[i + j]) - k;
      s1[j] += d;
      s2[j] += d * d;
    }
  }
  for (int j = 0; i < n; ++i, ++j) {
    const double d = static_cast<double>(x[i]) - k;
    s1[j] += d;
    s2[j] += d * d;
  }
  for (int j = 0; j < kLanes; ++j) {
    lanes[j] = s1[j];
    lanes[kLanes + j] = s2[j];
  }
}

// The activation of z with its code; the same expressions as PactValue and PactForwardLoop for
// PACT.
template <typename T, bool kRelu, bool kQuantize>
inline T ClipValue(T z, const ClipParams<T>& clip, uint8_t* code) {
  T c = T(0) > z ? T(0) : z;
  if (kRelu) {
    *code = static_cast<uint8_t>(!(z <= T(0)));  // kCodeInside or kCodeBelow
    return c;
  }
  c = clip.alpha < c ? clip.alpha : c;
  if (kQuantize) c = RoundNonNegative(c * clip.scale) * clip.step;
  *code = static_cast<uint8_t>(static_cast<int>(z >= T(0)) + static_cast<int>(z >= clip.alpha));
  return c;
}

template <typename T, bool kRelu, bool kQuantize, bool kResidual, bool kCodes>
void BnActForwardLoop(const T* __restrict x, const T* __restrict r, T* __restrict y,
                      uint8_t* __restrict code, int64_t n, T scale, T shift,
                      const ClipParams<T>& clip) {
  const ClipParams<T> p = clip;
  for (int64_t i = 0; i < n; ++i) {
    T z = x[i] * scale + shift;
    if (kResidual) z = z + r[i];
    uint8_t c;
    y[i] = ClipValue<T, kRelu, kQuantize>(z, p, &c);
    if (kCodes) code[i] = c;
  }
}

template <typename T, bool kRelu, bool kQuantize>
void BnActForwardAct(const T* x, const T* r, T* y, uint8_t* code, int64_t n, T scale, T shift,
                     const ClipParams<T>& clip) {
  if (r != nullptr) {
    if (code != nullptr) {
      BnActForwardLoop<T, kRelu, kQuantize, true, true>(x, r, y, code, n, scale, shift, clip);
    } else {
      BnActForwardLoop<T, kRelu, kQuantize, true, false>(x, r, y, code, n, scale, shift, clip);
    }
  } else if (code != nullptr) {
    BnActForwardLoop<T, kRelu, kQuantize, false, true>(x, r, y, code, n, scale, shift, clip);
  } else {
    BnActForwardLoop<T, kRelu, kQuantize, false, false>(x, r, y, code, n, scale, shift, clip);
  }
}

template <typename T>
void BnActForward(const T* x, const T* r, T* y, uint8_t* code, int64_t n, T scale, T shift,
                  const ClipParams<T>& clip) {
  if (clip.relu) {
    BnActForwardAct<T, true, false>(x, r, y, code, n, scale, shift, clip);
  } else if (clip.quantize) {
    BnActForwardAct<T, false, true>(x, r, y, code, n, scale, shift, clip);
  } else {
    BnActForwardAct<T, false, false>(x, r, y, code, n, scale, shift, clip);
  }
}

template <typename T, bool kMasked>
void BnActBackwardReduceLoop(const T* __restrict g, const uint8_t* __restrict code,
                             const T* __restrict x, T mean, T* __restrict g_masked, int64_t n,
                             double* __restrict lanes) {
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  double sg[kLanes], sgx[kLanes], sa[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    sg[j] = lanes[j];
    sgx[j] = lanes[kLanes + j];
    sa[j] = lanes[2 * kLanes + j];
  }
  auto element = [&](int64_t i, int j) {
    const Bits gb = ToBits(g[i]);
    const int8_t inside = static_cast<int8_t>(-(code[i] & 1));
    const int8_t is_above = static_cast<int8_t>(-(code[i] >> 1));
    const T gm = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(inside)));
    const T ga = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(is_above)));
    if (kMasked) g_masked[i] = gm;
    const double gd = static_cast<double>(gm);
    sg[j] += gd;
    sgx[j] += static_cast<double>(x[i] - mean) * gd;
    sa[j] += static_cast<double>(ga);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) element(i + j, j);
  }
  for (int j = 0; i < n; ++i, ++j) element(i, j);
  for (int j = 0; j < kLanes; ++j) {
    lanes[j] = sg[j];
    lanes[kLanes + j] = sgx[j];
    lanes[2 * kLanes + j] = sa[j];
  }
}

template <typename T>
void BnActBackwardReduce(const T* g, const uint8_t* code, const T* x, T mean, T* g_masked,
                         int64_t n, double* lanes) {
  if (g_masked != nullptr) {
    BnActBackwardReduceLoop<T, true>(g, code, x, mean, g_masked, n, lanes);
  } else {
    BnActBackwardReduceLoop<T, false>(g, code, x, mean, g_masked, n, lanes);
  }
}

template <typename T>
void BnBackwardApply(const T* __restrict g, const uint8_t* __restrict code, const T* __restrict x,
                     T* __restrict grad_x, int64_t n, T mean, T grad_mean, T k, T invstd, T w) {
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  for (int64_t i = 0; i < n; ++i) {
    const int8_t inside = static_cast<int8_t>(-(code[i] & 1));
    const T gm = FromBits<T>(ToBits(g[i]) & static_cast<Bits>(static_cast<SignedBits>(inside)));
    grad_x[i] = (gm - grad_mean - (x[i] - mean) * k) * invstd * w;
  }
}

// Channels-last versions: the inner loop runs over the channels of one pixel, which the
// vectorizer turns into per-channel vector accumulators.
// The NHWC reductions walk kChannelGroup channels at a time down the rows of the block, so the
// group's sums live in registers (a loop over all channels per row would load and store every
// sum once per row); each channel still adds its rows in row order.
constexpr int64_t kChannelGroup = 8;

template <typename T, int64_t kWidth>
void BnStatsNhwcGroup(const T* __restrict x, int64_t rows, int64_t c, const T* __restrict shift,
                      double* __restrict s1, double* __restrict s2) {
  double a1[kWidth], a2[kWidth], k[kWidth];
  for (int64_t j = 0; j < kWidth; ++j) {
    a1[j] = s1[j];
    a2[j] = s2[j];
    k[j] = static_cast<double>(shift[j]);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    for (int64_t j = 0; j < kWidth; ++j) {
      const double d = static_cast<double>(xr[j]) - k[j];
      a1[j] += d;
      a2[j] += d * d;
    }
  }
  for (int64_t j = 0; j < kWidth; ++j) {
    s1[j] = a1[j];
    s2[j] = a2[j];
  }
}

#if defined(__AVX2__)
// BnStatsNhwcGroup<float, 8> by hand (GCC scalarizes the squares): the same operations per
// channel in the same order, so the sums are bit-identical.
void BnStatsNhwcGroupAvx2(const float* __restrict x, int64_t rows, int64_t c,
                          const float* __restrict shift, double* __restrict s1,
                          double* __restrict s2) {
  const __m256 k = _mm256_loadu_ps(shift);
  const __m256d k_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(k));
  const __m256d k_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(k, 1));
  __m256d a1_lo = _mm256_loadu_pd(s1), a1_hi = _mm256_loadu_pd(s1 + 4);
  __m256d a2_lo = _mm256_loadu_pd(s2), a2_hi = _mm256_loadu_pd(s2 + 4);
  for (int64_t r = 0; r < rows; ++r) {
    const __m256 v = _mm256_loadu_ps(x + r * c);
    const __m256d d_lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), k_lo);
    const __m256d d_hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), k_hi);
    a1_lo = _mm256_add_pd(a1_lo, d_lo);
    a1_hi = _mm256_add_pd(a1_hi, d_hi);
    a2_lo = _mm256_add_pd(a2_lo, _mm256_mul_pd(d_lo, d_lo));
    a2_hi = _mm256_add_pd(a2_hi, _mm256_mul_pd(d_hi, d_hi));
  }
  _mm256_storeu_pd(s1, a1_lo);
  _mm256_storeu_pd(s1 + 4, a1_hi);
  _mm256_storeu_pd(s2, a2_lo);
  _mm256_storeu_pd(s2 + 4, a2_hi);
}
#endif  // __AVX2__

template <typename T>
void BnStatsNhwc(const T* x, int64_t rows, int64_t c, const T* shift, double* sums) {
  int64_t ch = 0;
  for (; ch + kChannelGroup <= c; ch += kChannelGroup) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == sizeof(float)) {
      BnStatsNhwcGroupAvx2(x + ch, rows, c, shift + ch, sums + ch, sums + c + ch);
      continue;
    }
#endif
    BnStatsNhwcGroup<T, kChannelGroup>(x + ch, rows, c, shift + ch, sums + ch, sums + c + ch);
  }
  for (; ch < c; ++ch)
    BnStatsNhwcGroup<T, 1>(x + ch, rows, c, shift + ch, sums + ch, sums + c + ch);
}

template <typename T, bool kRelu, bool kQuantize, bool kResidual, bool kCodes>
void BnActForwardNhwcLoop(const T* __restrict x, const T* __restrict r, T* __restrict y,
                          uint8_t* __restrict code, int64_t rows, int64_t c,
                          const T* __restrict scale, const T* __restrict shift,
                          const ClipParams<T>& clip) {
  const ClipParams<T> p = clip;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t off = row * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      T z = x[off + ch] * scale[ch] + shift[ch];
      if (kResidual) z = z + r[off + ch];
      uint8_t cd;
      y[off + ch] = ClipValue<T, kRelu, kQuantize>(z, p, &cd);
      if (kCodes) code[off + ch] = cd;
    }
  }
}

template <typename T, bool kRelu, bool kQuantize>
void BnActForwardNhwcAct(const T* x, const T* r, T* y, uint8_t* code, int64_t rows, int64_t c,
                         const T* scale, const T* shift, const ClipParams<T>& clip) {
  if (r != nullptr) {
    if (code != nullptr) {
      BnActForwardNhwcLoop<T, kRelu, kQuantize, true, true>(x, r, y, code, rows, c, scale, shift,
                                                            clip);
    } else {
      BnActForwardNhwcLoop<T, kRelu, kQuantize, true, false>(x, r, y, code, rows, c, scale, shift,
                                                             clip);
    }
  } else if (code != nullptr) {
    BnActForwardNhwcLoop<T, kRelu, kQuantize, false, true>(x, r, y, code, rows, c, scale, shift,
                                                           clip);
  } else {
    BnActForwardNhwcLoop<T, kRelu, kQuantize, false, false>(x, r, y, code, rows, c, scale, shift,
                                                            clip);
  }
}

#if defined(__AVX2__)
// The float NHWC elementwise passes by hand for c % 8 == 0 (GCC's code for a row loop over an
// unknown channel count is mostly address arithmetic and 128-bit ops): tiles of kTileRows
// rows (in L1), 8 channels at a time with their per-channel values in registers. Same
// operations in the same order as the generic loops (bit-identical results).
constexpr int64_t kTileRows = 64;

// 8 codes held as 0 / -1 / -2 per 32-bit lane, negated and stored as 8 bytes.
inline void StoreCodes8(uint8_t* dst, __m256i sums) {
  const __m256i words = _mm256_packs_epi32(sums, sums);  // per half: s0-3 s0-3 | s4-7 s4-7
  const __m256i bytes = _mm256_packs_epi16(words, words);
  const __m128i ordered =
      _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_sub_epi8(_mm_setzero_si128(), ordered));
}

template <bool kRelu, bool kQuantize, bool kResidual, bool kCodes>
void BnActForwardNhwcAvx2(const float* __restrict x, const float* __restrict r, float* __restrict y,
                          uint8_t* __restrict code, int64_t rows, int64_t c,
                          const float* __restrict scale, const float* __restrict shift,
                          const ClipParams<float>& clip) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 va = _mm256_set1_ps(clip.alpha);
  const __m256 vscale = _mm256_set1_ps(clip.scale);
  const __m256 vstep = _mm256_set1_ps(clip.step);
  const __m256 magic = _mm256_set1_ps(FloatTraits<float>::kRoundMagic);
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const int64_t r1 = MinIndex(rows, r0 + kTileRows);
    for (int64_t ch = 0; ch < c; ch += 8) {
      const __m256 a = _mm256_loadu_ps(scale + ch);
      const __m256 b = _mm256_loadu_ps(shift + ch);
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t off = row * c + ch;
        __m256 z = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + off), a), b);
        if (kResidual) z = _mm256_add_ps(z, _mm256_loadu_ps(r + off));
        __m256 v = _mm256_max_ps(zero, z);  // 0 > z ? 0 : z, NaN stays
        __m256i sums;
        if (kRelu) {
          sums = _mm256_castps_si256(_mm256_cmp_ps(z, zero, _CMP_NLE_UQ));  // !(z <= 0)
        } else {
          v = _mm256_min_ps(va, v);  // alpha < v ? alpha : v
          if (kQuantize) {
            v = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v, vscale), magic), magic),
                              vstep);
          }
          sums = _mm256_add_epi32(_mm256_castps_si256(_mm256_cmp_ps(z, zero, _CMP_GE_OQ)),
                                  _mm256_castps_si256(_mm256_cmp_ps(z, va, _CMP_GE_OQ)));
        }
        _mm256_storeu_ps(y + off, v);
        if (kCodes) StoreCodes8(code + off, sums);
      }
    }
  }
}

template <bool kRelu, bool kQuantize>
void BnActForwardNhwcAvx2Dispatch(const float* x, const float* r, float* y, uint8_t* code,
                                  int64_t rows, int64_t c, const float* scale, const float* shift,
                                  const ClipParams<float>& clip) {
  if (r != nullptr) {
    if (code != nullptr) {
      BnActForwardNhwcAvx2<kRelu, kQuantize, true, true>(x, r, y, code, rows, c, scale, shift,
                                                         clip);
    } else {
      BnActForwardNhwcAvx2<kRelu, kQuantize, true, false>(x, r, y, code, rows, c, scale, shift,
                                                          clip);
    }
  } else if (code != nullptr) {
    BnActForwardNhwcAvx2<kRelu, kQuantize, false, true>(x, r, y, code, rows, c, scale, shift, clip);
  } else {
    BnActForwardNhwcAvx2<kRelu, kQuantize, false, false>(x, r, y, code, rows, c, scale, shift,
                                                         clip);
  }
}

void BnBackwardApplyNhwcAvx2(const float* __restrict g, const uint8_t* __restrict code,
                             const float* __restrict x, float* __restrict grad_x, int64_t rows,
                             int64_t c, const float* __restrict mean,
                             const float* __restrict grad_mean, const float* __restrict k,
                             const float* __restrict invstd, const float* __restrict w) {
  const __m256i one = _mm256_set1_epi32(kCodeInside);
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const int64_t r1 = MinIndex(rows, r0 + kTileRows);
    for (int64_t ch = 0; ch < c; ch += 8) {
      const __m256 mu = _mm256_loadu_ps(mean + ch);
      const __m256 gmean = _mm256_loadu_ps(grad_mean + ch);
      const __m256 kk = _mm256_loadu_ps(k + ch);
      const __m256 is = _mm256_loadu_ps(invstd + ch);
      const __m256 ww = _mm256_loadu_ps(w + ch);
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t off = row * c + ch;
        const __m256i cd =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + off)));
        const __m256 gm = _mm256_and_ps(_mm256_loadu_ps(g + off),
                                        _mm256_castsi256_ps(_mm256_cmpeq_epi32(cd, one)));
        const __m256 xc = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + off), mu), kk);
        const __m256 v =
            _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(gm, gmean), xc), is), ww);
        _mm256_storeu_ps(grad_x + off, v);
      }
    }
  }
}
#endif  // __AVX2__

template <typename T>
void BnActForwardNhwc(const T* x, const T* r, T* y, uint8_t* code, int64_t rows, int64_t c,
                      const T* scale, const T* shift, const ClipParams<T>& clip) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (c % 8 == 0) {
      if (clip.relu) {
        BnActForwardNhwcAvx2Dispatch<true, false>(x, r, y, code, rows, c, scale, shift, clip);
      } else if (clip.quantize) {
        BnActForwardNhwcAvx2Dispatch<false, true>(x, r, y, code, rows, c, scale, shift, clip);
      } else {
        BnActForwardNhwcAvx2Dispatch<false, false>(x, r, y, code, rows, c, scale, shift, clip);
      }
      return;
    }
  }
#endif
  if (clip.relu) {
    BnActForwardNhwcAct<T, true, false>(x, r, y, code, rows, c, scale, shift, clip);
  } else if (clip.quantize) {
    BnActForwardNhwcAct<T, false, true>(x, r, y, code, rows, c, scale, shift, clip);
  } else {
    BnActForwardNhwcAct<T, false, false>(x, r, y, code, rows, c, scale, shift, clip);
  }
}

template <typename T, bool kMasked, int64_t kWidth>
void BnActBackwardReduceNhwcGroup(const T* __restrict g, const uint8_t* __restrict code,
                                  const T* __restrict x, const T* __restrict mean,
                                  T* __restrict g_masked, int64_t rows, int64_t c,
                                  double* __restrict sg, double* __restrict sgx,
                                  double* __restrict sa) {
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  double ag[kWidth], agx[kWidth], aa[kWidth];
  T mu[kWidth];
  for (int64_t j = 0; j < kWidth; ++j) {
    ag[j] = sg[j];
    agx[j] = sgx[j];
    aa[j] = sa[j];
    mu[j] = mean[j];
  }
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t off = row * c;
    for (int64_t j = 0; j < kWidth; ++j) {
      const Bits gb = ToBits(g[off + j]);
      const uint8_t cd = code[off + j];
      const int8_t inside = static_cast<int8_t>(-(cd & 1));
      const int8_t is_above = static_cast<int8_t>(-(cd >> 1));
      const T gm = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(inside)));
      const T ga = FromBits<T>(gb & static_cast<Bits>(static_cast<SignedBits>(is_above)));
      if (kMasked) g_masked[off + j] = gm;
      const double gd = static_cast<double>(gm);
      ag[j] += gd;
      agx[j] += static_cast<double>(x[off + j] - mu[j]) * gd;
      aa[j] += static_cast<double>(ga);
    }
  }
  for (int64_t j = 0; j < kWidth; ++j) {
    sg[j] = ag[j];
    sgx[j] = agx[j];
    sa[j] = aa[j];
  }
}

#if defined(__AVX2__)
// BnActBackwardReduceNhwcGroup<float, kMasked, 8> by hand, with the same operations per
// channel in the same order (bit-identical sums).
template <bool kMasked>
void BnActBackwardReduceNhwcGroupAvx2(const float* __restrict g, const uint8_t* __restrict code,
                                      const float* __restrict x, const float* __restrict mean,
                                      float* __restrict g_masked, int64_t rows, int64_t c,
                                      double* __restrict sg, double* __restrict sgx,
                                      double* __restrict sa) {
  const __m256i one = _mm256_set1_epi32(kCodeInside);
  const __m256i two = _mm256_set1_epi32(kCodeAbove);
  const __m256 mu = _mm256_loadu_ps(mean);
  __m256d ag_lo = _mm256_loadu_pd(sg), ag_hi = _mm256_loadu_pd(sg + 4);
  __m256d agx_lo = _mm256_loadu_pd(sgx), agx_hi = _mm256_loadu_pd(sgx + 4);
  __m256d aa_lo = _mm256_loadu_pd(sa), aa_hi = _mm256_loadu_pd(sa + 4);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t off = row * c;
    const __m256i cd =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + off)));
    const __m256 gv = _mm256_loadu_ps(g + off);
    const __m256 gm = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(cd, one)));
    const __m256 ga = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(cd, two)));
    if (kMasked) _mm256_storeu_ps(g_masked + off, gm);
    const __m256d gd_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(gm));
    const __m256d gd_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(gm, 1));
    const __m256 xc = _mm256_sub_ps(_mm256_loadu_ps(x + off), mu);
    ag_lo = _mm256_add_pd(ag_lo, gd_lo);
    ag_hi = _mm256_add_pd(ag_hi, gd_hi);
    agx_lo =
        _mm256_add_pd(agx_lo, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xc)), gd_lo));
    agx_hi =
        _mm256_add_pd(agx_hi, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xc, 1)), gd_hi));
    aa_lo = _mm256_add_pd(aa_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(ga)));
    aa_hi = _mm256_add_pd(aa_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(ga, 1)));
  }
  _mm256_storeu_pd(sg, ag_lo);
  _mm256_storeu_pd(sg + 4, ag_hi);
  _mm256_storeu_pd(sgx, agx_lo);
  _mm256_storeu_pd(sgx + 4, agx_hi);
  _mm256_storeu_pd(sa, aa_lo);
  _mm256_storeu_pd(sa + 4, aa_hi);
}
#endif  // __AVX2__

template <typename T, bool kMasked>
void BnActBackwardReduceNhwcLoop(const T* g, const uint8_t* code, const T* x, const T* mean,
                                 T* g_masked, int64_t rows, int64_t c, double* sums) {
  int64_t ch = 0;
  for (; ch + kChannelGroup <= c; ch += kChannelGroup) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == sizeof(float)) {
      BnActBackwardReduceNhwcGroupAvx2<kMasked>(g + ch, code + ch, x + ch, mean + ch,
                                                kMasked ? g_masked + ch : nullptr, rows, c,
                                                sums + ch, sums + c + ch, sums + 2 * c + ch);
      continue;
    }
#endif
    BnActBackwardReduceNhwcGroup<T, kMasked, kChannelGroup>(
        g + ch, code + ch, x + ch, mean + ch, kMasked ? g_masked + ch : nullptr, rows, c, sums + ch,
        sums + c + ch, sums + 2 * c + ch);
  }
  for (; ch < c; ++ch) {
    BnActBackwardReduceNhwcGroup<T, kMasked, 1>(g + ch, code + ch, x + ch, mean + ch,
                                                kMasked ? g_masked + ch : nullptr, rows, c,
                                                sums + ch, sums + c + ch, sums + 2 * c + ch);
  }
}

template <typename T>
void BnActBackwardReduceNhwc(const T* g, const uint8_t* code, const T* x, const T* mean,
                             T* g_masked, int64_t rows, int64_t c, double* sums) {
  if (g_masked != nullptr) {
    BnActBackwardReduceNhwcLoop<T, true>(g, code, x, mean, g_masked, rows, c, sums);
  } else {
    BnActBackwardReduceNhwcLoop<T, false>(g, code, x, mean, g_masked, rows, c, sums);
  }
}

template <typename T>
void BnBackwardApplyNhwc(const T* __restrict g, const uint8_t* __restrict code,
                         const T* __restrict x, T* __restrict grad_x, int64_t rows, int64_t c,
                         const T* __restrict mean, const T* __restrict grad_mean,
                         const T* __restrict k, const T* __restrict invstd, const T* __restrict w) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == sizeof(float)) {
    if (c % 8 == 0) {
      BnBackwardApplyNhwcAvx2(g, code, x, grad_x, rows, c, mean, grad_mean, k, invstd, w);
      return;
    }
  }
#endif
  using Bits = typename FloatTraits<T>::Bits;
  using SignedBits = typename FloatTraits<T>::SignedBits;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t off = row * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      const int8_t inside = static_cast<int8_t>(-(code[off + ch] & 1));
      const T gm =
          FromBits<T>(ToBits(g[off + ch]) & static_cast<Bits>(static_cast<SignedBits>(inside)));
      grad_x[off + ch] =
          (gm - grad_mean[ch] - (x[off + ch] - mean[ch]) * k[ch]) * invstd[ch] * w[ch];
    }
  }
}

template <typename T>
constexpr Kernels<T> MakeKernels() {
  return Kernels<T>{&PactForward<T>,        &PactBackwardMask<T>,
                    &PactBackwardX<T>,      &AbsMax<T>,
                    &DorefaForward<T>,      &DorefaDot<T>,
                    &DorefaBackward<T>,     &BnStats<T>,
                    &BnActForward<T>,       &BnActBackwardReduce<T>,
                    &BnBackwardApply<T>,    &BnStatsNhwc<T>,
                    &BnActForwardNhwc<T>,   &BnActBackwardReduceNhwc<T>,
                    &BnBackwardApplyNhwc<T>};
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
