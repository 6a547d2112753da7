#include "datasets/svhn.h"

#include <matio.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/dataset.h"
#include "datasets/http_test_server.h"
#include "datasets/image_ops.h"
#include "datasets/md5.h"
#include "datasets/test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

using ::pact::datasets::testing::FixtureLabel;
using ::pact::datasets::testing::FixturePixel;
using ::pact::datasets::testing::HttpTestServer;
using ::pact::datasets::testing::ScopedEnv;
using ::pact::datasets::testing::WriteFileOrFail;
using ::pact::testing::ParseTextProtoOrDie;
using ::pact::testing::TestTempDir;
using ::testing::HasSubstr;

// A .mat variable to write; null data = skip the variable.
struct Var {
  std::string name;
  matio_classes class_type;
  matio_types data_type;
  std::vector<size_t> dims;
  std::vector<uint8_t> bytes;  // raw data in the class's representation
};

// X for images [first_id, first_id + count): X(r, c, ch, n) = FixturePixel(id, ch*1024 + r*32 + c).
Var ImagesVar(int64_t first_id, int64_t count) {
  Var x{"X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, static_cast<size_t>(count)}, {}};
  x.bytes.resize(count * 3072);
  for (int64_t n = 0; n < count; ++n) {
    for (int ch = 0; ch < 3; ++ch) {
      for (int r = 0; r < 32; ++r) {
        for (int c = 0; c < 32; ++c) {
          x.bytes[r + 32 * c + 1024 * ch + 3072 * n] =
              FixturePixel(first_id + n, ch * 1024 + r * 32 + c);
        }
      }
    }
  }
  return x;
}

// y as MATLAB doubles (SVHN's files use uint8; both must work): 10 for the digit 0.
Var LabelsVar(const std::vector<double>& labels) {
  Var y{"y", MAT_C_DOUBLE, MAT_T_DOUBLE, {labels.size(), 1}, {}};
  y.bytes.resize(labels.size() * sizeof(double));
  std::memcpy(y.bytes.data(), labels.data(), y.bytes.size());
  return y;
}

std::vector<double> FixtureMatLabels(int64_t first_id, int64_t count) {
  std::vector<double> labels;
  for (int64_t id = first_id; id < first_id + count; ++id) {
    const int label = FixtureLabel(id);
    labels.push_back(label == 0 ? 10 : label);
  }
  return labels;
}

void WriteMat(const std::string& path, const std::vector<Var>& vars, bool compress = true) {
  mat_t* mat = Mat_CreateVer(path.c_str(), nullptr, MAT_FT_MAT5);
  ASSERT_NE(mat, nullptr) << path;
  for (const Var& v : vars) {
    std::vector<size_t> dims = v.dims;
    matvar_t* var =
        Mat_VarCreate(v.name.c_str(), v.class_type, v.data_type, static_cast<int>(dims.size()),
                      dims.data(), const_cast<uint8_t*>(v.bytes.data()), 0);
    ASSERT_NE(var, nullptr);
    ASSERT_EQ(Mat_VarWrite(mat, var, compress ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE), 0);
    Mat_VarFree(var);
  }
  Mat_Close(mat);
}

void WriteSvhnFile(const std::string& path, int64_t first_id, int64_t count, bool compress = true) {
  WriteMat(path, {ImagesVar(first_id, count), LabelsVar(FixtureMatLabels(first_id, count))},
           compress);
}

// train: ids 0..2, extra: ids 3..6, test: ids 100..104.
void WriteAllSplits(const std::string& root) {
  WriteSvhnFile(root + "/train_32x32.mat", 0, 3);
  WriteSvhnFile(root + "/extra_32x32.mat", 3, 4, /*compress=*/false);
  WriteSvhnFile(root + "/test_32x32.mat", 100, 5);
}

DatasetContext Context(const std::string& root, Split split = SPLIT_TRAIN) {
  DatasetContext context;
  context.data_root = root;
  context.split = split;
  return context;
}

SvhnOptions Options(int resize = 0, bool use_extra = true) {
  SvhnOptions options;
  options.set_resize(resize);
  options.set_use_extra(use_extra);
  options.set_download(false);
  return options;
}

std::vector<float> GetImage(const Dataset& dataset, int64_t index, int64_t* label,
                            uint64_t seed = 1) {
  const auto shape = dataset.image_shape();
  std::vector<float> image(shape[0] * shape[1] * shape[2]);
  std::mt19937_64 rng(seed);
  *label = dataset.Get(index, rng, image.data());
  return image;
}

TEST(SvhnTest, TrainIsTrainThenExtraAsChwWithDigitZeroAsClassZero) {
  const std::string root = TestTempDir("svhn_train");
  WriteAllSplits(root);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadSvhn(Context(root), Options()));
  ASSERT_EQ(dataset->size(), 7);
  EXPECT_EQ(dataset->num_classes(), 10);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 32, 32}));
  bool saw_zero = false;
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(dataset->label(i), FixtureLabel(i)) << i;
    saw_zero |= FixtureLabel(i) == 0;
    for (int64_t j = 0; j < 3072; ++j) {
      ASSERT_EQ(dataset->raw_image(i)[j], FixturePixel(i, j)) << "image " << i << " byte " << j;
    }
  }
  EXPECT_TRUE(saw_zero) << "the fixture should include the digit 0 (stored as 10)";
  EXPECT_THAT(dataset->Describe(), HasSubstr("svhn train: 7 images 3x32x32"));
  EXPECT_THAT(dataset->Describe(), HasSubstr("train_32x32.mat + extra_32x32.mat"));
}

TEST(SvhnTest, UseExtraFalseAndTestSplit) {
  const std::string root = TestTempDir("svhn_splits");
  WriteAllSplits(root);
  PACT_ASSERT_OK_AND_ASSIGN(auto train, LoadSvhn(Context(root), Options(0, false)));
  EXPECT_EQ(train->size(), 3);
  PACT_ASSERT_OK_AND_ASSIGN(auto test, LoadSvhn(Context(root, SPLIT_TEST), Options()));
  ASSERT_EQ(test->size(), 5);
  EXPECT_EQ(test->label(4), FixtureLabel(104));
  EXPECT_EQ(test->raw_image(4)[3071], FixturePixel(104, 3071));
}

TEST(SvhnTest, DefaultNormalizationIsDividingBy256) {
  const std::string root = TestTempDir("svhn_norm");
  WriteAllSplits(root);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadSvhn(Context(root, SPLIT_TEST), Options()));
  int64_t label;
  const std::vector<float> image = GetImage(*dataset, 2, &label);
  EXPECT_EQ(label, FixtureLabel(102));
  for (int64_t j = 0; j < 3072; ++j) {
    ASSERT_NEAR(image[j], FixturePixel(102, j) / 256.0f, 1e-6f) << j;
  }
}

TEST(SvhnTest, ResizeTo40IsBilinearPerPlane) {
  const std::string root = TestTempDir("svhn_resize");
  WriteAllSplits(root);
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadSvhn(Context(root, SPLIT_TEST), Options(40)));
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 40, 40}));
  int64_t label;
  const std::vector<float> image = GetImage(*dataset, 1, &label);
  const ResizeAxis axis = ComputeResizeAxis(32, 0, 32, 40);
  std::vector<float> scratch;
  for (int c = 0; c < 3; ++c) {
    std::vector<uint8_t> plane(1600);
    ResizeInterleaved(dataset->raw_image(1) + c * 1024, 32, 32, 1, 32, axis, axis, plane.data(),
                      &scratch);
    for (int i = 0; i < 1600; ++i) ASSERT_NEAR(image[c * 1600 + i], plane[i] / 256.0f, 1e-6f);
  }
}

TEST(SvhnTest, AugmentationIsBrightnessThenContrastFromTheGenerator) {
  const std::string root = TestTempDir("svhn_augment");
  // One image whose channels are half 50, half 150 (mean 100 per channel).
  Var x{"X", MAT_C_UINT8, MAT_T_UINT8, {32, 32, 3, 1}, std::vector<uint8_t>(3072)};
  for (int i = 0; i < 3072; ++i) x.bytes[i] = (i % 1024) < 512 ? 50 : 150;
  WriteMat(root + "/test_32x32.mat", {x, LabelsVar({3})});
  DatasetContext context = Context(root, SPLIT_TEST);
  context.augment = true;
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadSvhn(context, Options()));
  std::set<float> outputs;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    int64_t label;
    const std::vector<float> image = GetImage(*dataset, 0, &label, seed);
    std::mt19937_64 rng(seed);
    const float delta = static_cast<float>(-30.0 + 60.0 * UniformUnit(rng));
    const float factor = static_cast<float>(0.5 + UniformUnit(rng));
    const auto clip = [](float v) {
      return static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)));
    };
    const uint8_t lo = clip(50 + delta), hi = clip(150 + delta);
    const float mean = (lo + hi) / 2.0f;
    const uint8_t want_lo = clip((lo - mean) * factor + mean);
    const uint8_t want_hi = clip((hi - mean) * factor + mean);
    for (int i = 0; i < 3072; ++i) {
      // Row-major CHW after the (column-major) file: the 512-pixel halves are column halves.
      const int col = i % 32;
      const bool first_half = col < 16;
      ASSERT_NEAR(image[i], (first_half ? want_lo : want_hi) / 256.0f, 1e-6f)
          << "seed " << seed << " pixel " << i;
    }
    outputs.insert(image[0]);
  }
  EXPECT_GT(outputs.size(), 5u);  // the generator drives it
}

TEST(SvhnTest, ThroughTheRegistry) {
  const std::string root = TestTempDir("svhn_registry");
  WriteAllSplits(root);
  const auto spec = ParseTextProtoOrDie<DatasetSpec>(
      absl::StrCat("data_root: '", root, "' split: SPLIT_TEST svhn { download: false }"));
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset,
                            GetDatasetRegistry().Create(spec, MakeDatasetContext(spec)));
  EXPECT_EQ(dataset->size(), 5);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 40, 40}));  // resize 40 default
}

struct BadFileCase {
  std::string name;
  std::function<std::vector<Var>()> vars;
  std::string message;
};

TEST(SvhnTest, WrongVariablesAreDataLossNamingFileAndVariable) {
  const std::vector<BadFileCase> cases = {
      {"no_x",
       [] {
         return std::vector<Var>{LabelsVar({1, 2})};
       },
       "no variable 'X' (expected X: uint8 32x32x3xN images); the file has: y"},
      {"no_y", [] { return std::vector<Var>{ImagesVar(0, 2)}; },
       "no variable 'y' (expected y: 2x1 labels in 1..10); the file has: X"},
      {"x_double",
       [] {
         Var x{"X", MAT_C_DOUBLE, MAT_T_DOUBLE, {32, 32, 3, 2}, std::vector<uint8_t>(6144 * 8)};
         return std::vector<Var>{x, LabelsVar({1, 2})};
       },
       "variable 'X' is double 32x32x3x2, expected uint8 32x32x3xN"},
      {"x_28",
       [] {
         Var x{"X", MAT_C_UINT8, MAT_T_UINT8, {28, 28, 3, 2}, std::vector<uint8_t>(28 * 28 * 6)};
         return std::vector<Var>{x, LabelsVar({1, 2})};
       },
       "variable 'X' is uint8 28x28x3x2, expected uint8 32x32x3xN"},
      {"y_count",
       [] {
         return std::vector<Var>{ImagesVar(0, 2), LabelsVar({1, 2, 3})};
       },
       "variable 'y' is double 3x1, expected a numeric 2x1 array"},
      {"y_11",
       [] {
         return std::vector<Var>{ImagesVar(0, 2), LabelsVar({1, 11})};
       },
       "variable 'y': label 1 (y(2) in MATLAB) is 11, expected an integer in 1..10"},
      {"y_0",
       [] {
         return std::vector<Var>{ImagesVar(0, 2), LabelsVar({0, 1})};
       },
       "label 0 (y(1) in MATLAB) is 0, expected an integer in 1..10"},
  };
  for (const BadFileCase& c : cases) {
    const std::string root = TestTempDir("svhn_bad_" + c.name);
    const std::string path = root + "/test_32x32.mat";
    WriteMat(path, c.vars());
    const absl::Status status = LoadSvhn(Context(root, SPLIT_TEST), Options()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << c.name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(path + ": ")) << c.name;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.name;
  }
}

TEST(SvhnTest, NotAMatFileIsDataLoss) {
  const std::string root = TestTempDir("svhn_garbage");
  WriteFileOrFail(root + "/test_32x32.mat", "<html>404 Not Found</html>");
  const absl::Status status = LoadSvhn(Context(root, SPLIT_TEST), Options()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("not a MATLAB .mat file"));
}

TEST(SvhnTest, MissingFileSaysWhereToGetIt) {
  const std::string root = TestTempDir("svhn_missing");
  WriteSvhnFile(root + "/train_32x32.mat", 0, 2);
  const absl::Status status = LoadSvhn(Context(root), Options()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(root + "/extra_32x32.mat is missing"));
  EXPECT_THAT(status.message(),
              HasSubstr("download http://ufldl.stanford.edu/housenumbers/extra_32x32.mat"));
  EXPECT_THAT(status.message(), HasSubstr("use_extra: false"));
}

TEST(SvhnTest, BadOptions) {
  const std::string root = TestTempDir("svhn_options");
  EXPECT_EQ(LoadSvhn(Context(root), Options(-1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadSvhn(Context(root, SPLIT_UNSPECIFIED), Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SvhnDownloadTest, DownloadsOnlyMissingFilesAndChecksMd5) {
  const std::string fixtures = TestTempDir("svhn_dl_fixtures");
  WriteAllSplits(fixtures);
  HttpTestServer server;
  std::map<std::string, std::string> md5s;
  for (const char* name : {"train_32x32.mat", "extra_32x32.mat"}) {
    auto bytes = ReadFile(fixtures + "/" + name);
    ASSERT_TRUE(bytes.ok());
    HttpTestServer::Resource r;
    r.body = *bytes;
    server.Serve(absl::StrCat("/housenumbers/", name), r);
    md5s[name] = Md5Hex(*bytes);
  }
  const std::string root = TestTempDir("svhn_dl_root");
  // The user already has train_32x32.mat: only extra is fetched.
  WriteSvhnFile(root + "/train_32x32.mat", 0, 3);
  SvhnOptions options = Options();
  options.set_download_url(server.Url("/housenumbers/"));
  PACT_ASSERT_OK(DownloadMissingSvhnFiles(root, SvhnFileNames(SPLIT_TRAIN, true), options, md5s));
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].path, "/housenumbers/extra_32x32.mat");
  PACT_ASSERT_OK_AND_ASSIGN(auto dataset, LoadSvhn(Context(root), options));
  EXPECT_EQ(dataset->size(), 7);
}

TEST(SvhnDownloadTest, EnvBaseUrlAndOfficialMd5Mismatch) {
  HttpTestServer server;
  HttpTestServer::Resource r;
  r.body = "not the official test_32x32.mat";
  server.Serve("/mirror/test_32x32.mat", r);
  ScopedEnv env;
  env.Set("PACT_SVHN_URL", server.Url("/mirror"));
  const std::string root = TestTempDir("svhn_dl_md5");
  SvhnOptions options;  // no download_url: the environment's base URL
  const absl::Status status =
      DownloadMissingSvhnFiles(root, SvhnFileNames(SPLIT_TEST, true), options);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("expected eb5a983be6a315427106f1b5f4e8ab2a"));
  EXPECT_THAT(status.message(), HasSubstr("put test_32x32.mat into " + root));
  EXPECT_FALSE(PathExists(root + "/test_32x32.mat"));
  EXPECT_FALSE(PathExists(root + "/test_32x32.mat.part"));
}

}  // namespace
}  // namespace pact::datasets
