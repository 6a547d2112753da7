// Bit-level helpers of the per-ISA kernel sources (pact_kernels_impl.h, lsq_kernels_impl.h),
// included textually inside their per-ISA anonymous namespace, so each build keeps its own
// internal copy (the reason those files exist; see pact_kernels_impl.h). No include guard and no
// #include here: a translation unit that includes both kernel sources gets one copy in each
// namespace. Compiler builtins only.

// Lanes of the fixed-order double partial sums: lane j takes elements j, j + kLanes, ...
constexpr int kLanes = 8;

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

// The kLanes partial sums added in a fixed tree order.
inline double SumLanes(const double* lanes) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}
