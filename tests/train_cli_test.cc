// //tools:train as a user runs it: the seed's flags (dashes or underscores), one-line errors
// with a non-zero exit and no stack trace, SIGTERM handling and resume, and the Python-readable
// state_dict.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tool_runner.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

using ::pact::testing::Listing;
using ::pact::testing::Runfiles;
using Result = ::pact::testing::ToolResult;

// In a forked child: runs the trainer with `args` in `cwd`; never returns.
[[noreturn]] void ExecTrain(const std::vector<std::string>& args, const std::string& cwd) {
  if (chdir(cwd.c_str()) != 0) _exit(127);
  std::vector<std::string> argv_strings = {Runfiles("tools/train")};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

// Runs the trainer with `args` in `cwd`; `signal_on` may send a signal once a marker appears.
Result RunTrain(const std::vector<std::string>& args, const std::string& cwd,
                const std::string& signal_on = "", int signal_number = SIGTERM) {
  return ::pact::testing::RunTool("tools/train", args, cwd, signal_on, signal_number);
}

std::string Tmp(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A recipe on synthetic data (tests only) that trains for a while.
std::string WriteSyntheticRecipe(const std::string& dir, int epochs) {
  const std::string path = dir + "/synthetic.pbtxt";
  std::ofstream(path) << absl::StrCat(
      R"pb(
        name: "synthetic_cli"
        model { fashion_convnet {} }
        train_data {
          split: SPLIT_TRAIN
          workers: 1
          synthetic { num_examples: 2048 channels: 1 height: 28 width: 28 }
        }
        eval_data {
          split: SPLIT_TEST
          workers: 1
          synthetic { num_examples: 128 channels: 1 height: 28 width: 28 }
        }
        optimizer { sgd { lr: 0.05 momentum: 0.9 weight_decay: 1e-4 } }
        quantization {
          activation { pact { bits: 4 } }
          weight { dorefa { bits: 4 } }
        }
        train { batch_size: 32 eval_batch_size: 128 threads: 1 log_every_steps: 1 epochs:)pb",
      epochs, " }\n");
  return path;
}

void ExpectOneCleanErrorLine(const Result& r) {
  ::pact::testing::ExpectOneCleanErrorLine(r, "train");
}

TEST(TrainCliTest, DryRunWithTheSeedsFlagsInDashesOrUnderscores) {
  const std::string cwd = Runfiles("");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--dataset", "fashion_mnist", "--batch-size", "64", "--act-bits=3",
                                 "--w-bits", "2", "--quantize-first-last",
                                 "--quant-warmup-epochs=1", "--lambda-alpha", "0.001", "--dry_run"},
        std::vector<std::string>{"--dataset=fashion_mnist", "--batch_size=64", "--act_bits=3",
                                 "--w_bits=2", "--quantize_first_last", "--quant_warmup_epochs=1",
                                 "--lambda_alpha=0.001", "--dry-run"}}) {
    const Result r = RunTrain(args, cwd);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("batch_size: 64"));
    EXPECT_THAT(r.output, HasSubstr("bits: 3"));
    EXPECT_THAT(r.output, HasSubstr("bits: 2"));
    EXPECT_THAT(r.output, HasSubstr("quantize_first_last: true"));
    EXPECT_THAT(r.output, HasSubstr("lambda_alpha: 0.001"));
    EXPECT_THAT(r.output, HasSubstr("quant_warmup_epochs: 1"));
    EXPECT_THAT(r.output, HasSubstr("quantizer parameters (PACT alphas, LSQ steps)"));
  }
}

TEST(TrainCliTest, HelpListsThisBinarysFlagsOnly) {
  for (const char* flag : {"-h", "--help"}) {
    const Result r = RunTrain({flag}, Runfiles(""));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("-recipe"));
    EXPECT_THAT(r.output, HasSubstr("-lr_milestones"));
    EXPECT_THAT(r.output, Not(HasSubstr("caffe2")));
  }
}

TEST(TrainCliTest, TorchvisionStyleFlagsFoldIntoTheRecipe) {
  const Result r =
      RunTrain({"--dataset", "cifar10", "-b", "64", "-j", "3", "--lr", "0.05", "--wd", "1e-3",
                "--momentum", "0.8", "--lr-milestones", "5,7", "--print-freq", "7", "--dry_run"},
               Runfiles(""));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected :
       {"batch_size: 64", "workers: 3", "lr: 0.05", "weight_decay: 0.001", "momentum: 0.8",
        "milestones: 5", "milestones: 7", "log_every_steps: 7"}) {
    EXPECT_THAT(r.output, HasSubstr(expected));
  }
}

TEST(TrainCliTest, BadValuesGiveOneClearLine) {
  const std::string cwd = Runfiles("");
  Result r = RunTrain({"--dataset", "fashion_mnist", "--act-bits", "99", "--dry_run"}, cwd);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("quantization.activation.pact.bits: must be in [0, 16]"));

  r = RunTrain({"--dataset", "mnist", "--dry_run"}, cwd);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("--dataset mnist: unknown dataset; choose one of: cifar10, "
                                  "fashion_mnist, imagenet, svhn"));

  r = RunTrain({"--dataset", "fashion_mnist", "--recipe_overrides=optimizer { adam { lr: -1 } }",
                "--dry_run"},
               cwd);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("optimizer.adam.lr: must be > 0, got -1"));

  r = RunTrain({"--recipe=recipes/fashion_mnist_quickstart.pbtxt", "--model", "lenet", "--dry_run"},
               cwd);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("--model: unknown model 'lenet'; known: [alexnet_bn"));

  r = RunTrain({"--recipe=recipes/fashion_mnist_quickstart.pbtxt", "--device", "tpu"}, cwd);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("--device tpu: must be cpu or cuda"));
}

// The dry-run summary's row for layer `name`, split into its columns.
std::vector<std::string> SummaryRow(const std::string& output, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (!cells.empty() && cells[0] == name) return cells;
  }
  return {};
}

TEST(TrainCliTest, FirstLastBitsSetsTheFirstAndLastLayersAsTable2sFlRow) {
  const Result r =
      RunTrain({"--dataset", "cifar10", "--first-last-bits", "8", "--dry_run"}, Runfiles(""));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("layer_override {\n    position: FIRST\n    position: LAST\n"
                                  "    activation_bits: 8\n    weight_bits: 8\n  }"));
  // name, kind, shape, params, weight bits | activation bits
  EXPECT_THAT(SummaryRow(r.output, "conv1"),
              ::testing::ElementsAre("conv1", "conv", "16x32x32", "432", "8"));
  EXPECT_THAT(SummaryRow(r.output, "fc"), ::testing::ElementsAre("fc", "linear", "10", "650", "8"));
  EXPECT_THAT(SummaryRow(r.output, "act1"),
              ::testing::ElementsAre("act1", "pact", "16x32x32", "1", "8"));
  EXPECT_THAT(SummaryRow(r.output, "layer3.2.act2"),
              ::testing::ElementsAre("layer3.2.act2", "pact", "64x8x8", "1", "8"));
  EXPECT_THAT(SummaryRow(r.output, "layer2.0.conv1"),
              ::testing::ElementsAre("layer2.0.conv1", "conv", "32x16x16", "4,608", "4"));
  EXPECT_THAT(SummaryRow(r.output, "layer3.2.act1"),
              ::testing::ElementsAre("layer3.2.act1", "pact", "64x8x8", "1", "4"));
  // 0 keeps them at full precision (the default); the shipped recipe is the same as 8.
  const Result fp =
      RunTrain({"--dataset", "cifar10", "--first-last-bits", "0", "--dry_run"}, Runfiles(""));
  ASSERT_EQ(fp.exit_code, 0) << fp.output;
  EXPECT_THAT(SummaryRow(fp.output, "conv1"),
              ::testing::ElementsAre("conv1", "conv", "16x32x32", "432", "fp"));
  EXPECT_THAT(SummaryRow(fp.output, "act1"),
              ::testing::ElementsAre("act1", "pact", "16x32x32", "1", "clip"));
  const Result recipe =
      RunTrain({"--recipe=recipes/cifar10_resnet20_fl8.pbtxt", "--dry_run"}, Runfiles(""));
  ASSERT_EQ(recipe.exit_code, 0) << recipe.output;
  EXPECT_EQ(SummaryRow(recipe.output, "fc"), SummaryRow(r.output, "fc"));
  EXPECT_EQ(SummaryRow(recipe.output, "layer3.2.act2"), SummaryRow(r.output, "layer3.2.act2"));
}

TEST(TrainCliTest, ABadPerLayerRuleIsReportedWhereItWasWritten) {
  const std::string dir = Tmp("rules");
  // Line 9 holds the first rule, line 10 the second.
  std::ofstream(dir + "/rules.pbtxt")
      << "name: \"rules\"\n"
         "model { resnet20 {} }\n"
         "train_data { split: SPLIT_TRAIN cifar10 {} }\n"
         "eval_data { split: SPLIT_TEST cifar10 {} }\n"
         "optimizer { sgd {} }\n"
         "quantization {\n"
         "  activation { pact {} }\n"
         "  weight { dorefa {} }\n"
         "  layer_override { name: \"layer4[.].*\" weight_bits: 8 }\n"
         "  layer_override { name: \"fc(\" weight_bits: 8 }\n"
         "}\n";
  Result r = RunTrain({"--recipe=rules.pbtxt", "--dry_run"}, dir);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("rules.pbtxt:10:20: quantization.layer_override[1].name: must "
                                  "be a valid RE2 regular expression"));
  r = RunTrain({"--recipe=rules.pbtxt", "--dry_run",
                "--recipe_overrides=quantization { layer_override { name: 'layer4.*' "
                "activation_bits: 3 } }"},
               dir);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("--recipe_overrides:1:16: quantization.layer_override[0]: "
                                  "matches no activation of the model"));
  EXPECT_THAT(r.output, HasSubstr("its layers are: conv1 (conv, first), act1 (activation, first), "
                                  "layer1.0.conv1 (conv)"));
  r = RunTrain({"--dataset", "cifar10", "--first-last-bits", "20", "--dry_run"}, Runfiles(""));
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("--first-last-bits: quantization.layer_override[0]."
                                  "activation_bits: must be in [0, 16]"));
}

TEST(TrainCliTest, RecipeTypoIsReportedWithFileLineAndColumn) {
  const std::string dir = Tmp("typo");
  std::ofstream(dir + "/typo.pbtxt") << "name: \"typo\"\ntrain {\n  epochs: 1\n  bach_size: 3\n}\n";
  const Result r = RunTrain({"--recipe=typo.pbtxt", "--dry_run"}, dir);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("typo.pbtxt:4:3: Message type \"pact.TrainSpec\" has no field "
                                  "named \"bach_size\"."));
}

TEST(TrainCliTest, MissingDataNamesWhereToPutIt) {
  const std::string dir = Tmp("nodata");
  const Result r = RunTrain({"--recipe=" + Runfiles("recipes/fashion_mnist_quickstart.pbtxt"),
                             "--data-root", dir + "/fashion", "--output-dir", dir + "/out"},
                            dir);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr(dir + "/fashion"));
}

// Names and sizes of the files under `dir`.
TEST(TrainCliTest, AFolderHoldingARunIsNeverClobbered) {
  const std::string dir = Tmp("clobber");
  const std::string recipe = WriteSyntheticRecipe(dir, 1);
  const Result first = RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/run"}, dir);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto before = Listing(dir + "/run");
  const Result again = RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/run"}, dir);
  ExpectOneCleanErrorLine(again);
  EXPECT_THAT(again.output, HasSubstr("--resume=" + dir + "/run"));
  EXPECT_THAT(again.output, HasSubstr("--overwrite"));
  EXPECT_EQ(Listing(dir + "/run"), before) << "not even a log file may be added";

  const Result overwritten =
      RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/run", "--overwrite"}, dir);
  EXPECT_EQ(overwritten.exit_code, 0) << overwritten.output;
  int event_files = 0;
  for (const auto& entry : fs::directory_iterator(dir + "/run")) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) ++event_files;
  }
  EXPECT_EQ(event_files, 2) << "each invocation writes its own event file";
}

// The run's train.log.* file under `dir`, concatenated.
std::string RunLogs(const std::string& dir) {
  std::string text;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("train.log.", 0) != 0) continue;
    std::ifstream log(entry.path());
    text.append(std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>());
  }
  return text;
}

TEST(TrainCliTest, EvaluateRepeatsTheRunsEvaluationOfItsCheckpointAndWritesNothing) {
  const std::string dir = Tmp("evaluate");
  const std::string recipe = WriteSyntheticRecipe(dir, 1);
  const Result trained = RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/run"}, dir);
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const auto before = Listing(dir + "/run");
  for (const char* flag : {"--evaluate", "--test-only"}) {
    const Result r = RunTrain({"--recipe=" + recipe, "--resume=" + dir + "/run", flag}, dir);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // The last line: "eval loss <x> top1 <y>% top5 <z>%", as the training run's epoch line.
    const std::vector<std::string> lines = absl::StrSplit(r.output, '\n', absl::SkipEmpty());
    ASSERT_FALSE(lines.empty());
    EXPECT_THAT(lines.back(), ::testing::StartsWith("eval loss "));
    EXPECT_THAT(trained.output, HasSubstr("| " + lines.back() + " |")) << r.output;
    EXPECT_THAT(r.output, HasSubstr("eval 1/1 loss"));  // the progress line
    EXPECT_EQ(Listing(dir + "/run"), before) << "evaluation may not write into the run";
  }
  // From a state dict (--init-from) too; a second source or none is an error.
  const Result from_state_dict =
      RunTrain({"--recipe=" + recipe, "--init-from=" + dir + "/run/checkpoints/last_state_dict.pt",
                "--evaluate"},
               dir);
  ASSERT_EQ(from_state_dict.exit_code, 0) << from_state_dict.output;
  EXPECT_THAT(trained.output,
              HasSubstr("| " +
                        std::vector<std::string>(
                            absl::StrSplit(from_state_dict.output, '\n', absl::SkipEmpty()))
                            .back() +
                        " |"));
  Result r = RunTrain({"--recipe=" + recipe, "--evaluate"}, dir);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("--evaluate needs the model to evaluate: --resume="));
  r = RunTrain({"--recipe=" + recipe, "--init-from=" + dir + "/run", "--resume=" + dir + "/run",
                "--output-dir=" + dir + "/run"},
               dir);
  ExpectOneCleanErrorLine(r);
  EXPECT_THAT(r.output, HasSubstr("give one of them"));
}

TEST(TrainCliTest, InitFromStartsANewRunFromAnotherRunsWeights) {
  const std::string dir = Tmp("init_from");
  const std::string recipe = WriteSyntheticRecipe(dir, 1);
  const Result source = RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/fp",
                                  "--recipe_overrides=quantization { activation { relu {} } "
                                  "weight { none {} } }"},
                                 dir);
  ASSERT_EQ(source.exit_code, 0) << source.output;
  const Result tuned = RunTrain(
      {"--recipe=" + recipe, "--output-dir=" + dir + "/w4a4", "--init-from=" + dir + "/fp"}, dir);
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  EXPECT_THAT(tuned.output,
              HasSubstr("initialized the model from " + dir + "/fp/checkpoints/last.pt: loaded"));
  EXPECT_THAT(tuned.output, HasSubstr("3 missing, 0 unexpected; epoch 0 with a fresh optimizer"));
  EXPECT_THAT(tuned.output, HasSubstr("act1.alpha, act2.alpha, act3.alpha"));
  EXPECT_THAT(tuned.output, HasSubstr("epoch 1/1 step 1/64"));
  const Result bad =
      RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/bad", "--init-from=" + dir + "/fp",
                "--recipe_overrides=model { fashion_convnet { hidden: 32 } }"},
               dir);
  ExpectOneCleanErrorLine(bad);
  EXPECT_THAT(bad.output, HasSubstr("--init-from: " + dir +
                                    "/fp/checkpoints/last.pt: 6 tensors "
                                    "of another shape"));
  EXPECT_THAT(bad.output, HasSubstr("fc1.weight is [128, 1568] there but [32, 1568]"));
}

// As RunTrain, with stderr on a pseudo-terminal (stdout still a pipe, read after exit).
Result RunTrainOnTerminal(const std::vector<std::string>& args, const std::string& cwd) {
  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  EXPECT_GE(master, 0);
  EXPECT_EQ(grantpt(master), 0);
  EXPECT_EQ(unlockpt(master), 0);
  const std::string slave_name = ptsname(master);
  const pid_t pid = fork();
  if (pid == 0) {
    const int slave = open(slave_name.c_str(), O_RDWR);
    if (slave < 0) _exit(127);
    dup2(slave, STDERR_FILENO);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    ExecTrain(args, cwd);
  }
  Result result;
  char buffer[4096];
  for (ssize_t n; (n = read(master, buffer, sizeof(buffer))) > 0;) result.output.append(buffer, n);
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

TEST(TrainCliTest, OnATerminalTheBarIsDrawnAndTheStepLinesStillReachTheLogFile) {
  const std::string dir = Tmp("terminal");
  const std::string recipe = WriteSyntheticRecipe(dir, 1);
  const Result r = RunTrainOnTerminal(
      {"--recipe=" + recipe, "--output-dir=" + dir + "/run", "--print-freq=16"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\r["));  // the bar, redrawn in place
  const std::string log = RunLogs(dir + "/run");
  for (int step : {16, 32, 48, 64}) {
    EXPECT_THAT(log, HasSubstr(absl::StrCat("progress] epoch 1/1 step ", step, "/64 loss")));
  }
  EXPECT_THAT(log, Not(HasSubstr("step 15/64"))) << "every --print-freq steps only";
  EXPECT_THAT(log, Not(HasSubstr("\r")));
}

TEST(TrainCliTest, SigtermCheckpointsAndResumeFinishes) {
  const std::string dir = Tmp("sigterm");
  const std::string recipe = WriteSyntheticRecipe(dir, 50);
  const Result stopped =
      RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/run"}, dir, "step 3/");
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_THAT(stopped.output, HasSubstr("--resume=" + dir + "/run"));
  ASSERT_TRUE(fs::exists(dir + "/run/checkpoints/last.pt"));
  bool has_log = false;
  for (const auto& entry : fs::directory_iterator(dir + "/run")) {
    if (entry.path().filename().string().rfind("train.log.", 0) == 0) {
      std::ifstream log(entry.path());
      const std::string text((std::istreambuf_iterator<char>(log)),
                             std::istreambuf_iterator<char>());
      has_log = text.find("stopped at epoch") != std::string::npos;
    }
  }
  EXPECT_TRUE(has_log) << "the output folder keeps the run's log";

  const Result resumed = RunTrain({"--recipe=" + recipe, "--output-dir=" + dir + "/run",
                                   "--resume=" + dir + "/run", "--epochs=1"},
                                  dir);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resumed from"));
  std::ifstream csv(dir + "/run/metrics.csv");
  std::string line;
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 2);  // header + epoch 0

  // The state_dict is what Python's torch.load reads (skipped without python3-torch).
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-torch is not installed";
  }
  const std::string script = dir + "/load.py";
  std::ofstream(script)
      << "import sys, torch\n"
         "d = torch.load(sys.argv[1])\n"
         "assert isinstance(d, dict), type(d)\n"
         "assert d['conv1.weight'].shape == (16, 1, 5, 5), d['conv1.weight'].shape\n"
         "assert 'act1.alpha' in d and 'bn1.running_mean' in d, sorted(d)\n"
         "print('state_dict ok', len(d))\n";
  const std::string command =
      absl::StrCat("/usr/bin/python3 ", script, " ", dir, "/run/checkpoints/last_state_dict.pt > ",
                   dir, "/py.txt 2>&1");
  const int rc = std::system(command.c_str());
  std::ifstream py(dir + "/py.txt");
  const std::string py_output((std::istreambuf_iterator<char>(py)),
                              std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << py_output;
  EXPECT_THAT(py_output, HasSubstr("state_dict ok"));
}

}  // namespace
