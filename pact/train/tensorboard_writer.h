// Writes TensorBoard event files (scalars) without TensorFlow: protobuf Event records in
// TFRecord framing (length, masked CRC32C of the length, data, masked CRC32C of the data).
#ifndef PACT_TRAIN_TENSORBOARD_WRITER_H_
#define PACT_TRAIN_TENSORBOARD_WRITER_H_

#include <cstdint>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pact::train {

// CRC-32C (Castagnoli), as TFRecord uses.
uint32_t Crc32c(absl::string_view data);
// TFRecord's masked CRC: rotate right by 15 and add a constant.
uint32_t MaskedCrc32c(absl::string_view data);

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<seconds>.<host>.<pid> (appending, never truncating: a
  // name already taken keeps its records) and writes the file-version record and a session
  // start at `purge_step`, after which TensorBoard drops every step >= purge_step read from
  // earlier files of the folder (SummaryWriter(purge_step=...)): a resumed run shows one
  // curve, not the steps an interrupted run wrote after its last checkpoint.
  absl::Status Open(const std::string& dir, int64_t purge_step);
  absl::Status AddScalar(absl::string_view tag, double value, int64_t step);
  absl::Status Flush();
  const std::string& path() const { return path_; }

 private:
  absl::Status WriteRecord(const std::string& data);

  std::string path_;
  std::ofstream out_;
};

}  // namespace pact::train

#endif  // PACT_TRAIN_TENSORBOARD_WRITER_H_
