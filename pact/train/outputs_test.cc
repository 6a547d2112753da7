#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
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

TEST(TensorBoardWriterTest, RecordsAreFramedAndParse) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  TensorBoardWriter writer;
  ASSERT_TRUE(writer.Open(dir).ok());
  ASSERT_TRUE(writer.AddScalar("eval/top1", 91.5, 3).ok());
  ASSERT_TRUE(writer.Flush().ok());
  const std::string bytes = ReadAll(writer.path());
  std::vector<tensorboard::Event> events;
  size_t at = 0;
  while (at < bytes.size()) {
    ASSERT_LE(at + 12, bytes.size());
    uint64_t length;
    std::memcpy(&length, bytes.data() + at, 8);
    uint32_t length_crc, data_crc;
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, MaskedCrc32c(absl::string_view(bytes.data() + at, 8)));
    const std::string data = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, MaskedCrc32c(data));
    tensorboard::Event event;
    ASSERT_TRUE(event.ParseFromString(data));
    events.push_back(event);
    at += 12 + length + 4;
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[1].step(), 3);
  EXPECT_EQ(events[1].summary().value(0).tag(), "eval/top1");
  EXPECT_FLOAT_EQ(events[1].summary().value(0).simple_value(), 91.5f);
}

TEST(PlotTest, WritesAPng) {
  std::vector<EpochMetrics> history(3);
  for (int i = 0; i < 3; ++i) {
    history[i].epoch = i;
    history[i].train_loss = 2.0 - i * 0.5;
    history[i].train_top1 = 40 + 10 * i;
    history[i].evaluated = i != 1;
    history[i].eval_loss = 2.1 - i * 0.5;
    history[i].eval_top1 = 38 + 10 * i;
  }
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/curves.png";
  ASSERT_TRUE(WriteCurvesPng(path, history).ok());
  const std::string bytes = ReadAll(path);
  ASSERT_GT(bytes.size(), 1000u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(WriteCurvesPng(path, {}).ok());
}

}  // namespace
}  // namespace pact::train
