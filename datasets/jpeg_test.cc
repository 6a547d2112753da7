#include "datasets/jpeg.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::datasets {
namespace {

using ::testing::HasSubstr;

// A smooth RGB gradient (JPEG keeps smooth images close to the original).
std::vector<uint8_t> Gradient(int w, int h) {
  std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / (w - 1));
      p[1] = static_cast<uint8_t>(y * 255 / (h - 1));
      p[2] = 128;
    }
  }
  return rgb;
}

int MaxDiff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  int worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

std::string Encode(const std::vector<uint8_t>& pixels, int w, int h, PixelFormat format) {
  auto jpeg = EncodeJpeg(pixels.data(), w, h, format, 95, /*subsample_chroma=*/false);
  EXPECT_TRUE(jpeg.ok()) << jpeg.status();
  return jpeg.ok() ? *jpeg : std::string();
}

TEST(JpegTest, RgbRoundTripAtFullScale) {
  const std::vector<uint8_t> rgb = Gradient(64, 48);
  const std::string jpeg = Encode(rgb, 64, 48, PixelFormat::kRgb);
  auto info = ReadJpegInfo(jpeg);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 64);
  EXPECT_EQ(info->height, 48);
  EXPECT_EQ(info->color, JpegColor::kColor);
  std::vector<uint8_t> decoded, scratch;
  ASSERT_TRUE(DecodeJpegRgb(jpeg, *info, {1, 1}, &decoded, &scratch).ok());
  EXPECT_LE(MaxDiff(decoded, rgb), 8);
}

TEST(JpegTest, DctScalingHalvesTheSize) {
  const std::vector<uint8_t> rgb = Gradient(64, 48);
  const std::string jpeg = Encode(rgb, 64, 48, PixelFormat::kRgb);
  auto info = ReadJpegInfo(jpeg);
  ASSERT_TRUE(info.ok());
  std::vector<uint8_t> decoded, scratch;
  ASSERT_TRUE(DecodeJpegRgb(jpeg, *info, {1, 2}, &decoded, &scratch).ok());
  ASSERT_EQ(decoded.size(), 32u * 24 * 3);
  // Each output pixel is about the mean of a 2x2 source block.
  std::vector<uint8_t> expected(32 * 24 * 3);
  for (int y = 0; y < 24; ++y) {
    for (int x = 0; x < 32; ++x) {
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < 2; ++dy) {
          for (int dx = 0; dx < 2; ++dx) sum += rgb[((2 * y + dy) * 64 + 2 * x + dx) * 3 + c];
        }
        expected[(y * 32 + x) * 3 + c] = static_cast<uint8_t>((sum + 2) / 4);
      }
    }
  }
  EXPECT_LE(MaxDiff(decoded, expected), 10);
}

TEST(JpegTest, ScalingFactorsIncludeTheEighths) {
  bool has_eighth = false, has_one = false;
  for (const ScalingFactor& f : JpegScalingFactors()) {
    has_eighth |= f.num * 8 == f.denom;
    has_one |= f.num == f.denom;
  }
  EXPECT_TRUE(has_eighth && has_one);
}

TEST(JpegTest, GrayscaleDecodesToEqualChannels) {
  std::vector<uint8_t> gray(40 * 30);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(60 + (i % 40) * 3);
  const std::string jpeg = Encode(gray, 40, 30, PixelFormat::kGray);
  auto info = ReadJpegInfo(jpeg);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->color, JpegColor::kGray);
  std::vector<uint8_t> rgb, scratch;
  ASSERT_TRUE(DecodeJpegRgb(jpeg, *info, {1, 1}, &rgb, &scratch).ok());
  ASSERT_EQ(rgb.size(), gray.size() * 3);
  for (size_t i = 0; i < gray.size(); ++i) {
    ASSERT_EQ(rgb[3 * i], rgb[3 * i + 1]);
    ASSERT_EQ(rgb[3 * i], rgb[3 * i + 2]);
    ASSERT_NEAR(rgb[3 * i], gray[i], 6) << i;
  }
}

TEST(JpegTest, CmykDecodesToRgb) {
  // Inverted (Adobe) CMYK: (255, 128, 0, 255) means no cyan, half magenta, full yellow, no
  // black: orange (255, 128, 0).
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 32 * 16; ++i) cmyk.insert(cmyk.end(), {255, 128, 0, 255});
  const std::string jpeg = Encode(cmyk, 32, 16, PixelFormat::kCmyk);
  auto info = ReadJpegInfo(jpeg);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->color, JpegColor::kCmyk);
  std::vector<uint8_t> rgb, scratch;
  ASSERT_TRUE(DecodeJpegRgb(jpeg, *info, {1, 1}, &rgb, &scratch).ok());
  ASSERT_EQ(rgb.size(), 32u * 16 * 3);
  for (int i = 0; i < 32 * 16; ++i) {
    ASSERT_NEAR(rgb[3 * i], 255, 4);
    ASSERT_NEAR(rgb[3 * i + 1], 128, 4);
    ASSERT_NEAR(rgb[3 * i + 2], 0, 4);
  }
}

TEST(JpegTest, GarbageIsDataLoss) {
  const auto info = ReadJpegInfo("this is not a jpeg at all");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(info.status().message(), HasSubstr("not a readable JPEG"));
  // A PNG signature, as ImageNet's n02105855_2933.JPEG.
  EXPECT_EQ(ReadJpegInfo("\x89PNG\r\n\x1a\n\0\0\0\rIHDR").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(JpegTest, TruncatedScanStillDecodes) {
  const std::vector<uint8_t> rgb = Gradient(64, 64);
  const std::string jpeg = Encode(rgb, 64, 64, PixelFormat::kRgb);
  const std::string truncated = jpeg.substr(0, jpeg.size() * 2 / 3);
  auto info = ReadJpegInfo(truncated);
  ASSERT_TRUE(info.ok()) << info.status();
  std::vector<uint8_t> decoded, scratch;
  // libjpeg warns ("Premature end of JPEG file") and fills the rest: usable, not an error.
  EXPECT_TRUE(DecodeJpegRgb(truncated, *info, {1, 1}, &decoded, &scratch).ok());
  EXPECT_EQ(decoded.size(), rgb.size());
}

TEST(JpegTest, DecodingIsThreadSafe) {
  const std::vector<uint8_t> rgb = Gradient(96, 64);
  const std::string jpeg = Encode(rgb, 96, 64, PixelFormat::kRgb);
  auto info = ReadJpegInfo(jpeg);
  ASSERT_TRUE(info.ok());
  std::vector<uint8_t> reference, scratch;
  ASSERT_TRUE(DecodeJpegRgb(jpeg, *info, {1, 1}, &reference, &scratch).ok());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> out, s;
      for (int i = 0; i < 50; ++i) {
        auto local = ReadJpegInfo(jpeg);
        if (!local.ok() || !DecodeJpegRgb(jpeg, *local, {1, 1}, &out, &s).ok() ||
            out != reference) {
          ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

}  // namespace
}  // namespace pact::datasets
