#include "pact/deploy/int_kernels.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pact::deploy::kernels {
namespace {

// Every build of the kernels against a plain loop, on shapes with ragged rows and columns.
TEST(IntKernelsTest, GemmIsTheIntegerProductInEveryBuild) {
  std::mt19937 rng(3);
  for (const IntKernels* k : SupportedIntKernels()) {
    for (const auto& [m, n, kk] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 1, 1}, {37, 16, 144}, {23, 32, 288}, {50, 64, 576}, {9, 10, 7}, {17, 70, 45}}) {
      SCOPED_TRACE(testing::Message() << k->name << " m=" << m << " n=" << n << " k=" << kk);
      const int64_t k4 = RoundUp(kk, 4), n_pad = RoundUp(n, kGemmColumns);
      std::vector<uint8_t> a(static_cast<size_t>(m * k4), 0);
      std::vector<int32_t> w(static_cast<size_t>(n * kk));
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < kk; ++j) a[i * k4 + j] = static_cast<uint8_t>(rng() % 256);
      }
      // Weights as large as the build sums exactly (u8_pair_limit: AVX2 pairs in int16).
      const int64_t w_max = std::min<int64_t>(127, k->u8_pair_limit / (2 * 255));
      for (int32_t& v : w) v = static_cast<int32_t>(rng() % (2 * w_max + 1)) - w_max;
      const std::vector<int8_t> packed = PackGemmWeights(w.data(), n, kk);
      const int64_t ldc = n + 3;
      std::vector<int32_t> c(static_cast<size_t>(m * ldc), -7);
      k->gemm_u8s8(a.data(), m, k4, packed.data(), k4, n, n_pad, c.data(), ldc);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          int64_t expected = 0;
          for (int64_t t = 0; t < kk; ++t) expected += int64_t{a[i * k4 + t]} * w[j * kk + t];
          ASSERT_EQ(c[i * ldc + j], expected) << i << "," << j;
        }
        for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], -7) << "written past n";
      }
    }
  }
}

TEST(IntKernelsTest, Gemm16IsTheIntegerProductInEveryBuild) {
  std::mt19937 rng(5);
  for (const IntKernels* k : SupportedIntKernels()) {
    for (const auto& [m, n, kk] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 1, 1}, {37, 16, 27}, {23, 40, 75}, {9, 10, 7}}) {
      SCOPED_TRACE(testing::Message() << k->name << " m=" << m << " n=" << n << " k=" << kk);
      const int64_t k2 = RoundUp(kk, 2), n_pad = RoundUp(n, kGemmColumns);
      std::vector<int16_t> a(static_cast<size_t>(m * k2), 0);
      std::vector<int32_t> w(static_cast<size_t>(n * kk));
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < kk; ++j) a[i * k2 + j] = static_cast<int16_t>(rng() % 65536);
      }
      for (int32_t& v : w) v = static_cast<int32_t>(rng() % 511) - 255;
      const std::vector<int16_t> packed = PackGemmWeights16(w.data(), n, kk);
      std::vector<int32_t> c(static_cast<size_t>(m * n), 0);
      k->gemm_s16s16(a.data(), m, k2, packed.data(), k2, n, n_pad, c.data(), n);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          int64_t expected = 0;
          for (int64_t t = 0; t < kk; ++t) expected += int64_t{a[i * k2 + t]} * w[j * kk + t];
          ASSERT_EQ(c[i * n + j], expected) << i << "," << j;
        }
      }
    }
  }
}

// The implicit-GEMM convolution against a plain loop over the padded image.
TEST(IntKernelsTest, ConvIsTheIntegerConvolutionInEveryBuild) {
  std::mt19937 rng(6);
  struct Shape {
    int64_t h, w, c, n, k, stride, pad;
  };
  for (const IntKernels* kernels : SupportedIntKernels()) {
    for (const Shape& s : std::vector<Shape>{{8, 8, 16, 16, 3, 1, 1},
                                             {9, 7, 32, 32, 3, 2, 1},
                                             {5, 6, 64, 64, 3, 1, 1},
                                             {6, 6, 4, 20, 1, 2, 0},
                                             {7, 5, 8, 48, 5, 1, 2}}) {
      SCOPED_TRACE(testing::Message() << kernels->name << " h=" << s.h << " c=" << s.c
                                      << " n=" << s.n << " k=" << s.k << " s=" << s.stride);
      const int64_t hp = s.h + 2 * s.pad, wp = s.w + 2 * s.pad;
      const int64_t oh = (hp - s.k) / s.stride + 1, ow = (wp - s.k) / s.stride + 1;
      std::vector<uint8_t> in(static_cast<size_t>(hp * wp * s.c), 0);
      for (int64_t y = 0; y < s.h; ++y) {
        for (int64_t x = 0; x < s.w * s.c; ++x) {
          in[((y + s.pad) * wp + s.pad) * s.c + x] = static_cast<uint8_t>(rng() % 256);
        }
      }
      const int64_t kk = s.k * s.k * s.c;
      std::vector<int32_t> w(static_cast<size_t>(s.n * kk));
      const int64_t w_max = std::min<int64_t>(127, kernels->u8_pair_limit / (2 * 255));
      for (int32_t& v : w) v = static_cast<int32_t>(rng() % (2 * w_max + 1)) - w_max;
      const std::vector<int8_t> packed = PackGemmWeights(w.data(), s.n, kk);
      std::vector<int32_t> out(static_cast<size_t>(oh * ow * s.n), -1);
      kernels->conv_u8s8(in.data(), wp, s.c, s.k, s.k, s.stride, oh, ow, packed.data(), s.n,
                         RoundUp(s.n, kGemmColumns), out.data(), s.n);
      for (int64_t y = 0; y < oh; ++y) {
        for (int64_t x = 0; x < ow; ++x) {
          for (int64_t j = 0; j < s.n; ++j) {
            int64_t expected = 0;
            for (int64_t ky = 0; ky < s.k; ++ky) {
              for (int64_t kx = 0; kx < s.k; ++kx) {
                for (int64_t ch = 0; ch < s.c; ++ch) {
                  expected +=
                      int64_t{in[((y * s.stride + ky) * wp + x * s.stride + kx) * s.c + ch]} *
                      w[((j * s.k + ky) * s.k + kx) * s.c + ch];
                }
              }
            }
            ASSERT_EQ(out[(y * ow + x) * s.n + j], expected) << y << "," << x << "," << j;
          }
        }
      }
    }
  }
}

TEST(IntKernelsTest, RequantRoundsHalfUpAndClipsInEveryBuild) {
  std::mt19937 rng(4);
  const int64_t rows = 5, channels = 19;
  std::vector<int32_t> acc(rows * channels);
  std::vector<uint8_t> codes(rows * channels);
  for (int32_t& v : acc) v = static_cast<int32_t>(rng() % 200001) - 100000;
  for (uint8_t& v : codes) v = static_cast<uint8_t>(rng() % 16);
  std::vector<int32_t> m1(channels), m2(channels), shift(channels);
  std::vector<int64_t> bias(channels);
  for (int64_t c = 0; c < channels; ++c) {
    shift[c] = 10 + static_cast<int32_t>(c % 20);
    m1[c] = static_cast<int32_t>(rng() % 4000) - 1000;
    m2[c] = static_cast<int32_t>(rng() % 100000);
    bias[c] = (int64_t{1} << (shift[c] - 1)) + static_cast<int64_t>(rng() % 1000000) - 500000;
  }
  for (const IntKernels* k : SupportedIntKernels()) {
    SCOPED_TRACE(k->name);
    std::vector<uint8_t> out(rows * channels, 99);
    RequantArgs args;
    args.rows = rows;
    args.channels = channels;
    args.num_terms = 2;
    args.terms[0] = {acc.data(), false, channels, m1.data()};
    args.terms[1] = {codes.data(), true, channels, m2.data()};
    args.bias = bias.data();
    args.shift = shift.data();
    args.max_code = 15;
    args.out = out.data();
    args.out_stride = channels;
    k->requant(args);
    int clipped_low = 0, clipped_high = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t sum = int64_t{acc[r * channels + c]} * m1[c] +
                            int64_t{codes[r * channels + c]} * m2[c] + bias[c];
        // floor(sum / 2^shift), clipped.
        const double exact = std::floor(static_cast<double>(sum) / std::ldexp(1.0, shift[c]));
        const int64_t expected = std::clamp<int64_t>(static_cast<int64_t>(exact), 0, 15);
        clipped_low += exact < 0;
        clipped_high += exact > 15;
        ASSERT_EQ(out[r * channels + c], expected) << r << "," << c;
      }
    }
    EXPECT_GT(clipped_low, 0);
    EXPECT_GT(clipped_high, 0);
  }
}

TEST(IntKernelsTest, TheAvx2BuildsPairLimitIsReal) {
  // 255 * 127 * 2 saturates vpmaddubsw's int16 pair: the limit must say so.
  for (const IntKernels* k : SupportedIntKernels()) {
    if (std::string(k->name) == "avx2") EXPECT_EQ(k->u8_pair_limit, 32767);
    if (std::string(k->name) != "avx2") EXPECT_EQ(k->u8_pair_limit, INT64_MAX) << k->name;
  }
}

TEST(IntKernelsTest, BuildsCanBeChosenByName) {
  EXPECT_TRUE(SetIntKernels("generic"));
  EXPECT_STREQ(ActiveIntKernels().name, "generic");
  EXPECT_FALSE(SetIntKernels("avx9000"));
  EXPECT_STREQ(ActiveIntKernels().name, "generic");
  EXPECT_TRUE(SetIntKernels(SupportedIntKernels().back()->name));
}

}  // namespace
}  // namespace pact::deploy::kernels
