// //tools:export and //tools:infer as a user runs them, on a small synthetic-data run: the files
// written, the run folder untouched, infer's last line and its agreement with the trainer, and
// one clear error line for each bad input.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "tests/tool_runner.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

using ::pact::testing::ExpectOneCleanErrorLine;
using ::pact::testing::Listing;
using ::pact::testing::Runfiles;
using Result = ::pact::testing::ToolResult;

Result RunTool(const std::string& tool, const std::vector<std::string>& args,
               const std::string& cwd) {
  return ::pact::testing::RunTool("tools/" + tool, args, cwd);
}

// One small run per test binary (trained once): the Fashion ConvNet on synthetic data.
class DeployCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::string(std::getenv("TEST_TMPDIR")) + "/deploy");
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    for (const auto& [name, quantization] : std::vector<std::pair<std::string, std::string>>{
             {"run",
              "activation { pact { bits: 4 } } weight { dorefa { bits: 4 } } "
              "quantize_first_last: true"},
             {"fp_run", "activation { relu {} } weight { none {} }"}}) {
      const std::string recipe = *dir_ + "/" + name + ".pbtxt";
      std::ofstream(recipe) << absl::StrCat(
          R"pb(
            name: "deploy_cli"
            model { fashion_convnet {} }
            train_data {
              split: SPLIT_TRAIN
              workers: 1
              synthetic { num_examples: 1024 channels: 1 height: 28 width: 28 }
            }
            eval_data {
              split: SPLIT_TEST
              workers: 1
              synthetic { num_examples: 256 channels: 1 height: 28 width: 28 }
            }
            optimizer { sgd { lr: 0.05 momentum: 0.9 } }
            train { epochs: 2 batch_size: 32 eval_batch_size: 256 threads: 1 }
            quantization {)pb",
          quantization, " }\n");
      const Result r =
          RunTool("train", {"--recipe=" + recipe, "--output-dir=" + *dir_ + "/" + name}, *dir_);
      ASSERT_EQ(r.exit_code, 0) << r.output;
      train_output_ += r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string* dir_;
  static std::string train_output_;
};
std::string* DeployCliTest::dir_ = nullptr;
std::string DeployCliTest::train_output_;

TEST_F(DeployCliTest, ExportThenInferAgreesWithTheTrainerAndLeavesTheRunAlone) {
  const std::string run = *dir_ + "/run";
  const auto before = Listing(run);
  const Result exported =
      RunTool("export", {"--run=" + run, "--checkpoint=last", "--out=" + *dir_ + "/exp"}, *dir_);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_THAT(exported.output, HasSubstr("passes onnx::checker and strict shape inference"));
  EXPECT_THAT(exported.output, HasSubstr("conv2                  conv             4-bit dorefa"));
  EXPECT_TRUE(fs::exists(*dir_ + "/exp/model.pim"));
  EXPECT_TRUE(fs::exists(*dir_ + "/exp/model.onnx"));
  EXPECT_EQ(Listing(run), before) << "export may not write into the run";

  const Result inferred =
      RunTool("infer", {"--model=" + *dir_ + "/exp", "--dataset=synthetic"}, *dir_);
  ASSERT_EQ(inferred.exit_code, 0) << inferred.output;
  double top1 = 0, top5 = 0, agreement = 0;
  ASSERT_TRUE(RE2::FullMatch(inferred.last_line,
                             R"(top1 (\d+\.\d\d)% top5 (\d+\.\d\d)% agreement (\d+\.\d\d)%)", &top1,
                             &top5, &agreement))
      << inferred.output;
  EXPECT_GE(agreement, 99.0) << inferred.output;
  EXPECT_LE(top1, top5);
  // The fake-quant reference is the trainer's own last evaluation of the run.
  double reference = 0;
  ASSERT_TRUE(
      RE2::PartialMatch(inferred.output, R"(fake-quant reference top1 (\d+\.\d\d)%)", &reference));
  EXPECT_THAT(train_output_, HasSubstr(absl::StrFormat("top1 %.2f%%", reference)));
  EXPECT_NEAR(top1, reference, 1.0);
  EXPECT_EQ(Listing(run), before) << "infer may not write into the run";

  // The generic kernels give the same answer.
  const Result generic =
      RunTool("infer",
              {"--model=" + *dir_ + "/exp/model.pim", "--dataset=synthetic", "--kernels=generic",
               "--compare-with=" + run, "--checkpoint=last"},
              *dir_);
  ASSERT_EQ(generic.exit_code, 0) << generic.output;
  EXPECT_EQ(generic.last_line, inferred.last_line);
}

// The Python reader README.md shows (numpy only), run as written on an exported model.
TEST_F(DeployCliTest, TheReadmesPythonReaderReadsTheCodes) {
  if (std::system("python3 -c 'import numpy' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with numpy is not installed";
  }
  const std::string out = *dir_ + "/exp_py";
  ASSERT_EQ(RunTool("export", {"--run=" + *dir_ + "/run", "--out=" + out}, *dir_).exit_code, 0);
  std::ifstream readme(Runfiles("README.md"));
  std::string line, snippet;
  bool in_section = false, in_code = false;
  while (std::getline(readme, line)) {
    if (line.rfind("**Reading `model.pim` from Python**", 0) == 0) in_section = true;
    if (in_section && line == "```python") {
      in_code = true;
    } else if (in_code && line == "```") {
      break;
    } else if (in_code) {
      snippet += line + "\n";
    }
  }
  ASSERT_THAT(snippet, HasSubstr("PACTQNT1"));
  const std::string script = *dir_ + "/reader.py";
  std::ofstream(script) << absl::StrReplaceAll(snippet,
                                               {{"exports/r20/model.pim", out + "/model.pim"}});
  const std::string output_file = *dir_ + "/reader.out";
  ASSERT_EQ(std::system(("python3 " + script + " > " + output_file + " 2>&1").c_str()), 0);
  std::ifstream in(output_file);
  const std::string printed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // fashion_convnet quantized first and last: conv1, conv2, fc1, fc2, all 4-bit.
  EXPECT_EQ(printed,
            "conv1 4 bits (16, 5, 5, 1)\nconv2 4 bits (32, 3, 3, 16)\nfc1 4 bits (128, 1568)\n"
            "fc2 4 bits (10, 128)\n");
}

TEST_F(DeployCliTest, BadInputsGiveOneClearLine) {
  const std::string run = *dir_ + "/run";
  Result r = RunTool("export", {"--run=" + *dir_ + "/fp_run", "--out=" + *dir_ + "/x"}, *dir_);
  ExpectOneCleanErrorLine(r, "export");
  EXPECT_THAT(r.output, HasSubstr("quantizes no weight and no activation"));
  r = RunTool("export", {"--run=" + run, "--checkpoint=middle", "--out=" + *dir_ + "/x"}, *dir_);
  ExpectOneCleanErrorLine(r, "export");
  EXPECT_THAT(r.output, HasSubstr("--checkpoint must be best or last, not 'middle'"));
  r = RunTool("export", {"--run=" + run, "--out=" + run + "/export"}, *dir_);
  ExpectOneCleanErrorLine(r, "export");
  EXPECT_THAT(r.output, HasSubstr("is inside the run folder"));
  r = RunTool("export", {"--run=" + *dir_ + "/nope", "--out=" + *dir_ + "/x"}, *dir_);
  ExpectOneCleanErrorLine(r, "export");
  EXPECT_THAT(r.output, HasSubstr("no such run folder"));
  r = RunTool("export", {"--out=" + *dir_ + "/x"}, *dir_);
  ExpectOneCleanErrorLine(r, "export");
  EXPECT_THAT(r.output, HasSubstr("--run=<run folder> and --out=<folder> are required"));
  EXPECT_FALSE(fs::exists(*dir_ + "/x"));

  ASSERT_EQ(RunTool("export", {"--run=" + run, "--out=" + *dir_ + "/exp2"}, *dir_).exit_code, 0);
  r = RunTool("infer", {"--model=" + *dir_ + "/exp2", "--dataset=mnist_digits"}, *dir_);
  ExpectOneCleanErrorLine(r, "infer");
  EXPECT_THAT(r.output, HasSubstr("unknown --dataset 'mnist_digits'; known: "));
  EXPECT_THAT(r.output, HasSubstr("cifar10"));
  r = RunTool("infer", {"--model=" + *dir_ + "/exp2", "--dataset=synthetic", "--kernels=avx9000"},
              *dir_);
  ExpectOneCleanErrorLine(r, "infer");
  EXPECT_THAT(r.output,
              HasSubstr("--kernels=avx9000 is not available here; this CPU runs: generic"));
  // A damaged file is named, with what is wrong.
  const std::string pim = *dir_ + "/exp2/model.pim";
  fs::resize_file(pim, fs::file_size(pim) / 2);
  r = RunTool("infer", {"--model=" + *dir_ + "/exp2", "--dataset=synthetic"}, *dir_);
  ExpectOneCleanErrorLine(r, "infer");
  EXPECT_THAT(r.output, HasSubstr(pim + ": tensor "));
  EXPECT_THAT(r.output, HasSubstr("the file is truncated"));
}

}  // namespace
