#include "pact/train/metrics_writer.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"
#include "pact/train/run_state.pb.h"

namespace pact::train {
namespace {

using google::protobuf::util::MessageDifferencer;

EpochMetrics Row(int epoch, bool evaluated) {
  EpochMetrics m;
  m.set_epoch(epoch);
  m.set_lr(0.1);
  m.set_quantized(true);
  m.set_train_loss(1.25);
  m.set_train_top1(50.5);
  if (evaluated) {
    m.set_eval_loss(1.5);
    m.set_eval_top1(48.0);
    m.set_eval_top5(90.0);
  }
  m.set_seconds(2.0);
  m.set_train_images_per_s(1000.0);
  (*m.mutable_alphas())["act1"] = 3.5;
  (*m.mutable_alphas())["layer1.0.act1"] = 4.25;
  return m;
}

TEST(MetricsJsonTest, OriginalFieldNamesAndRoundTrip) {
  const EpochMetrics m = Row(3, true);
  const std::string json = MetricsJsonLine(m);
  EXPECT_TRUE(absl::StrContains(json, "\"train_loss\":1.25")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"alphas\":{")) << json;
  PACT_ASSERT_OK_AND_ASSIGN(EpochMetrics back, ParseMetricsJsonLine(json));
  EXPECT_TRUE(MessageDifferencer::Equals(back, m));
}

TEST(MetricsJsonTest, NonFiniteNumbersAreNull) {
  EpochMetrics m = Row(0, true);
  m.set_train_loss(std::numeric_limits<double>::quiet_NaN());
  m.set_eval_loss(std::numeric_limits<double>::infinity());
  (*m.mutable_alphas())["act1"] = -std::numeric_limits<double>::infinity();
  const std::string json = MetricsJsonLine(m);
  EXPECT_FALSE(absl::StrContains(json, "NaN")) << json;
  EXPECT_FALSE(absl::StrContains(json, "Infinity")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"train_loss\":null")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"act1\":null")) << json;
  PACT_ASSERT_OK_AND_ASSIGN(EpochMetrics back, ParseMetricsJsonLine(json));
  EXPECT_TRUE(std::isnan(back.train_loss()));
  EXPECT_TRUE(std::isnan(back.alphas().at("act1")));
  EXPECT_EQ(back.train_top1(), 50.5);
}

TEST(MetricsJsonTest, NoStringValuedFields) {
  // MetricsJsonLine's null rewriting relies on this: only map keys are strings.
  const google::protobuf::Descriptor* d = EpochMetrics::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->is_map()) {
      EXPECT_NE(f->message_type()->map_value()->type(),
                google::protobuf::FieldDescriptor::TYPE_STRING);
    } else {
      EXPECT_NE(f->type(), google::protobuf::FieldDescriptor::TYPE_STRING) << f->name();
    }
  }
}

TEST(MetricsCsvTest, ColumnsComeFromTheDescriptor) {
  const std::vector<std::string> alphas = {"layer1.0.act1", "act1"};
  EXPECT_EQ(MetricsCsvHeader(alphas),
            "epoch,lr,quantized,train_loss,train_top1,eval_loss,eval_top1,eval_top5,seconds,"
            "train_images_per_s,alpha:layer1.0.act1,alpha:act1");
  EXPECT_EQ(MetricsCsvRow(Row(2, true), alphas), "2,0.1,1,1.25,50.5,1.5,48,90,2,1000,4.25,3.5");
  EXPECT_EQ(MetricsCsvRow(Row(2, false), alphas), "2,0.1,1,1.25,50.5,,,,2,1000,4.25,3.5");
}

TEST(TensorBoardScalarsTest, TagsFromFieldNames) {
  const auto scalars = TensorBoardScalars(Row(0, true));
  std::vector<std::string> tags;
  for (const auto& [tag, value] : scalars) tags.push_back(tag);
  EXPECT_EQ(tags, (std::vector<std::string>{
                      "train/lr", "train/loss", "train/top1", "eval/loss", "eval/top1", "eval/top5",
                      "train/seconds", "train/images_per_s", "alpha/act1", "alpha/layer1.0.act1"}));
  EXPECT_EQ(TensorBoardScalars(Row(0, false)).size(), 7u);  // no eval scalars
}

TEST(MetricsWriterTest, ResumeKeepsEarlierRowsReadBackThroughTheParser) {
  const std::string dir = testing::TestTempDir("metrics_resume");
  const std::vector<std::string> alphas = {"act1", "layer1.0.act1"};
  {
    MetricsWriter writer;
    PACT_ASSERT_OK(writer.Open(dir, alphas, 0));
    for (int epoch = 0; epoch < 3; ++epoch) PACT_ASSERT_OK(writer.Write(Row(epoch, epoch != 1)));
  }
  // A row cut short by a crash is dropped with a warning.
  PACT_ASSERT_OK(AppendToFile(JoinPath(dir, "metrics.jsonl"), "{\"epoch\":3,\"lr\n"));
  MetricsWriter resumed;
  PACT_ASSERT_OK(resumed.Open(dir, alphas, 2));
  ASSERT_EQ(resumed.earlier().size(), 2u);
  EXPECT_TRUE(MessageDifferencer::Equals(resumed.earlier()[1], Row(1, false)));
  PACT_ASSERT_OK(resumed.Write(Row(2, true)));
  PACT_ASSERT_OK_AND_ASSIGN(std::string csv, ReadFile(JoinPath(dir, "metrics.csv")));
  const std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);  // header + epochs 0, 1, 2
  EXPECT_EQ(lines[0], MetricsCsvHeader(alphas));
  EXPECT_EQ(lines[3], MetricsCsvRow(Row(2, true), alphas));
  PACT_ASSERT_OK_AND_ASSIGN(std::string jsonl, ReadFile(JoinPath(dir, "metrics.jsonl")));
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(jsonl, '\n', absl::SkipEmpty())).size(), 3u);
}

TEST(MetricsWriterTest, ReadsRowsOfTheFormerHandWrittenJson) {
  // The format before run_state.proto; a run started by an older build resumes with its rows.
  const std::string dir = testing::TestTempDir("metrics_old");
  PACT_ASSERT_OK(WriteFileAtomically(
      JoinPath(dir, "metrics.jsonl"),
      "{\"epoch\":0,\"lr\":0.1,\"quantized\":true,\"train_loss\":1.25,\"train_top1\":50.5,"
      "\"eval_loss\":1.5,\"eval_top1\":48,\"eval_top5\":90,\"seconds\":2,"
      "\"train_images_per_s\":1000,\"alphas\":{\"act1\":3.5,\"layer1.0.act1\":4.25}}\n"));
  MetricsWriter writer;
  PACT_ASSERT_OK(writer.Open(dir, {"act1", "layer1.0.act1"}, 1));
  ASSERT_EQ(writer.earlier().size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(writer.earlier()[0], Row(0, true)));
}

}  // namespace
}  // namespace pact::train
