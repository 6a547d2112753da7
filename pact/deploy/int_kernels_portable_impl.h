// The portable integer kernels (int_kernels.h): plain loops, compiled once per instruction set
// by the file that includes this one after defining INT_KERNELS_ISA (the namespace) and
// INT_KERNELS_NAME (the build's name): int_kernels_generic.cc (baseline x86-64) and
// int_kernels_avx2.cc (-mavx2, which GCC vectorizes the loops for; it defines
// INT_KERNELS_OWN_TABLE and its own u8 x s8 kernels).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pact/deploy/int_kernels.h"

namespace pact::deploy::kernels::INT_KERNELS_ISA {
namespace {

void GemmU8S8(const uint8_t* a, int64_t m, int64_t lda, const int8_t* w, int64_t k4, int64_t n,
              int64_t n_pad, int32_t* c, int64_t ldc) {
  std::vector<int32_t> row(static_cast<size_t>(n_pad));
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0);
    const uint8_t* ai = a + i * lda;
    for (int64_t q = 0; q < k4 / 4; ++q) {
      const int32_t a0 = ai[4 * q], a1 = ai[4 * q + 1], a2 = ai[4 * q + 2], a3 = ai[4 * q + 3];
      if ((a0 | a1 | a2 | a3) == 0) continue;  // PACT codes are often 0
      const int8_t* wq = w + q * n_pad * 4;
      for (int64_t j = 0; j < n_pad; ++j) {
        row[j] += a0 * wq[4 * j] + a1 * wq[4 * j + 1] + a2 * wq[4 * j + 2] + a3 * wq[4 * j + 3];
      }
    }
    std::memcpy(c + i * ldc, row.data(), static_cast<size_t>(n) * sizeof(int32_t));
  }
}

void GemmS16S16(const int16_t* a, int64_t m, int64_t lda, const int16_t* w, int64_t k2, int64_t n,
                int64_t n_pad, int32_t* c, int64_t ldc) {
  std::vector<int32_t> row(static_cast<size_t>(n_pad));
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0);
    const int16_t* ai = a + i * lda;
    for (int64_t q = 0; q < k2 / 2; ++q) {
      const int32_t a0 = ai[2 * q], a1 = ai[2 * q + 1];
      const int16_t* wq = w + q * n_pad * 2;
      for (int64_t j = 0; j < n_pad; ++j) row[j] += a0 * wq[2 * j] + a1 * wq[2 * j + 1];
    }
    std::memcpy(c + i * ldc, row.data(), static_cast<size_t>(n) * sizeof(int32_t));
  }
}

void ConvU8S8(const uint8_t* in, int64_t wp, int64_t c, int64_t kh, int64_t kw, int64_t stride,
              int64_t oh, int64_t ow, const int8_t* w, int64_t n, int64_t n_pad, int32_t* out,
              int64_t ldc) {
  std::vector<int32_t> row(static_cast<size_t>(n_pad));
  const int64_t run = kw * c;  // contiguous bytes per kernel row
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      std::fill(row.begin(), row.end(), 0);
      const int8_t* wq = w;
      for (int64_t ky = 0; ky < kh; ++ky) {
        const uint8_t* a = in + ((y * stride + ky) * wp + x * stride) * c;
        for (int64_t q = 0; q < run; q += 4, wq += n_pad * 4) {
          const int32_t a0 = a[q], a1 = a[q + 1], a2 = a[q + 2], a3 = a[q + 3];
          if ((a0 | a1 | a2 | a3) == 0) continue;
          for (int64_t j = 0; j < n_pad; ++j) {
            row[j] += a0 * wq[4 * j] + a1 * wq[4 * j + 1] + a2 * wq[4 * j + 2] + a3 * wq[4 * j + 3];
          }
        }
      }
      std::memcpy(out + (y * ow + x) * ldc, row.data(), static_cast<size_t>(n) * sizeof(int32_t));
    }
  }
}

void Requant(const RequantArgs& p) {
  for (int64_t r = 0; r < p.rows; ++r) {
    uint8_t* out = p.out + r * p.out_stride;
    for (int64_t ch = 0; ch < p.channels; ++ch) {
      int64_t sum = p.bias[ch];
      for (int t = 0; t < p.num_terms; ++t) {
        const RequantTerm& term = p.terms[t];
        const int64_t v = term.is_u8
                              ? static_cast<const uint8_t*>(term.input)[r * term.stride + ch]
                              : static_cast<const int32_t*>(term.input)[r * term.stride + ch];
        sum += v * term.multiplier[ch];
      }
      // >> of a negative int64 is arithmetic (floor) in GCC and Clang, as in the AVX-512 build.
      const int64_t code = std::clamp<int64_t>(sum >> p.shift[ch], 0, p.max_code);
      out[ch] = static_cast<uint8_t>(code);
    }
  }
}

}  // namespace

#ifndef INT_KERNELS_OWN_TABLE
const IntKernels& Table() {
  static const IntKernels table = {INT_KERNELS_NAME, INT64_MAX, &GemmU8S8,
                                   &GemmS16S16,      &ConvU8S8, &Requant};
  return table;
}
#endif

}  // namespace pact::deploy::kernels::INT_KERNELS_ISA
