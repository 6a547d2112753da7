#include "pact/train/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "pact/train/tensorboard_event.pb.h"

namespace pact::train {
namespace {

std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    table[i] = crc;
  }
  return table;
}

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t Crc32c(absl::string_view data) {
  static const std::array<uint32_t, 256> table = MakeCrc32cTable();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) crc = table[(crc ^ c) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(absl::string_view data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

absl::Status TensorBoardWriter::Open(const std::string& dir, int64_t purge_step) {
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  path_ = absl::StrCat(dir, "/events.out.tfevents.", static_cast<int64_t>(WallTime()), ".", host,
                       ".", getpid());
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) return absl::PermissionDeniedError(absl::StrCat(path_, ": cannot open for writing"));
  tensorboard::Event version;
  version.set_wall_time(WallTime());
  version.set_step(purge_step);
  version.set_file_version("brain.Event:2");
  absl::Status status = WriteRecord(version.SerializeAsString());
  if (!status.ok()) return status;
  tensorboard::Event start;
  start.set_wall_time(WallTime());
  start.set_step(purge_step);
  start.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  return WriteRecord(start.SerializeAsString());
}

absl::Status TensorBoardWriter::AddScalar(absl::string_view tag, double value, int64_t step) {
  tensorboard::Event event;
  event.set_wall_time(WallTime());
  event.set_step(step);
  tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
  v->set_tag(std::string(tag));
  v->set_simple_value(static_cast<float>(value));
  return WriteRecord(event.SerializeAsString());
}

absl::Status TensorBoardWriter::WriteRecord(const std::string& data) {
  char header[12];
  const uint64_t length = data.size();  // little-endian on every platform we build for
  std::memcpy(header, &length, 8);
  const uint32_t length_crc = MaskedCrc32c(absl::string_view(header, 8));
  std::memcpy(header + 8, &length_crc, 4);
  const uint32_t data_crc = MaskedCrc32c(data);
  out_.write(header, sizeof(header));
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(reinterpret_cast<const char*>(&data_crc), 4);
  if (!out_) return absl::DataLossError(absl::StrCat(path_, ": write failed"));
  return absl::OkStatus();
}

absl::Status TensorBoardWriter::Flush() {
  out_.flush();
  if (!out_) return absl::DataLossError(absl::StrCat(path_, ": flush failed"));
  return absl::OkStatus();
}

}  // namespace pact::train
