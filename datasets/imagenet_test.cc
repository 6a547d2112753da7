#include "datasets/imagenet.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/dataset.h"
#include "datasets/http_test_server.h"
#include "datasets/image_ops.h"
#include "datasets/jpeg.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::ArchiveEntry;
using ::pact::datasets::testing::HttpTestServer;
using ::pact::datasets::testing::MakeTarGz;
using ::pact::datasets::testing::ScopedEnv;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::ParseTextProtoOrDie;
using ::pact::testing::TestTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A smooth RGB image (JPEG and resampling both keep it close to exact), varying with `seed`.
std::vector<uint8_t> SmoothImage(int w, int h, int seed) {
  std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(128 + 100 * std::sin((x + 7 * seed) / 23.0));
      p[1] = static_cast<uint8_t>(128 + 100 * std::cos((y + 3 * seed) / 17.0));
      p[2] = static_cast<uint8_t>((x + y + 11 * seed) * 255 / (w + h + 11 * seed));
    }
  }
  return rgb;
}

std::string Jpeg(int w, int h, int seed = 0) {
  const std::vector<uint8_t> rgb = SmoothImage(w, h, seed);
  auto jpeg = EncodeJpeg(rgb.data(), w, h, PixelFormat::kRgb, 95, /*subsample_chroma=*/false);
  EXPECT_TRUE(jpeg.ok()) << jpeg.status();
  return jpeg.ok() ? *jpeg : std::string();
}

void WriteJpeg(const std::string& path, int w, int h, int seed = 0) {
  PACT_EXPECT_OK(MakeDirs(std::filesystem::path(path).parent_path().string()));
  WriteFileOrFail(path, Jpeg(w, h, seed));
}

DatasetContext Context(const std::string& root, Split split = SPLIT_TRAIN, bool augment = false) {
  DatasetContext context;
  context.data_root = root;
  context.split = split;
  context.augment = augment;
  return context;
}

ImagenetOptions Options(int image_size = 224, int resize_size = 256) {
  ImagenetOptions options;
  options.set_image_size(image_size);
  options.set_resize_size(resize_size);
  options.set_download(false);
  return options;
}

// train: n01 (2 images), n02 (1), n03 (1); val: n01 (1), n03 (1).
std::string SmallTree(absl::string_view name) {
  const std::string root = TestTempDir(name);
  WriteJpeg(root + "/train/n03/b.JPEG", 40, 30, 1);
  WriteJpeg(root + "/train/n01/z.JPEG", 40, 30, 2);
  WriteJpeg(root + "/train/n01/a.jpg", 30, 40, 3);
  WriteJpeg(root + "/train/n02/c.jpeg", 50, 50, 4);
  WriteFileOrFail(root + "/train/n02/README.txt", "not an image");
  WriteJpeg(root + "/val/n01/v1.JPEG", 40, 30, 5);
  WriteJpeg(root + "/val/n03/v2.JPEG", 40, 30, 6);
  return root;
}

std::vector<float> GetImage(const Dataset& dataset, int64_t index, int64_t* label,
                            uint64_t seed = 1) {
  const auto shape = dataset.image_shape();
  std::vector<float> image(shape[0] * shape[1] * shape[2], -99.0f);
  std::mt19937_64 rng(seed);
  *label = dataset.Get(index, rng, image.data());
  return image;
}

// Normalized CHW of an HWC uint8 image, mirrored if `flip`, with ImageNet's statistics.
std::vector<float> Normalize(const std::vector<uint8_t>& hwc, int size, bool flip) {
  const ChannelNormalization n = ImagenetNormalization();
  std::vector<float> out(3 * size * size);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const int sx = flip ? size - 1 - x : x;
        out[(c * size + y) * size + x] =
            (hwc[(y * size + sx) * 3 + c] / 255.0f - n.mean[c]) / n.std[c];
      }
    }
  }
  return out;
}

std::vector<uint8_t> DecodeFull(const std::string& jpeg) {
  auto info = ReadJpegInfo(jpeg);
  EXPECT_TRUE(info.ok());
  std::vector<uint8_t> rgb, scratch;
  EXPECT_TRUE(DecodeJpegRgb(jpeg, *info, {1, 1}, &rgb, &scratch).ok());
  return rgb;
}

double MeanAbsDiff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += std::abs(a[i] - b[i]);
  return sum / a.size();
}

TEST(ImagenetTest, ClassIndexIsSortedTrainFoldersAndFilesAreSorted) {
  const std::string root = SmallTree("imagenet_list");
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadImagenet(Context(root), Options(16, 16)));
  EXPECT_THAT(train->classes(), ElementsAre("n01", "n02", "n03"));
  ASSERT_EQ(train->size(), 4);  // README.txt is ignored
  EXPECT_EQ(train->path(0), root + "/train/n01/a.jpg");
  EXPECT_EQ(train->path(1), root + "/train/n01/z.JPEG");
  EXPECT_EQ(train->path(2), root + "/train/n02/c.jpeg");
  EXPECT_EQ(train->path(3), root + "/train/n03/b.JPEG");
  EXPECT_EQ(train->label(1), 0);
  EXPECT_EQ(train->label(2), 1);
  EXPECT_EQ(train->label(3), 2);
  EXPECT_EQ(train->num_classes(), 3);
  EXPECT_EQ(train->image_shape(), (std::vector<int64_t>{3, 16, 16}));

  // val lacks n02: fine (a warning); labels still come from train's index.
  PACT_ASSERT_OK_AND_ASSIGN(auto val, LoadImagenet(Context(root, SPLIT_TEST), Options(16, 16)));
  EXPECT_EQ(val->num_classes(), 3);
  ASSERT_EQ(val->size(), 2);
  EXPECT_EQ(val->label(0), 0);
  EXPECT_EQ(val->label(1), 2);
  EXPECT_THAT(val->Describe(), HasSubstr("imagenet val: 2 images of 3 classes, 3x16x16, resize "
                                         "16 + center crop 16"));
}

TEST(ImagenetTest, ValClassNotInTrainIsInvalidArgument) {
  const std::string root = SmallTree("imagenet_val_extra");
  WriteJpeg(root + "/val/n99/x.JPEG", 20, 20);
  const absl::Status status = LoadImagenet(Context(root, SPLIT_TEST), Options()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr(root + "/val/n99: class folder 'n99' is not in " + root + "/train"));
}

TEST(ImagenetTest, EmptyTrainClassIsAnErrorEmptyValClassIsNot) {
  const std::string root = SmallTree("imagenet_empty");
  PACT_EXPECT_OK(MakeDirs(root + "/val/n02"));  // empty val class: a warning
  PACT_EXPECT_OK(LoadImagenet(Context(root, SPLIT_TEST), Options()));
  PACT_EXPECT_OK(MakeDirs(root + "/train/n04"));
  WriteFileOrFail(root + "/train/n04/notes.txt", "no images here");
  const absl::Status status = LoadImagenet(Context(root), Options()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(root + "/train/n04: empty class folder"));
}

TEST(ImagenetTest, MissingSplitFolderExplainsTheLayout) {
  const std::string root = TestTempDir("imagenet_missing");
  const absl::Status status = LoadImagenet(Context(root), Options()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(root + "/train does not exist"));
  EXPECT_THAT(status.message(), HasSubstr(root + "/train/<wnid>/*.JPEG"));
}

TEST(ImagenetTest, ValAloneTakesItsClassIndexFromValFolders) {
  const std::string root = TestTempDir("imagenet_val_only");
  WriteJpeg(root + "/val/n02/v.JPEG", 20, 20);
  WriteJpeg(root + "/val/n01/v.JPEG", 20, 20);
  PACT_ASSERT_OK_AND_ASSIGN(auto val, LoadImagenet(Context(root, SPLIT_TEST), Options()));
  EXPECT_THAT(val->classes(), ElementsAre("n01", "n02"));
}

TEST(ImagenetTest, BadOptions) {
  const std::string root = SmallTree("imagenet_options");
  EXPECT_EQ(LoadImagenet(Context(root), Options(224, 200)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadImagenet(Context(root), Options(0, 256)).status().code(),
            absl::StatusCode::kInvalidArgument);
  ImagenetOptions scale = Options();
  scale.set_min_crop_scale(0.9);
  scale.set_max_crop_scale(0.5);
  EXPECT_EQ(LoadImagenet(Context(root), scale).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImagenetTest, EvalIsAnExactCenterCropWhenNoResizeIsNeeded) {
  // 256 (h) x 300 (w): the shorter side is already 256, so the crop is rows 16..239 and
  // columns 38..261 of the decoded image, unresampled.
  const std::string root = TestTempDir("imagenet_center");
  const std::string jpeg = Jpeg(300, 256, 9);
  PACT_EXPECT_OK(MakeDirs(root + "/val/n01"));
  WriteFileOrFail(root + "/val/n01/x.JPEG", jpeg);
  PACT_ASSERT_OK_AND_ASSIGN(auto val, LoadImagenet(Context(root, SPLIT_TEST), Options()));
  int64_t label;
  const std::vector<float> image = GetImage(*val, 0, &label);
  EXPECT_EQ(label, 0);
  const std::vector<uint8_t> full = DecodeFull(jpeg);
  std::vector<uint8_t> crop(224 * 224 * 3);
  for (int y = 0; y < 224; ++y) {
    for (int x = 0; x < 224 * 3; ++x) crop[y * 224 * 3 + x] = full[((y + 16) * 300 + 38) * 3 + x];
  }
  const std::vector<float> expected = Normalize(crop, 224, false);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_FLOAT_EQ(image[i], expected[i]) << i;
}

TEST(ImagenetTest, DctScaledDecodingMatchesFullResolutionResampling) {
  // 1000x800 needs 1/2-scale decoding for eval (256 + crop 224 of a 800-pixel short side).
  const std::string jpeg = Jpeg(1000, 800, 4);
  const std::vector<uint8_t> full = DecodeFull(jpeg);
  for (const bool train : {false, true}) {
    ImagenetTransform transform;
    transform.train = train;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      std::mt19937_64 rng(seed);
      ImageBuffers buffers;
      bool flip;
      ASSERT_TRUE(TransformJpeg(jpeg, transform, rng, &buffers, &flip).ok());
      // The same geometry at full resolution.
      std::mt19937_64 replay(seed);
      SourceBox box;
      if (train) {
        const CropBox c = SampleRandomResizedCrop(800, 1000, 0.08, 1.0, 0.75, 4.0 / 3, replay);
        box = {double(c.top), double(c.left), double(c.height), double(c.width)};
        EXPECT_EQ(flip, (replay() >> 63) != 0);
      } else {
        box = ResizeCenterCropBox(800, 1000, 256, 224);
        EXPECT_FALSE(flip);
      }
      const ResizeAxis y = ComputeResizeAxis(800, box.top, box.height, 224);
      const ResizeAxis x = ComputeResizeAxis(1000, box.left, box.width, 224);
      std::vector<uint8_t> reference(224 * 224 * 3);
      std::vector<float> scratch;
      ResizeInterleaved(full.data(), 800, 1000, 3, 3000, y, x, reference.data(), &scratch);
      EXPECT_LT(MeanAbsDiff(buffers.output, reference), 2.0)
          << "train " << train << " seed " << seed;
    }
  }
}

TEST(ImagenetTest, TrainIsRandomResizedCropThenFlipFromTheGenerator) {
  // With crop scale fixed at 1 on a square image the crop is the whole image (an attempt of
  // area 1 fits only as 224x224, and the fallback is the whole image too): each example is
  // the decoded image or its mirror, as the generator says.
  const std::string root = TestTempDir("imagenet_train_flip");
  const std::string jpeg = Jpeg(224, 224, 2);
  PACT_EXPECT_OK(MakeDirs(root + "/train/n01"));
  WriteFileOrFail(root + "/train/n01/x.JPEG", jpeg);
  ImagenetOptions options = Options();
  options.set_min_crop_scale(1.0);
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadImagenet(Context(root, SPLIT_TRAIN, true), options));
  EXPECT_THAT(train->Describe(), HasSubstr("random-resized-crop 224 (scale 1-1, ratio 3/4-4/3) "
                                           "+ horizontal flip"));
  const std::vector<uint8_t> full = DecodeFull(jpeg);
  int flips = 0;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    int64_t label;
    const std::vector<float> image = GetImage(*train, 0, &label, seed);
    const bool flipped = image == Normalize(full, 224, true);
    ASSERT_TRUE(flipped || image == Normalize(full, 224, false)) << seed;
    flips += flipped;
  }
  EXPECT_GT(flips, 2);
  EXPECT_LT(flips, 14);
}

TEST(ImagenetTest, GrayscaleAndCmykBecomeRgb) {
  const std::string root = TestTempDir("imagenet_color");
  PACT_EXPECT_OK(MakeDirs(root + "/val/n01"));
  std::vector<uint8_t> gray(64 * 64);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i % 64 * 4);
  auto gray_jpeg = EncodeJpeg(gray.data(), 64, 64, PixelFormat::kGray, 95, false);
  ASSERT_TRUE(gray_jpeg.ok());
  WriteFileOrFail(root + "/val/n01/gray.JPEG", *gray_jpeg);
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 64 * 64; ++i) cmyk.insert(cmyk.end(), {255, 128, 0, 255});
  auto cmyk_jpeg = EncodeJpeg(cmyk.data(), 64, 64, PixelFormat::kCmyk, 95, false);
  ASSERT_TRUE(cmyk_jpeg.ok());
  WriteFileOrFail(root + "/val/n01/cmyk.JPEG", *cmyk_jpeg);
  PACT_ASSERT_OK_AND_ASSIGN(auto val, LoadImagenet(Context(root, SPLIT_TEST), Options(32, 32)));
  ASSERT_EQ(val->size(), 2);
  const ChannelNormalization n = ImagenetNormalization();
  const auto pixel = [&](const std::vector<float>& image, int c, int i) {
    return (image[c * 32 * 32 + i] * n.std[c] + n.mean[c]) * 255.0f;  // back to 0..255
  };
  int64_t label;
  const std::vector<float> cmyk_image = GetImage(*val, 0, &label);  // "cmyk" < "gray"
  for (int i = 0; i < 32 * 32; ++i) {
    ASSERT_NEAR(pixel(cmyk_image, 0, i), 255, 5);
    ASSERT_NEAR(pixel(cmyk_image, 1, i), 128, 5);
    ASSERT_NEAR(pixel(cmyk_image, 2, i), 0, 5);
  }
  const std::vector<float> gray_image = GetImage(*val, 1, &label);
  for (int i = 0; i < 32 * 32; ++i) {
    ASSERT_NEAR(pixel(gray_image, 0, i), pixel(gray_image, 1, i), 1e-3);
    ASSERT_NEAR(pixel(gray_image, 0, i), pixel(gray_image, 2, i), 1e-3);
  }
  EXPECT_EQ(val->unusable_images(), 0);
}

TEST(ImagenetTest, UnusableImagesBecomeZeroImagesWithTheirLabelAndAreCounted) {
  const std::string root = SmallTree("imagenet_corrupt");
  WriteFileOrFail(root + "/train/n02/c.jpeg", "garbage, not a JPEG");
  WriteFileOrFail(root + "/train/n03/b.JPEG", std::string("\x89PNG\r\n\x1a\n", 8) + "IHDR");
  PACT_ASSERT_OK_AND_ASSIGN(auto train,
                            LoadImagenet(Context(root, SPLIT_TRAIN, true), Options(24, 24)));
  std::filesystem::remove(root + "/train/n01/z.JPEG");  // vanished after listing
  for (int64_t index : {1, 2, 3}) {
    int64_t label;
    const std::vector<float> image = GetImage(*train, index, &label);
    EXPECT_EQ(label, train->label(index));
    EXPECT_THAT(image, ::testing::Each(0.0f)) << index;
  }
  EXPECT_EQ(train->unusable_images(), 3);
  int64_t label;
  const std::vector<float> good = GetImage(*train, 0, &label);
  EXPECT_THAT(good, ::testing::Contains(::testing::Ne(0.0f)));
  EXPECT_EQ(train->unusable_images(), 3);
}

TEST(ImagenetTest, GetIsThreadSafeAndDeterministic) {
  const std::string root = TestTempDir("imagenet_threads");
  for (int i = 0; i < 6; ++i) {
    WriteJpeg(absl::StrCat(root, "/train/n0", i % 2, "/", i, ".JPEG"), 120 + 10 * i, 90, i);
  }
  PACT_ASSERT_OK_AND_ASSIGN(auto train,
                            LoadImagenet(Context(root, SPLIT_TRAIN, true), Options(32, 32)));
  std::vector<std::vector<float>> reference;
  for (int64_t i = 0; i < train->size(); ++i) {
    int64_t label;
    reference.push_back(GetImage(*train, i, &label, 100 + i));
  }
  std::vector<int> mismatches(3, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 10; ++round) {
        for (int64_t i = 0; i < train->size(); ++i) {
          int64_t label;
          if (GetImage(*train, i, &label, 100 + i) != reference[i]) ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

TEST(ImagenetTest, ThroughTheRegistry) {
  const std::string root = SmallTree("imagenet_registry");
  const auto spec = ParseTextProtoOrDie<DatasetSpec>(absl::StrCat(
      "data_root: '", root, "' split: SPLIT_TRAIN augment: true imagenet { download: false }"));
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(dataset->size(), 4);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 224, 224}));
}

// ---- Downloads from a local stand-in for the Hub -------------------------------------------

constexpr char kHubPath[] = "/datasets/ILSVRC/imagenet-1k/resolve/main/";

class ImagenetHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.Set("HF_ENDPOINT", server_.Url(""));
    env_.Set("HF_TOKEN", "hf_test_token");
    env_.Set("HOME", root_);
  }

  void ServeArchive(const std::string& file, const std::vector<ArchiveEntry>& entries) {
    HttpTestServer::Resource r;
    r.body = MakeTarGz(entries);
    r.bearer_token = "hf_test_token";
    server_.Serve(kHubPath + file, r);
  }

  ScopedEnv env_;
  HttpTestServer server_;
  const std::string root_ =
      TestTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
};

TEST_F(ImagenetHubTest, ValArchiveIsLaidOutInClassFoldersWithOriginalNames) {
  ServeArchive("data/val_images.tar.gz",
               {ArchiveEntry::File("ILSVRC2012_val_00000001_n01751748.JPEG", Jpeg(40, 30, 1)),
                ArchiveEntry::File("ILSVRC2012_val_00000002_n01440764.JPEG", Jpeg(40, 30, 2)),
                ArchiveEntry::File("val/ILSVRC2012_val_00000003_n01440764.JPEG", Jpeg(40, 30, 3))});
  ImagenetOptions options = Options(16, 16);
  options.set_download(true);
  PACT_ASSERT_OK(DownloadImagenetFromHub(root_, SPLIT_TEST, options));
  EXPECT_TRUE(PathExists(root_ + "/val/n01751748/ILSVRC2012_val_00000001.JPEG"));
  EXPECT_TRUE(PathExists(root_ + "/val/n01440764/ILSVRC2012_val_00000002.JPEG"));
  EXPECT_TRUE(PathExists(root_ + "/val/n01440764/ILSVRC2012_val_00000003.JPEG"));
  EXPECT_TRUE(PathExists(root_ + "/hf_cache/val_images.tar.gz.extracted"));
  EXPECT_FALSE(PathExists(root_ + "/hf_cache/val_images.tar.gz"));  // keep_archives: false
  EXPECT_FALSE(PathExists(root_ + "/hf_cache/val.incomplete"));
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.at("authorization"), "Bearer hf_test_token");
  // Through the registry (download on), which finds the folder and downloads nothing more.
  const auto spec = ParseTextProtoOrDie<DatasetSpec>(absl::StrCat(
      "data_root: '", root_, "' split: SPLIT_TEST imagenet { image_size: 16 resize_size: 16 }"));
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(dataset->size(), 3);
  EXPECT_EQ(dataset->num_classes(), 2);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(ImagenetHubTest, InterruptedTrainDownloadResumesWithTheMissingArchives) {
  for (int i = 0; i < 5; ++i) {
    if (i == 3) continue;  // not served yet: the first run stops there
    ServeArchive(absl::StrCat("data/train_images_", i, ".tar.gz"),
                 {ArchiveEntry::File(absl::StrCat("n0144076", i, "_1", "_n0144076", i, ".JPEG"),
                                     Jpeg(30, 30, i))});
  }
  ImagenetOptions options = Options(16, 16);
  options.set_keep_archives(true);
  const absl::Status first = DownloadImagenetFromHub(root_, SPLIT_TRAIN, options);
  EXPECT_EQ(first.code(), absl::StatusCode::kNotFound) << first;
  EXPECT_THAT(first.message(), HasSubstr("train_images_3.tar.gz: HTTP 404"));
  EXPECT_TRUE(PathExists(root_ + "/train/n01440762/n01440762_1.JPEG"));
  EXPECT_TRUE(PathExists(root_ + "/hf_cache/train.incomplete"));

  ServeArchive("data/train_images_3.tar.gz",
               {ArchiveEntry::File("n01440763_1_n01440763.JPEG", Jpeg(30, 30, 3))});
  PACT_ASSERT_OK(DownloadImagenetFromHub(root_, SPLIT_TRAIN, options));
  EXPECT_FALSE(PathExists(root_ + "/hf_cache/train.incomplete"));
  EXPECT_TRUE(PathExists(root_ + "/hf_cache/train_images_0.tar.gz"));  // keep_archives
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(
        server_.RequestsFor(absl::StrCat(kHubPath, "data/train_images_", i, ".tar.gz")).size(),
        i == 3 ? 2u : (i < 3 ? 1u : 1u))
        << i;
  }
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadImagenet(Context(root_), options));
  EXPECT_EQ(train->size(), 5);
  EXPECT_EQ(train->num_classes(), 5);
}

TEST_F(ImagenetHubTest, NoTokenIsPermissionDeniedWithHowToFixIt) {
  env_.Unset("HF_TOKEN");
  env_.Unset("HUGGING_FACE_HUB_TOKEN");
  env_.Unset("HF_TOKEN_PATH");
  env_.Unset("HF_HOME");
  env_.Unset("XDG_CACHE_HOME");
  ServeArchive("data/val_images.tar.gz", {ArchiveEntry::File("a_n01440764.JPEG", Jpeg(8, 8))});
  const absl::Status status = DownloadImagenetFromHub(root_, SPLIT_TEST, Options());
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("HTTP 401"));
  EXPECT_THAT(status.message(),
              HasSubstr("accept its terms at https://huggingface.co/datasets/ILSVRC/imagenet-1k"));
  EXPECT_THAT(status.message(), HasSubstr("`huggingface-cli login`"));
  EXPECT_THAT(status.message(), HasSubstr("HF_TOKEN"));
  EXPECT_THAT(status.message(), HasSubstr("no token found"));
  EXPECT_FALSE(PathExists(root_ + "/val"));
  EXPECT_FALSE(PathExists(root_ + "/hf_cache/val.incomplete"));
}

TEST_F(ImagenetHubTest, ARefusedTokenSaysWhereItCameFrom) {
  env_.Set("HF_TOKEN", "hf_wrong");
  ServeArchive("data/val_images.tar.gz", {ArchiveEntry::File("a_n01440764.JPEG", Jpeg(8, 8))});
  const absl::Status status = DownloadImagenetFromHub(root_, SPLIT_TEST, Options());
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("the token from HF_TOKEN was refused"));
}

TEST_F(ImagenetHubTest, AnExistingFolderIsNeverDownloadedOver) {
  WriteJpeg(root_ + "/val/n01/mine.JPEG", 8, 8);
  PACT_ASSERT_OK(DownloadImagenetFromHub(root_, SPLIT_TEST, Options()));
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(ImagenetHubTest, EntriesWithoutAWnidAreDataLoss) {
  ServeArchive("data/val_images.tar.gz", {ArchiveEntry::File("ILSVRC2012_val_1.JPEG", Jpeg(8, 8))});
  const absl::Status status = DownloadImagenetFromHub(root_, SPLIT_TEST, Options());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("'ILSVRC2012_val_1.JPEG' does not end in _<wnid>"));
}

}  // namespace
}  // namespace pact::datasets
