// AVX-512 VNNI builds of the integer kernels (int_kernels.h); compiled with -mavx512vnni and
// only called after int_kernels.cc checked the CPU.
#include <immintrin.h>

#include <algorithm>

#include "pact/deploy/int_kernels.h"

namespace pact::deploy::kernels::avx512_vnni {
namespace {

// The first `rows` rows and `cols` columns of a block of accumulators into c.
template <int kRows, int kVecs>
void Store(const __m512i (&acc)[kRows][kVecs], int64_t rows, int64_t cols, int32_t* c,
           int64_t ldc) {
  for (int r = 0; r < kRows && r < rows; ++r) {
    for (int v = 0; v < kVecs; ++v) {
      const int64_t left = cols - 16 * v;
      if (left <= 0) break;
      const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      _mm512_mask_storeu_epi32(c + r * ldc + 16 * v, mask, acc[r][v]);
    }
  }
}

// A block of kRows rows x kVecs * 16 columns of c, accumulated in registers: per group of four
// inputs, kVecs weight loads, kRows broadcasts and kRows * kVecs vpdpbusd. Row r reads kernel
// row ky at ar[r] + ky * row_bytes, `run` bytes (a GEMM: one kernel row of k4 bytes; a
// convolution: kh rows of kw * c bytes of a padded image, so no im2col copy is needed). Rows past
// `rows` repeat the last valid one (never stored); columns past `cols` are masked.
template <int kRows, int kVecs>
void ConvBlock(const uint8_t* const* ar, int64_t rows, int64_t row_bytes, int64_t kh, int64_t run,
               const int8_t* w, int64_t n_pad, int64_t cols, int32_t* c, int64_t ldc) {
  __m512i acc[kRows][kVecs];
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  const int64_t w_step = n_pad * 4;
  for (int64_t ky = 0; ky < kh; ++ky) {
    const int64_t offset = ky * row_bytes;
    for (int64_t q = 0; q < run; q += 4) {
      __m512i wv[kVecs];
      for (int v = 0; v < kVecs; ++v) {
        wv[v] = _mm512_loadu_si512(static_cast<const void*>(w + v * 64));
      }
      for (int r = 0; r < kRows; ++r) {
        int32_t quad;
        __builtin_memcpy(&quad, ar[r] + offset + q, 4);
        const __m512i av = _mm512_set1_epi32(quad);
        for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, wv[v]);
      }
      w += w_step;
    }
  }
  Store<kRows, kVecs>(acc, rows, cols, c, ldc);
}

template <int kRows, int kVecs>
void Gemm(const uint8_t* a, int64_t m, int64_t lda, const int8_t* w, int64_t k4, int64_t n,
          int64_t n_pad, int32_t* c, int64_t ldc) {
  constexpr int64_t kWidth = 16 * kVecs;
  for (int64_t j = 0; j < n; j += kWidth) {
    const int64_t cols = std::min(kWidth, n - j);
    for (int64_t i = 0; i < m; i += kRows) {
      const int64_t rows = std::min<int64_t>(kRows, m - i);
      const uint8_t* ar[kRows];
      for (int r = 0; r < kRows; ++r) ar[r] = a + (i + std::min<int64_t>(r, rows - 1)) * lda;
      ConvBlock<kRows, kVecs>(ar, rows, 0, 1, k4, w + j * 4, n_pad, cols, c + i * ldc + j, ldc);
    }
  }
}

void GemmU8S8(const uint8_t* a, int64_t m, int64_t lda, const int8_t* w, int64_t k4, int64_t n,
              int64_t n_pad, int32_t* c, int64_t ldc) {
  // Register blocks: 16 (or 24) accumulators, weights re-read from L1 per row block.
  // Block widths divide n_pad, so no weight load passes the packed weights' end.
  if (n_pad % 64 == 0) {
    Gemm<6, 4>(a, m, lda, w, k4, n, n_pad, c, ldc);
  } else if (n_pad % 32 == 0) {
    Gemm<8, 2>(a, m, lda, w, k4, n, n_pad, c, ldc);
  } else {
    Gemm<16, 1>(a, m, lda, w, k4, n, n_pad, c, ldc);
  }
}

template <int kRows, int kVecs>
void Conv(const uint8_t* in, int64_t wp, int64_t c, int64_t kh, int64_t kw, int64_t stride,
          int64_t oh, int64_t ow, const int8_t* w, int64_t n, int64_t n_pad, int32_t* out,
          int64_t ldc) {
  constexpr int64_t kWidth = 16 * kVecs;
  const int64_t row_bytes = wp * c;
  for (int64_t j = 0; j < n; j += kWidth) {
    const int64_t cols = std::min(kWidth, n - j);
    for (int64_t y = 0; y < oh; ++y) {
      for (int64_t x = 0; x < ow; x += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, ow - x);
        const uint8_t* ar[kRows];
        for (int r = 0; r < kRows; ++r) {
          const int64_t xr = x + std::min<int64_t>(r, rows - 1);
          ar[r] = in + (y * stride * wp + xr * stride) * c;
        }
        ConvBlock<kRows, kVecs>(ar, rows, row_bytes, kh, kw * c, w + j * 4, n_pad, cols,
                                out + (y * ow + x) * ldc + j, ldc);
      }
    }
  }
}

void ConvU8S8(const uint8_t* in, int64_t wp, int64_t c, int64_t kh, int64_t kw, int64_t stride,
              int64_t oh, int64_t ow, const int8_t* w, int64_t n, int64_t n_pad, int32_t* out,
              int64_t ldc) {
  if (n_pad % 64 == 0) {
    Conv<6, 4>(in, wp, c, kh, kw, stride, oh, ow, w, n, n_pad, out, ldc);
  } else if (n_pad % 32 == 0) {
    Conv<8, 2>(in, wp, c, kh, kw, stride, oh, ow, w, n, n_pad, out, ldc);
  } else {
    Conv<16, 1>(in, wp, c, kh, kw, stride, oh, ow, w, n, n_pad, out, ldc);
  }
}

// As ConvBlock for a GEMM, with pairs of int16 (vpdpwssd) instead of quads of bytes.
template <int kRows, int kVecs>
void Block16(const int16_t* a, int64_t rows, int64_t lda, const int16_t* w, int64_t k2,
             int64_t n_pad, int64_t cols, int32_t* c, int64_t ldc) {
  __m512i acc[kRows][kVecs];
  const int16_t* ar[kRows];
  for (int r = 0; r < kRows; ++r) {
    ar[r] = a + std::min<int64_t>(r, rows - 1) * lda;
    for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  const int64_t w_step = n_pad * 2;
  for (int64_t q = 0; q < k2; q += 2) {
    __m512i wv[kVecs];
    for (int v = 0; v < kVecs; ++v) {
      wv[v] = _mm512_loadu_si512(static_cast<const void*>(w + v * 32));
    }
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      __builtin_memcpy(&pair, ar[r] + q, 4);
      const __m512i av = _mm512_set1_epi32(pair);
      for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_dpwssd_epi32(acc[r][v], av, wv[v]);
    }
    w += w_step;
  }
  Store<kRows, kVecs>(acc, rows, cols, c, ldc);
}

void GemmS16S16(const int16_t* a, int64_t m, int64_t lda, const int16_t* w, int64_t k2, int64_t n,
                int64_t n_pad, int32_t* c, int64_t ldc) {
  constexpr int kRows = 8, kVecs = 2;
  for (int64_t j = 0; j < n; j += 16 * kVecs) {
    const int64_t cols = std::min<int64_t>(16 * kVecs, n - j);
    for (int64_t i = 0; i < m; i += kRows) {
      Block16<kRows, kVecs>(a + i * lda, std::min<int64_t>(kRows, m - i), lda, w + j * 2, k2, n_pad,
                            cols, c + i * ldc + j, ldc);
    }
  }
}

// Eight channels at a time in 64-bit lanes; the channels' constants are loaded once per group
// of eight and the rows stream past them.
void Requant(const RequantArgs& p) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i max_code = _mm512_set1_epi64(p.max_code);
  for (int64_t ch = 0; ch < p.channels; ch += 8) {
    const int64_t left = std::min<int64_t>(8, p.channels - ch);
    const __mmask8 mask = static_cast<__mmask8>((1u << left) - 1);
    const __m512i bias = _mm512_maskz_loadu_epi64(mask, p.bias + ch);
    const __m512i shift = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(mask, p.shift + ch));
    __m512i mult[kMaxRequantTerms];
    for (int t = 0; t < p.num_terms; ++t) {
      mult[t] = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(mask, p.terms[t].multiplier + ch));
    }
    for (int64_t r = 0; r < p.rows; ++r) {
      __m512i sum = bias;
      for (int t = 0; t < p.num_terms; ++t) {
        const RequantTerm& term = p.terms[t];
        __m512i v;
        if (term.is_u8) {
          v = _mm512_cvtepu8_epi64(_mm_maskz_loadu_epi8(
              mask, static_cast<const uint8_t*>(term.input) + r * term.stride + ch));
        } else {
          v = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(
              mask, static_cast<const int32_t*>(term.input) + r * term.stride + ch));
        }
        // vpmuldq: the low 32 bits of each lane, sign-extended, multiplied into 64 bits (one
        // uop, where vpmullq takes three); both factors are int32 here.
        sum = _mm512_add_epi64(sum, _mm512_mul_epi32(v, mult[t]));
      }
      __m512i code = _mm512_srav_epi64(sum, shift);
      code = _mm512_min_epi64(_mm512_max_epi64(code, zero), max_code);
      _mm512_mask_cvtepi64_storeu_epi8(p.out + r * p.out_stride + ch, mask, code);
    }
  }
}

}  // namespace

const IntKernels& Table() {
  static const IntKernels table = {"avx512_vnni", INT64_MAX, &GemmU8S8,
                                   &GemmS16S16,   &ConvU8S8, &Requant};
  return table;
}

}  // namespace pact::deploy::kernels::avx512_vnni
