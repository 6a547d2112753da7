#include "datasets/cifar10.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "datasets/dataset.h"
#include "datasets/http_test_server.h"
#include "datasets/md5.h"
#include "datasets/test_fixtures.h"
#include "datasets/transforms.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::ArchiveEntry;
using ::pact::datasets::testing::CifarRecords;
using ::pact::datasets::testing::FixtureLabel;
using ::pact::datasets::testing::FixturePixel;
using ::pact::datasets::testing::HttpTestServer;
using ::pact::datasets::testing::MakeTarGz;
using ::pact::datasets::testing::ScopedEnv;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::TestTempDir;
using ::testing::HasSubstr;

constexpr int64_t kRecords = 3;  // per fixture file; the real files have 10000

// Writes the split's files with kRecords records each, ids continuing across files.
void WriteSplit(const std::string& folder, Split split, int64_t records = kRecords) {
  int64_t id = 0;
  for (const std::string& name : Cifar10FileNames(split)) {
    WriteFileOrFail(folder + "/" + name, CifarRecords(id, records));
    id += records;
  }
}

DatasetContext Context(const std::string& root, Split split = SPLIT_TRAIN) {
  DatasetContext context;
  context.data_root = root;
  context.split = split;
  return context;
}

std::vector<float> GetImage(const Dataset& dataset, int64_t index, int64_t* label,
                            uint64_t seed = 1) {
  std::vector<float> image(3 * 32 * 32);
  std::mt19937_64 rng(seed);
  *label = dataset.Get(index, rng, image.data());
  return image;
}

TEST(Cifar10Test, LoadsTrainFromArchiveSubfolderInFileOrder) {
  const std::string root = TestTempDir("cifar_train");
  ASSERT_EQ(::mkdir((root + "/cifar-10-batches-bin").c_str(), 0755), 0);
  WriteSplit(root + "/cifar-10-batches-bin", SPLIT_TRAIN);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadCifar10(Context(root), kRecords));
  ASSERT_EQ(dataset->size(), 5 * kRecords);
  EXPECT_EQ(dataset->num_classes(), 10);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 32, 32}));
  for (int64_t i = 0; i < dataset->size(); ++i) {
    EXPECT_EQ(dataset->label(i), FixtureLabel(i));
    for (int64_t j : {0, 1, 1023, 1024, 2047, 2048, 3071}) {
      ASSERT_EQ(dataset->raw_image(i)[j], FixturePixel(i, j)) << "record " << i << " byte " << j;
    }
  }
  EXPECT_THAT(dataset->Describe(), HasSubstr("cifar10 train: 15 images 3x32x32"));
}

TEST(Cifar10Test, LoadsTestSplitFromDataRootDirectly) {
  const std::string root = TestTempDir("cifar_test_flat");
  WriteSplit(root, SPLIT_TEST);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadCifar10(Context(root, SPLIT_TEST), kRecords));
  EXPECT_EQ(dataset->size(), kRecords);
  EXPECT_EQ(dataset->label(2), FixtureLabel(2));
}

TEST(Cifar10Test, GetNormalizesWithStandardStatisticsPerChannel) {
  const std::string root = TestTempDir("cifar_norm");
  WriteSplit(root, SPLIT_TEST);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadCifar10(Context(root, SPLIT_TEST), kRecords));
  int64_t label = -1;
  const std::vector<float> image = GetImage(*dataset, 1, &label);
  EXPECT_EQ(label, FixtureLabel(1));
  const float mean[] = {0.4914f, 0.4822f, 0.4465f};
  const float std[] = {0.2470f, 0.2435f, 0.2616f};
  for (int64_t j = 0; j < 3072; ++j) {
    const int c = static_cast<int>(j / 1024);  // R, G, B planes
    ASSERT_FLOAT_EQ(image[j], (FixturePixel(1, j) / 255.0f - mean[c]) / std[c]) << j;
  }
}

TEST(Cifar10Test, AugmentationIsPadCropFlipDrawnFromTheGenerator) {
  const std::string root = TestTempDir("cifar_augment");
  WriteSplit(root, SPLIT_TEST);
  DatasetContext context = Context(root, SPLIT_TEST);
  context.augment = true;
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadCifar10(context, kRecords));
  const std::vector<float> lut = MakeNormalizationTable(Cifar10Normalization());
  bool saw_flip = false, saw_shift = false;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    int64_t label;
    const std::vector<float> image = GetImage(*dataset, 0, &label, seed);
    std::mt19937_64 rng(seed);
    const CropFlip expected = SampleCropFlip(rng, 4, true);
    saw_flip |= expected.flip;
    saw_shift |= expected.dx != 0 || expected.dy != 0;
    std::vector<float> want(3072);
    CropFlipNormalize(dataset->raw_image(0), 3, 32, 32, expected, lut.data(), want.data());
    ASSERT_EQ(image, want) << "seed " << seed;
  }
  EXPECT_TRUE(saw_flip && saw_shift);
}

TEST(Cifar10Test, MissingFilesSayWhereToPutThem) {
  const std::string root = TestTempDir("cifar_missing");
  const absl::Status status = LoadCifar10(Context(root)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("data_batch_1.bin"));
  EXPECT_THAT(status.message(),
              HasSubstr("download cifar-10-binary.tar.gz from "
                        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and extract it "
                        "into " +
                        root));
}

TEST(Cifar10Test, DefaultRootIsDataCifar10) {
  DatasetContext context;
  context.split = SPLIT_TEST;
  const std::string cwd_has_it = "data/cifar10";
  if (::access(cwd_has_it.c_str(), F_OK) == 0) GTEST_SKIP() << "data/cifar10 exists here";
  const absl::Status status = LoadCifar10(context).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("extract it into data/cifar10"));
}

TEST(Cifar10Test, OneMissingBatchIsNamed) {
  const std::string root = TestTempDir("cifar_one_missing");
  WriteSplit(root, SPLIT_TRAIN);
  ASSERT_EQ(std::remove((root + "/data_batch_3.bin").c_str()), 0);
  const absl::Status status = LoadCifar10(Context(root), kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(root + "/data_batch_3.bin is missing"));
}

TEST(Cifar10Test, TruncatedFileIsDataLossWithExpectedAndActualSize) {
  const std::string root = TestTempDir("cifar_truncated");
  WriteSplit(root, SPLIT_TRAIN);
  WriteFileOrFail(root + "/data_batch_2.bin", CifarRecords(0, kRecords).substr(1));
  const absl::Status status = LoadCifar10(Context(root), kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(root + "/data_batch_2.bin: expected 9219 bytes"));
  EXPECT_THAT(status.message(), HasSubstr("got 9218 bytes (truncated)"));
}

TEST(Cifar10Test, OversizedFileIsDataLoss) {
  const std::string root = TestTempDir("cifar_oversized");
  WriteSplit(root, SPLIT_TEST);
  WriteFileOrFail(root + "/test_batch.bin", CifarRecords(0, kRecords) + "x");
  const absl::Status status = LoadCifar10(Context(root, SPLIT_TEST), kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("test_batch.bin: expected 9219 bytes"));
  EXPECT_THAT(status.message(), HasSubstr("got 9220 bytes (too large)"));
}

TEST(Cifar10Test, RealSizeIsThirtyMillionBytes) {
  // The production path (10000 records per file) through the registry.
  const std::string root = TestTempDir("cifar_real_size");
  WriteFileOrFail(root + "/test_batch.bin", CifarRecords(0, 10000).substr(0, 30729999));
  DatasetSpec spec;
  spec.set_data_root(root);
  spec.set_split(SPLIT_TEST);
  spec.mutable_cifar10();
  absl::Status status = GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("dataset 'cifar10': " + root +
                                          "/test_batch.bin: expected 30730000 bytes (10000 "
                                          "records of 3073 bytes), got 30729999 bytes"));
  WriteFileOrFail(root + "/test_batch.bin", CifarRecords(0, 10000));
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(dataset->size(), 10000);
}

TEST(Cifar10Test, BadLabelIsDataLossNamingFileAndRecord) {
  const std::string root = TestTempDir("cifar_bad_label");
  WriteSplit(root, SPLIT_TRAIN);
  std::string records = CifarRecords(0, kRecords);
  records[2 * 3073] = 10;
  WriteFileOrFail(root + "/data_batch_4.bin", records);
  const absl::Status status = LoadCifar10(Context(root), kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              HasSubstr(root + "/data_batch_4.bin: record 2 (byte offset 6146) has label 10, "
                               "expected 0..9"));
}

TEST(Cifar10Test, UnreadableFileIsAnErrorNamingIt) {
  const std::string root = TestTempDir("cifar_unreadable");
  WriteSplit(root, SPLIT_TEST);
  ASSERT_EQ(std::remove((root + "/test_batch.bin").c_str()), 0);
  ASSERT_EQ(::mkdir((root + "/test_batch.bin").c_str(), 0755), 0);  // exists, cannot be read
  const absl::Status status = LoadCifar10(Context(root, SPLIT_TEST), kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(root + "/test_batch.bin"));
}

TEST(Cifar10Test, UnreadablePermissionsArePermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  const std::string root = TestTempDir("cifar_mode0");
  WriteSplit(root, SPLIT_TEST);
  ASSERT_EQ(::chmod((root + "/test_batch.bin").c_str(), 0), 0);
  const absl::Status status = LoadCifar10(Context(root, SPLIT_TEST), kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr(root + "/test_batch.bin"));
}

TEST(Cifar10Test, NormalizationOverride) {
  const std::string root = TestTempDir("cifar_override");
  WriteSplit(root, SPLIT_TEST);
  DatasetContext context = Context(root, SPLIT_TEST);
  context.mean = {0, 0, 0};
  context.std = {1, 1, 1};
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadCifar10(context, kRecords));
  int64_t label;
  const std::vector<float> image = GetImage(*dataset, 0, &label);
  EXPECT_FLOAT_EQ(image[5], FixturePixel(0, 5) / 255.0f);

  context.mean = {0.5f};
  context.std = {0.5f};
  const absl::Status status = LoadCifar10(context, kRecords).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("normalize.mean: expected 3 value(s)"));
}

TEST(Cifar10Test, UnspecifiedSplitIsInvalidArgument) {
  const absl::Status status = LoadCifar10(Context("/nowhere", SPLIT_UNSPECIFIED)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("split: must be SPLIT_TRAIN or SPLIT_TEST"));
}

TEST(Cifar10Test, FromRecords) {
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            Cifar10FromRecords(CifarRecords(0, 4), "memory", Context("")));
  EXPECT_EQ(dataset->size(), 4);
  EXPECT_EQ(Cifar10FromRecords("abc", "memory", Context("")).status().code(),
            absl::StatusCode::kDataLoss);
}

// ---- Download (against a local HTTP server; never the internet) -----------------------------

// cifar-10-binary.tar.gz's layout, with kRecords records per file.
std::string FixtureArchive() {
  std::vector<ArchiveEntry> entries = {ArchiveEntry::Folder("cifar-10-batches-bin/")};
  int64_t id = 0;
  for (const Split split : {SPLIT_TRAIN, SPLIT_TEST}) {
    for (const std::string& name : Cifar10FileNames(split)) {
      entries.push_back(
          ArchiveEntry::File("cifar-10-batches-bin/" + name, CifarRecords(id, kRecords)));
      id += kRecords;
    }
  }
  entries.push_back(ArchiveEntry::File("cifar-10-batches-bin/batches.meta.txt", "airplane\n"));
  return MakeTarGz(entries);
}

TEST(Cifar10DownloadTest, DownloadsVerifiesAndExtractsThenLoads) {
  HttpTestServer server;
  HttpTestServer::Resource archive;
  archive.body = FixtureArchive();
  server.Serve("/cifar.tgz", archive);
  const std::string root = TestTempDir("cifar_download");
  Cifar10Options options;
  options.set_download_url(server.Url("/cifar.tgz"));
  PACT_ASSERT_OK(DownloadCifar10IfMissing(root, SPLIT_TRAIN, options, Md5Hex(archive.body)));
  EXPECT_TRUE(PathExists(root + "/cifar-10-binary.tar.gz"));
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadCifar10(Context(root), kRecords));
  EXPECT_EQ(train->size(), 5 * kRecords);
  PACT_ASSERT_OK_AND_ASSIGN(auto test, LoadCifar10(Context(root, SPLIT_TEST), kRecords));
  EXPECT_EQ(test->label(0), FixtureLabel(5 * kRecords));
  // Present now: nothing more is fetched.
  PACT_ASSERT_OK(DownloadCifar10IfMissing(root, SPLIT_TEST, options, Md5Hex(archive.body)));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(Cifar10DownloadTest, EnvironmentUrlAndOfficialMd5Mismatch) {
  HttpTestServer server;
  HttpTestServer::Resource archive;
  archive.body = FixtureArchive();
  server.Serve("/mirror.tgz", archive);
  ScopedEnv env;
  env.Set("PACT_CIFAR10_URL", server.Url("/mirror.tgz"));
  const std::string root = TestTempDir("cifar_download_md5");
  const absl::Status status = DownloadCifar10IfMissing(root, SPLIT_TRAIN, Cifar10Options());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("expected c32a1d4ab5d03f1284b67883e8d87530"));
  EXPECT_THAT(status.message(), HasSubstr("deleted the bad download"));
  EXPECT_FALSE(PathExists(root + "/cifar-10-binary.tar.gz"));
  EXPECT_FALSE(PathExists(root + "/cifar-10-binary.tar.gz.part"));
  EXPECT_FALSE(PathExists(root + "/cifar-10-batches-bin"));
  ASSERT_EQ(server.requests().size(), 1u);
}

TEST(Cifar10DownloadTest, OfflineIsUnavailableWithTheManualWay) {
  std::string url;
  {
    HttpTestServer closed;
    url = closed.Url("/cifar.tgz");
  }
  const std::string root = TestTempDir("cifar_offline");
  Cifar10Options options;
  options.set_download_url(url);
  const absl::Status status = DownloadCifar10IfMissing(root, SPLIT_TEST, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("cannot download " + url));
  EXPECT_THAT(status.message(), HasSubstr("download " + url + " and extract it into " + root));
}

TEST(Cifar10DownloadTest, ThroughTheRegistryWhenFilesAreMissing) {
  HttpTestServer server;
  HttpTestServer::Resource r;
  r.status = 404;
  server.Serve("/cifar.tgz", r);
  const std::string root = TestTempDir("cifar_registry_download");
  DatasetSpec spec;
  spec.set_data_root(root);
  spec.mutable_cifar10()->set_download_url(server.Url("/cifar.tgz"));
  absl::Status status = GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("HTTP 404"));
  // download: false keeps the old behaviour: NotFound with instructions, no request.
  spec.mutable_cifar10()->set_download(false);
  status = GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("download cifar-10-binary.tar.gz from"));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(Cifar10DownloadTest, AUsersArchiveIsUsedButNeverDeleted) {
  HttpTestServer server;  // never asked
  const std::string root = TestTempDir("cifar_user_archive");
  const std::string archive = FixtureArchive();
  WriteFileOrFail(root + "/cifar-10-binary.tar.gz", archive);
  Cifar10Options options;
  options.set_download_url(server.Url("/cifar.tgz"));
  // Official MD5: the user's file does not match; it is reported and kept.
  const absl::Status status = DownloadCifar10IfMissing(root, SPLIT_TRAIN, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("left alone"));
  EXPECT_TRUE(PathExists(root + "/cifar-10-binary.tar.gz"));
  // With its own MD5 it is extracted.
  PACT_ASSERT_OK(DownloadCifar10IfMissing(root, SPLIT_TRAIN, options, Md5Hex(archive)));
  EXPECT_TRUE(PathExists(root + "/cifar-10-batches-bin/data_batch_5.bin"));
  EXPECT_TRUE(server.requests().empty());
}

// The real files, when PACT_CIFAR10_ROOT names them (bazel test --test_env=PACT_CIFAR10_ROOT=...).
TEST(Cifar10Test, RealFilesLoadIfGiven) {
  const char* root = std::getenv("PACT_CIFAR10_ROOT");
  if (root == nullptr) GTEST_SKIP() << "set PACT_CIFAR10_ROOT to check the real files";
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadCifar10(Context(root, SPLIT_TRAIN)));
  PACT_ASSERT_OK_AND_ASSIGN(auto test, LoadCifar10(Context(root, SPLIT_TEST)));
  EXPECT_EQ(train->size(), 50000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->label(0), 6);  // frog
  EXPECT_EQ(test->label(0), 3);   // cat
}

}  // namespace
}  // namespace pact::datasets
