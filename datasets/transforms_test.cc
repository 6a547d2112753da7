#include "datasets/transforms.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::datasets {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// An identity table for one channel: value v -> float(v), so outputs show source pixels.
std::vector<float> IdentityTable(int channels) {
  std::vector<float> lut(channels * 256);
  for (int c = 0; c < channels; ++c) {
    for (int v = 0; v < 256; ++v) lut[c * 256 + v] = static_cast<float>(v + 1000 * c);
  }
  return lut;
}

// 1x3x4 image with pixel (y, x) = 10 * (y + 1) + (x + 1): 11 12 13 14 / 21 .. / 31 .. 34.
std::vector<uint8_t> SmallImage() {
  std::vector<uint8_t> image;
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) image.push_back(static_cast<uint8_t>(10 * (y + 1) + (x + 1)));
  }
  return image;
}

std::vector<float> Apply(const std::vector<uint8_t>& image, int channels, int h, int w,
                         CropFlip crop_flip) {
  const std::vector<float> lut = IdentityTable(channels);
  std::vector<float> out(channels * h * w, -1.0f);
  CropFlipNormalize(image.data(), channels, h, w, crop_flip, lut.data(), out.data());
  return out;
}

TEST(CropFlipNormalizeTest, IdentityCopiesThroughTable) {
  EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, CropFlip{}),
              ElementsAre(11, 12, 13, 14, 21, 22, 23, 24, 31, 32, 33, 34));
}

TEST(CropFlipNormalizeTest, ShiftReadsOffsetSourceAndPadsWithZero) {
  // Output (y, x) reads source (y + 1, x - 1): one row up, one column right; 0 is padding.
  EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, CropFlip{1, -1, false}),
              ElementsAre(0, 21, 22, 23, 0, 31, 32, 33, 0, 0, 0, 0));
  // Output (y, x) reads source (y - 2, x + 2).
  EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, CropFlip{-2, 2, false}),
              ElementsAre(0, 0, 0, 0, 0, 0, 0, 0, 13, 14, 0, 0));
}

TEST(CropFlipNormalizeTest, FlipMirrorsEachRow) {
  EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, CropFlip{0, 0, true}),
              ElementsAre(14, 13, 12, 11, 24, 23, 22, 21, 34, 33, 32, 31));
}

TEST(CropFlipNormalizeTest, FlipMirrorsTheCrop) {
  // The crop with dx = 1 is rows (12 13 14 pad); mirrored: (pad 14 13 12).
  EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, CropFlip{0, 1, true}),
              ElementsAre(0, 14, 13, 12, 0, 24, 23, 22, 0, 34, 33, 32));
  // dx = -1: crop rows (pad 11 12 13); mirrored: (13 12 11 pad).
  EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, CropFlip{0, -1, true}),
              ElementsAre(13, 12, 11, 0, 23, 22, 21, 0, 33, 32, 31, 0));
}

TEST(CropFlipNormalizeTest, OffsetsBeyondTheImageGivePaddingOnly) {
  for (const CropFlip crop_flip : {CropFlip{0, 9, false}, CropFlip{0, -9, true},
                                   CropFlip{5, 0, false}, CropFlip{-3, 0, true}}) {
    EXPECT_THAT(Apply(SmallImage(), 1, 3, 4, crop_flip), ::testing::Each(0.0f));
  }
}

TEST(CropFlipNormalizeTest, ChannelsUseTheirOwnTableAndPadding) {
  std::vector<uint8_t> image = SmallImage();
  const std::vector<uint8_t> second = SmallImage();
  image.insert(image.end(), second.begin(), second.end());
  const std::vector<float> out = Apply(image, 2, 3, 4, CropFlip{0, 3, false});
  EXPECT_THAT(out,
              ElementsAre(14, 0, 0, 0, 24, 0, 0, 0, 34, 0, 0, 0,  //
                          1014, 1000, 1000, 1000, 1024, 1000, 1000, 1000, 1034, 1000, 1000, 1000));
}

// The definition, literally: zero-pad by p, take the 32x32 window at (oy, ox), then mirror it.
std::vector<float> ReferencePadCropFlip(const std::vector<uint8_t>& image, int c_count, int h,
                                        int w, int pad, int oy, int ox, bool flip,
                                        const std::vector<float>& lut) {
  const int ph = h + 2 * pad;
  const int pw = w + 2 * pad;
  std::vector<uint8_t> padded(c_count * ph * pw, 0);
  for (int c = 0; c < c_count; ++c) {
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        padded[(c * ph + y + pad) * pw + x + pad] = image[(c * h + y) * w + x];
      }
    }
  }
  std::vector<float> out(c_count * h * w);
  for (int c = 0; c < c_count; ++c) {
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const int cx = flip ? w - 1 - x : x;
        out[(c * h + y) * w + x] = lut[c * 256 + padded[(c * ph + oy + y) * pw + ox + cx]];
      }
    }
  }
  return out;
}

TEST(CropFlipNormalizeTest, MatchesPadCropFlipDefinitionForEveryCifarOffset) {
  constexpr int kPad = 4;
  std::mt19937_64 rng(1);
  std::vector<uint8_t> image(3 * 32 * 32);
  for (uint8_t& v : image) v = static_cast<uint8_t>(rng() % 256);
  const std::vector<float> lut =
      MakeNormalizationTable({{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}});
  std::vector<float> out(image.size());
  for (int oy = 0; oy <= 2 * kPad; ++oy) {
    for (int ox = 0; ox <= 2 * kPad; ++ox) {
      for (const bool flip : {false, true}) {
        CropFlipNormalize(image.data(), 3, 32, 32, CropFlip{oy - kPad, ox - kPad, flip}, lut.data(),
                          out.data());
        ASSERT_THAT(
            out, ElementsAreArray(ReferencePadCropFlip(image, 3, 32, 32, kPad, oy, ox, flip, lut)))
            << "offset (" << oy << ", " << ox << ") flip " << flip;
      }
    }
  }
}

TEST(SampleCropFlipTest, CoversEveryOffsetAndFlipsAboutHalf) {
  std::mt19937_64 rng(7);
  std::set<int> dys, dxs;
  int flips = 0;
  constexpr int kDraws = 4000;
  for (int i = 0; i < kDraws; ++i) {
    const CropFlip cf = SampleCropFlip(rng, 4, true);
    ASSERT_GE(cf.dy, -4);
    ASSERT_LE(cf.dy, 4);
    ASSERT_GE(cf.dx, -4);
    ASSERT_LE(cf.dx, 4);
    dys.insert(cf.dy);
    dxs.insert(cf.dx);
    flips += cf.flip;
  }
  EXPECT_EQ(dys.size(), 9u);
  EXPECT_EQ(dxs.size(), 9u);
  EXPECT_NEAR(flips, kDraws / 2, 150);  // > 4.5 sigma
}

TEST(SampleCropFlipTest, NoPaddingNoFlipIsIdentity) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    const CropFlip cf = SampleCropFlip(rng, 0, false);
    EXPECT_EQ(cf.dy, 0);
    EXPECT_EQ(cf.dx, 0);
    EXPECT_FALSE(cf.flip);
  }
}

TEST(SampleCropFlipTest, IsAFunctionOfTheGeneratorState) {
  std::mt19937_64 a(123), b(123);
  for (int i = 0; i < 50; ++i) {
    const CropFlip x = SampleCropFlip(a, 4, true);
    const CropFlip y = SampleCropFlip(b, 4, true);
    EXPECT_EQ(x.dy, y.dy);
    EXPECT_EQ(x.dx, y.dx);
    EXPECT_EQ(x.flip, y.flip);
  }
}

TEST(NormalizationTableTest, IsXOver255MinusMeanOverStd) {
  const std::vector<float> lut = MakeNormalizationTable({{0.5f, 0.25f}, {0.5f, 2.0f}});
  ASSERT_EQ(lut.size(), 512u);
  EXPECT_FLOAT_EQ(lut[0], -1.0f);
  EXPECT_FLOAT_EQ(lut[255], 1.0f);
  EXPECT_FLOAT_EQ(lut[51], (51.0f / 255.0f - 0.5f) / 0.5f);
  EXPECT_FLOAT_EQ(lut[256 + 0], -0.125f);
  EXPECT_FLOAT_EQ(lut[256 + 255], 0.375f);
}

const ChannelNormalization kDefaults{{0.1f, 0.2f, 0.3f}, {1.0f, 2.0f, 3.0f}};

TEST(ResolveNormalizationTest, EmptyContextGivesDefaults) {
  const absl::StatusOr<ChannelNormalization> n = ResolveNormalization({}, kDefaults, 3);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_THAT(n->mean, ElementsAre(0.1f, 0.2f, 0.3f));
  EXPECT_THAT(n->std, ElementsAre(1.0f, 2.0f, 3.0f));
}

TEST(ResolveNormalizationTest, OverrideReplacesDefaults) {
  DatasetContext context;
  context.mean = {0.5f, 0.5f, 0.5f};
  context.std = {0.25f, 0.25f, 0.25f};
  const absl::StatusOr<ChannelNormalization> n = ResolveNormalization(context, kDefaults, 3);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_THAT(n->mean, ElementsAre(0.5f, 0.5f, 0.5f));
  EXPECT_THAT(n->std, ElementsAre(0.25f, 0.25f, 0.25f));
}

TEST(ResolveNormalizationTest, WrongLengthIsInvalidArgument) {
  DatasetContext context;
  context.mean = {0.5f};
  context.std = {0.25f, 0.25f, 0.25f};
  const absl::Status status = ResolveNormalization(context, kDefaults, 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("normalize.mean: expected 3 value(s)"));
  EXPECT_THAT(status.message(), HasSubstr("got 1 [0.5]"));

  context.mean = {0.5f, 0.5f, 0.5f};
  context.std = {0.25f, 0.25f};
  EXPECT_THAT(ResolveNormalization(context, kDefaults, 3).status().message(),
              HasSubstr("normalize.std: expected 3 value(s)"));
}

TEST(ResolveNormalizationTest, OnlyMeanIsInvalidArgument) {
  DatasetContext context;
  context.mean = {0.5f, 0.5f, 0.5f};
  const absl::Status status = ResolveNormalization(context, kDefaults, 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("normalize.std"));
}

TEST(ResolveNormalizationTest, NonPositiveOrNanStdIsInvalidArgument) {
  DatasetContext context;
  context.mean = {0.5f, 0.5f, 0.5f};
  context.std = {0.25f, 0.0f, 0.25f};
  absl::Status status = ResolveNormalization(context, kDefaults, 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("normalize.std: values must be finite and > 0"));
  context.std = {0.25f, 0.25f, 0.25f};
  context.mean = {0.5f, NAN, 0.5f};
  status = ResolveNormalization(context, kDefaults, 3).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("normalize.mean: values must be finite"));
}

}  // namespace
}  // namespace pact::datasets
