// Per-epoch metrics as CSV and JSON lines in the output folder (machine-readable; never scrape
// the log).
#ifndef PACT_TRAIN_METRICS_WRITER_H_
#define PACT_TRAIN_METRICS_WRITER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "pact/train/metrics.h"

namespace pact::train {

class MetricsWriter {
 public:
  // Opens <dir>/metrics.csv and <dir>/metrics.jsonl. Rows of epochs >= `first_epoch` left by an
  // earlier (interrupted) run are dropped, so a resumed run has exactly one row per epoch.
  absl::Status Open(const std::string& dir, const std::vector<std::string>& alpha_names,
                    int first_epoch);
  // The rows kept by Open (earlier epochs of a resumed run), for plotting the whole run.
  const std::vector<EpochMetrics>& earlier() const { return earlier_; }
  absl::Status Write(const EpochMetrics& metrics);

 private:
  std::string csv_path_;
  std::string jsonl_path_;
  std::vector<std::string> alpha_names_;
  std::vector<EpochMetrics> earlier_;
};

}  // namespace pact::train

#endif  // PACT_TRAIN_METRICS_WRITER_H_
