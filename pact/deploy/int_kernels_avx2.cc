// The AVX2 build of the integer kernels, for CPUs without AVX-512 VNNI; only called after
// int_kernels.cc checked the CPU. The u8 x s8 products use vpmaddubsw (pairs summed in int16,
// saturating: exact while |a0 * w0 + a1 * w1| <= 32767, the table's u8_pair_limit) and
// vpmaddwd against ones to widen to int32; the rest are the portable loops compiled for AVX2.
#include <immintrin.h>

#define INT_KERNELS_ISA avx2
#define INT_KERNELS_NAME "avx2"
#define INT_KERNELS_OWN_TABLE
#include "pact/deploy/int_kernels_portable_impl.h"

namespace pact::deploy::kernels::avx2 {
namespace {

// kRows rows x 16 columns (two vectors of 8 int32), the rows' inputs given by pointer (row r
// reads kernel row ky at ar[r] + ky * row_bytes, `run` bytes, as the VNNI ConvBlock).
template <int kRows>
void Block(const uint8_t* const* ar, int64_t rows, int64_t row_bytes, int64_t kh, int64_t run,
           const int8_t* w, int64_t n_pad, int64_t cols, int32_t* c, int64_t ldc) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const int64_t w_step = n_pad * 4;
  for (int64_t ky = 0; ky < kh; ++ky) {
    const int64_t offset = ky * row_bytes;
    for (int64_t q = 0; q < run; q += 4) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32));
      for (int r = 0; r < kRows; ++r) {
        int32_t quad;
        __builtin_memcpy(&quad, ar[r] + offset + q, 4);
        const __m256i a = _mm256_set1_epi32(quad);
        acc[r][0] =
            _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a, w0), ones));
        acc[r][1] =
            _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, w1), ones));
      }
      w += w_step;
    }
  }
  alignas(32) int32_t buffer[16];
  for (int r = 0; r < kRows && r < rows; ++r) {
    if (cols >= 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc[r][1]);
    } else {
      _mm256_store_si256(reinterpret_cast<__m256i*>(buffer), acc[r][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(buffer + 8), acc[r][1]);
      std::memcpy(c + r * ldc, buffer, static_cast<size_t>(cols) * sizeof(int32_t));
    }
  }
}

constexpr int kRows = 4;

void GemmU8S8Avx2(const uint8_t* a, int64_t m, int64_t lda, const int8_t* w, int64_t k4, int64_t n,
                  int64_t n_pad, int32_t* c, int64_t ldc) {
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t cols = std::min<int64_t>(16, n - j);
    for (int64_t i = 0; i < m; i += kRows) {
      const int64_t rows = std::min<int64_t>(kRows, m - i);
      const uint8_t* ar[kRows];
      for (int r = 0; r < kRows; ++r) ar[r] = a + (i + std::min<int64_t>(r, rows - 1)) * lda;
      Block<kRows>(ar, rows, 0, 1, k4, w + j * 4, n_pad, cols, c + i * ldc + j, ldc);
    }
  }
}

void ConvU8S8Avx2(const uint8_t* in, int64_t wp, int64_t c, int64_t kh, int64_t kw, int64_t stride,
                  int64_t oh, int64_t ow, const int8_t* w, int64_t n, int64_t n_pad, int32_t* out,
                  int64_t ldc) {
  const int64_t row_bytes = wp * c;
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t cols = std::min<int64_t>(16, n - j);
    for (int64_t y = 0; y < oh; ++y) {
      for (int64_t x = 0; x < ow; x += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, ow - x);
        const uint8_t* ar[kRows];
        for (int r = 0; r < kRows; ++r) {
          const int64_t xr = x + std::min<int64_t>(r, rows - 1);
          ar[r] = in + (y * stride * wp + xr * stride) * c;
        }
        Block<kRows>(ar, rows, row_bytes, kh, kw * c, w + j * 4, n_pad, cols,
                     out + (y * ow + x) * ldc + j, ldc);
      }
    }
  }
}

}  // namespace

const IntKernels& Table() {
  static const IntKernels table = {"avx2",      32767,         &GemmU8S8Avx2,
                                   &GemmS16S16, &ConvU8S8Avx2, &Requant};
  return table;
}

}  // namespace pact::deploy::kernels::avx2
