#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"
#include "pact/train/plot.h"
#include "pact/train/tensorboard_event.pb.h"
#include "pact/train/tensorboard_writer.h"

namespace pact::train {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
}

std::vector<tensorboard::Event> ReadEvents(const std::string& path) {
  const std::string bytes = ReadAll(path);
  std::vector<tensorboard::Event> events;
  size_t at = 0;
  while (at < bytes.size()) {
    if (at + 12 > bytes.size()) {
      ADD_FAILURE() << "a record header is cut short at byte " << at;
      break;
    }
    uint64_t length;
    std::memcpy(&length, bytes.data() + at, 8);
    uint32_t length_crc, data_crc;
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, MaskedCrc32c(absl::string_view(bytes.data() + at, 8)));
    const std::string data = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, MaskedCrc32c(data));
    tensorboard::Event event;
    EXPECT_TRUE(event.ParseFromString(data));
    events.push_back(event);
    at += 12 + length + 4;
  }
  return events;
}

TEST(TensorBoardWriterTest, RecordsAreFramedAndParse) {
  const std::string dir = testing::TestTempDir("tensorboard");
  TensorBoardWriter writer;
  ASSERT_TRUE(writer.Open(dir, 3).ok());
  ASSERT_TRUE(writer.AddScalar("eval/top1", 91.5, 3).ok());
  ASSERT_TRUE(writer.Flush().ok());
  const std::vector<tensorboard::Event> events = ReadEvents(writer.path());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  // The session start that purges steps >= 3 of earlier files (SummaryWriter's purge_step).
  EXPECT_EQ(events[1].step(), 3);
  EXPECT_EQ(events[1].session_log().status(), tensorboard::SessionLog::START);
  EXPECT_EQ(events[2].step(), 3);
  EXPECT_EQ(events[2].summary().value(0).tag(), "eval/top1");
  EXPECT_FLOAT_EQ(events[2].summary().value(0).simple_value(), 91.5f);
}

TEST(TensorBoardWriterTest, FileNameCarriesThePidAndIsNeverTruncated) {
  const std::string dir = testing::TestTempDir("tensorboard_twice");
  TensorBoardWriter first;
  ASSERT_TRUE(first.Open(dir, 1).ok());
  EXPECT_TRUE(absl::EndsWith(first.path(), absl::StrCat(".", getpid()))) << first.path();
  ASSERT_TRUE(first.AddScalar("train/loss", 2.0, 1).ok());
  ASSERT_TRUE(first.Flush().ok());
  // A second writer in the same second and process gets the same name: it appends.
  TensorBoardWriter second;
  ASSERT_TRUE(second.Open(dir, 2).ok());
  ASSERT_TRUE(second.Flush().ok());
  const std::vector<tensorboard::Event> events = ReadEvents(first.path());
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[2].summary().value(0).tag(), "train/loss");
}

TEST(PlotTest, WritesAPng) {
  std::vector<EpochMetrics> history(3);
  for (int i = 0; i < 3; ++i) {
    history[i].set_epoch(i);
    history[i].set_train_loss(2.0 - i * 0.5);
    history[i].set_train_top1(40 + 10 * i);
    if (i != 1) {
      history[i].set_eval_loss(2.1 - i * 0.5);
      history[i].set_eval_top1(38 + 10 * i);
    }
  }
  const std::string path = testing::TestTempDir("plot") + "/curves.png";
  ASSERT_TRUE(WriteCurvesPng(path, history).ok());
  const std::string bytes = ReadAll(path);
  ASSERT_GT(bytes.size(), 1000u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(WriteCurvesPng(path, {}).ok());
}

}  // namespace
}  // namespace pact::train
