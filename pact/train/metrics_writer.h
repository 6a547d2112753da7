// Per-epoch metrics as JSON lines and CSV in the output folder (machine-readable; never scrape
// the log). Both are rendered from EpochMetrics (run_state.proto): JSON by protobuf's printer,
// CSV columns from its descriptor.
#ifndef PACT_TRAIN_METRICS_WRITER_H_
#define PACT_TRAIN_METRICS_WRITER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pact/train/run_state.pb.h"

namespace pact::train {

// One metrics.jsonl line: protobuf's JSON with the original field names; non-finite numbers
// are `null` (JSON has no NaN).
std::string MetricsJsonLine(const EpochMetrics& metrics);
// Parses a MetricsJsonLine (null numbers read back as NaN).
absl::StatusOr<EpochMetrics> ParseMetricsJsonLine(absl::string_view line);

// The CSV header and a row: one column per EpochMetrics field in declaration order, then one
// "alpha:<name>" column per name in `alpha_names`; unset fields are empty, bools 1/0.
std::string MetricsCsvHeader(const std::vector<std::string>& alpha_names);
std::string MetricsCsvRow(const EpochMetrics& metrics, const std::vector<std::string>& alpha_names);

// TensorBoard scalars of an epoch, from the descriptor: each set double field as
// "<group>/<name>" ("train_loss" -> "train/loss", "eval_top1" -> "eval/top1"; a name without a
// "train_"/"eval_" prefix goes under "train/": "lr" -> "train/lr"), then "alpha/<layer>" for
// each alpha, by layer name.
std::vector<std::pair<std::string, double>> TensorBoardScalars(const EpochMetrics& metrics);

class MetricsWriter {
 public:
  // Opens <dir>/metrics.jsonl and <dir>/metrics.csv. Rows of epochs >= `first_epoch` left by an
  // earlier (interrupted) run are dropped, so a resumed run has exactly one row per epoch; both
  // files are rewritten from the kept metrics.jsonl rows.
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
