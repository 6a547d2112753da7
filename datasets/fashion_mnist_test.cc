#include "datasets/fashion_mnist.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "datasets/dataset.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::FixtureLabel;
using ::pact::datasets::testing::FixtureLabels;
using ::pact::datasets::testing::FixturePixel;
using ::pact::datasets::testing::GzipCompress;
using ::pact::datasets::testing::IdxImages;
using ::pact::datasets::testing::IdxLabels;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::TestTempDir;
using ::testing::HasSubstr;

constexpr int64_t kCount = 6;

// Writes `prefix`-{images-idx3,labels-idx1}-ubyte[.gz] with kCount fixture examples.
void WriteSplit(const std::string& root, const std::string& prefix, bool gzip = true) {
  const std::string suffix = gzip ? ".gz" : "";
  const std::string images = IdxImages(kCount, 28, 28);
  const std::string labels = IdxLabels(FixtureLabels(kCount));
  WriteFileOrFail(root + "/" + prefix + "-images-idx3-ubyte" + suffix,
                  gzip ? GzipCompress(images) : images);
  WriteFileOrFail(root + "/" + prefix + "-labels-idx1-ubyte" + suffix,
                  gzip ? GzipCompress(labels) : labels);
}

DatasetContext Context(const std::string& root, Split split = SPLIT_TRAIN) {
  DatasetContext context;
  context.data_root = root;
  context.split = split;
  return context;
}

void ExpectFixtureValues(const InMemoryImageDataset& dataset) {
  ASSERT_EQ(dataset.size(), kCount);
  for (int64_t i = 0; i < kCount; ++i) {
    EXPECT_EQ(dataset.label(i), FixtureLabel(i));
    for (int64_t j = 0; j < 784; ++j) ASSERT_EQ(dataset.raw_image(i)[j], FixturePixel(i, j));
  }
}

TEST(FashionMnistTest, LoadsGzippedTrainAndTest) {
  const std::string root = TestTempDir("fmnist_gz");
  WriteSplit(root, "train");
  WriteSplit(root, "t10k");
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadFashionMnist(Context(root)));
  ExpectFixtureValues(*train);
  EXPECT_EQ(train->image_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(train->num_classes(), 10);
  PACT_ASSERT_OK_AND_ASSIGN(auto test, LoadFashionMnist(Context(root, SPLIT_TEST)));
  ExpectFixtureValues(*test);
  EXPECT_THAT(test->Describe(), HasSubstr("fashion_mnist test: 6 images 1x28x28"));
}

TEST(FashionMnistTest, LoadsRawFiles) {
  const std::string root = TestTempDir("fmnist_raw");
  WriteSplit(root, "train", /*gzip=*/false);
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadFashionMnist(Context(root)));
  ExpectFixtureValues(*train);
}

TEST(FashionMnistTest, GetNormalizesWithStandardStatistics) {
  const std::string root = TestTempDir("fmnist_norm");
  WriteSplit(root, "train");
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadFashionMnist(Context(root)));
  std::vector<float> image(784);
  std::mt19937_64 rng(0);
  EXPECT_EQ(train->Get(3, rng, image.data()), FixtureLabel(3));
  for (int j = 0; j < 784; ++j) {
    ASSERT_FLOAT_EQ(image[j], (FixturePixel(3, j) / 255.0f - 0.2860f) / 0.3530f);
  }
}

TEST(FashionMnistTest, MissingFileIsNotFoundSayingWhereToGetIt) {
  const std::string root = TestTempDir("fmnist_missing");
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("neither " + root + "/train-images-idx3-ubyte.gz nor " +
                                          root + "/train-images-idx3-ubyte exists"));
  EXPECT_THAT(status.message(), HasSubstr("dataset-fashion-mnist"));
  EXPECT_THAT(status.message(), HasSubstr("zalandoresearch/fashion-mnist"));
}

TEST(FashionMnistTest, MissingLabelsAreNamed) {
  const std::string root = TestTempDir("fmnist_missing_labels");
  WriteSplit(root, "train");
  ASSERT_EQ(std::remove((root + "/train-labels-idx1-ubyte.gz").c_str()), 0);
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("train-labels-idx1-ubyte.gz"));
}

TEST(FashionMnistTest, BadImageMagicIsDataLoss) {
  const std::string root = TestTempDir("fmnist_bad_magic");
  WriteSplit(root, "train");
  WriteFileOrFail(root + "/train-images-idx3-ubyte.gz",
                  GzipCompress(IdxImages(kCount, 28, 28, /*magic=*/2049)));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(root + "/train-images-idx3-ubyte.gz: bad IDX magic "
                                                 "number 2049, expected 2051"));
}

TEST(FashionMnistTest, BadLabelMagicIsDataLoss) {
  const std::string root = TestTempDir("fmnist_bad_label_magic");
  WriteSplit(root, "train");
  WriteFileOrFail(root + "/train-labels-idx1-ubyte.gz",
                  GzipCompress(IdxLabels(FixtureLabels(kCount), /*magic=*/2051)));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("train-labels-idx1-ubyte.gz: bad IDX magic number 2051, "
                                          "expected 2049"));
}

TEST(FashionMnistTest, CountMismatchIsDataLossNamingBothFiles) {
  const std::string root = TestTempDir("fmnist_count");
  WriteSplit(root, "train");
  WriteFileOrFail(root + "/train-labels-idx1-ubyte.gz",
                  GzipCompress(IdxLabels(FixtureLabels(kCount - 1))));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(root + "/train-images-idx3-ubyte.gz has 6 images but " +
                                          root + "/train-labels-idx1-ubyte.gz has 5 labels"));
}

TEST(FashionMnistTest, TruncatedImagesAreDataLossWithExpectedAndActualSize) {
  const std::string root = TestTempDir("fmnist_truncated");
  WriteSplit(root, "train", /*gzip=*/false);
  const std::string images = IdxImages(kCount, 28, 28);
  WriteFileOrFail(root + "/train-images-idx3-ubyte", images.substr(0, images.size() - 100));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              HasSubstr(root + "/train-images-idx3-ubyte: expected 4720 bytes (16-byte header + "
                               "6 images of 28x28), got 4620 (truncated)"));
}

TEST(FashionMnistTest, ShortHeaderIsDataLoss) {
  const std::string root = TestTempDir("fmnist_short");
  WriteSplit(root, "train", /*gzip=*/false);
  WriteFileOrFail(root + "/train-labels-idx1-ubyte", std::string(2, '\0'));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("expected an IDX header of 8 bytes, the file has 2"));
}

TEST(FashionMnistTest, ImplausibleHeaderIsDataLoss) {
  const std::string root = TestTempDir("fmnist_huge");
  WriteSplit(root, "train", /*gzip=*/false);
  std::string images = IdxImages(kCount, 28, 28);
  for (int i = 4; i < 16; ++i) images[i] = '\xff';  // count, rows, cols = 2^32 - 1
  WriteFileOrFail(root + "/train-images-idx3-ubyte", images);
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("implausible IDX header"));
}

TEST(FashionMnistTest, WrongImageSizeIsDataLoss) {
  const std::string root = TestTempDir("fmnist_32");
  WriteSplit(root, "train");
  WriteFileOrFail(root + "/train-images-idx3-ubyte.gz", GzipCompress(IdxImages(kCount, 32, 32)));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("expected 28x28 images, the header says 32x32"));
}

TEST(FashionMnistTest, LabelOutOfRangeIsDataLoss) {
  const std::string root = TestTempDir("fmnist_label");
  WriteSplit(root, "train");
  std::vector<uint8_t> labels = FixtureLabels(kCount);
  labels[4] = 10;
  WriteFileOrFail(root + "/train-labels-idx1-ubyte.gz", GzipCompress(IdxLabels(labels)));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              HasSubstr("train-labels-idx1-ubyte.gz: label 4 is 10, expected 0..9"));
}

TEST(FashionMnistTest, CorruptGzipIsDataLoss) {
  const std::string root = TestTempDir("fmnist_corrupt");
  WriteSplit(root, "train");
  std::string gz = GzipCompress(IdxImages(kCount, 28, 28));
  for (size_t i = 20; i < gz.size() - 8; i += 3) gz[i] = static_cast<char>(~gz[i]);
  WriteFileOrFail(root + "/train-images-idx3-ubyte.gz", gz);
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(root + "/train-images-idx3-ubyte.gz: corrupt gzip data"));
}

TEST(FashionMnistTest, TruncatedGzipIsDataLoss) {
  const std::string root = TestTempDir("fmnist_gz_truncated");
  WriteSplit(root, "train");
  const std::string gz = GzipCompress(IdxImages(kCount, 28, 28));
  WriteFileOrFail(root + "/train-images-idx3-ubyte.gz", gz.substr(0, gz.size() - 20));
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              HasSubstr(root + "/train-images-idx3-ubyte.gz: truncated gzip data"));
}

TEST(FashionMnistTest, UnreadableFileIsAnErrorNamingIt) {
  const std::string root = TestTempDir("fmnist_unreadable");
  WriteSplit(root, "train");
  const std::string path = root + "/train-labels-idx1-ubyte.gz";
  ASSERT_EQ(std::remove(path.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(FashionMnistTest, UnreadablePermissionsArePermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  const std::string root = TestTempDir("fmnist_mode0");
  WriteSplit(root, "train");
  const std::string path = root + "/train-images-idx3-ubyte.gz";
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const absl::Status status = LoadFashionMnist(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(FashionMnistTest, NormalizationOverrideLengthIsChecked) {
  const std::string root = TestTempDir("fmnist_override");
  WriteSplit(root, "train");
  DatasetContext context = Context(root);
  context.mean = {0.1f, 0.2f, 0.3f};
  context.std = {1, 1, 1};
  const absl::Status status = LoadFashionMnist(context).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("normalize.mean: expected 1 value(s)"));
}

TEST(FashionMnistTest, RealDebianFilesLoad) {
  if (::access((std::string(kFashionMnistDefaultRoot) + "/train-images-idx3-ubyte.gz").c_str(),
               R_OK) != 0) {
    GTEST_SKIP() << "Debian package dataset-fashion-mnist is not installed";
  }
  DatasetSpec spec;
  spec.mutable_fashion_mnist();  // default data_root
  spec.set_split(SPLIT_TRAIN);
  PACT_ASSERT_OK_AND_ASSIGN(auto train,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  spec.set_split(SPLIT_TEST);
  PACT_ASSERT_OK_AND_ASSIGN(auto test, GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  std::vector<float> image(784);
  std::mt19937_64 rng(0);
  EXPECT_EQ(train->Get(0, rng, image.data()), 9);  // ankle boot
  EXPECT_EQ(test->Get(1, rng, image.data()), 2);   // pullover
}

}  // namespace
}  // namespace pact::datasets
