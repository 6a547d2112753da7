#include "pact/train/metrics_writer.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "pact/core/file.h"

namespace pact::train {
namespace {

// Keeps the lines of `path` whose leading epoch field is < first_epoch (and the header).
absl::Status KeepEarlierRows(const std::string& path, int first_epoch, bool has_header,
                             const std::string& header) {
  std::ifstream in(path);
  std::string kept = has_header ? header + "\n" : "";
  if (in) {
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      if (first && has_header) {
        first = false;
        continue;
      }
      first = false;
      std::string field = line.substr(0, line.find_first_of(",}"));
      const size_t colon = field.find(':');
      if (colon != std::string::npos) field = field.substr(colon + 1);
      int epoch = 0;
      if (absl::SimpleAtoi(field, &epoch) && epoch < first_epoch) kept += line + "\n";
    }
  }
  return WriteFileAtomically(path, kept);
}

std::string Number(double value) { return absl::StrFormat("%.6g", value); }

std::string JsonName(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

absl::Status MetricsWriter::Open(const std::string& dir,
                                 const std::vector<std::string>& alpha_names, int first_epoch) {
  csv_path_ = dir + "/metrics.csv";
  jsonl_path_ = dir + "/metrics.jsonl";
  alpha_names_ = alpha_names;
  std::vector<std::string> columns = {
      "epoch",     "lr",        "quantized", "train_loss", "train_top1",
      "eval_loss", "eval_top1", "eval_top5", "seconds",    "train_images_per_s"};
  for (const auto& name : alpha_names) columns.push_back("alpha:" + name);
  const absl::Status csv =
      KeepEarlierRows(csv_path_, first_epoch, true, absl::StrJoin(columns, ","));
  if (!csv.ok()) return csv;
  earlier_.clear();
  std::ifstream kept(csv_path_);
  std::string line;
  std::getline(kept, line);  // header
  while (std::getline(kept, line)) {
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() < 10) continue;
    EpochMetrics m;
    m.epoch = std::atoi(f[0].c_str());
    m.lr = std::atof(f[1].c_str());
    m.quantized = f[2] == "1";
    m.train_loss = std::atof(f[3].c_str());
    m.train_top1 = std::atof(f[4].c_str());
    m.evaluated = !f[5].empty();
    m.eval_loss = std::atof(f[5].c_str());
    m.eval_top1 = std::atof(f[6].c_str());
    m.eval_top5 = std::atof(f[7].c_str());
    m.seconds = std::atof(f[8].c_str());
    m.train_images_per_s = std::atof(f[9].c_str());
    for (size_t i = 10; i < f.size(); ++i) m.alphas.push_back(std::atof(f[i].c_str()));
    earlier_.push_back(m);
  }
  return KeepEarlierRows(jsonl_path_, first_epoch, false, "");
}

absl::Status MetricsWriter::Write(const EpochMetrics& m) {
  std::vector<std::string> row = {absl::StrCat(m.epoch),
                                  Number(m.lr),
                                  m.quantized ? "1" : "0",
                                  Number(m.train_loss),
                                  Number(m.train_top1),
                                  m.evaluated ? Number(m.eval_loss) : "",
                                  m.evaluated ? Number(m.eval_top1) : "",
                                  m.evaluated ? Number(m.eval_top5) : "",
                                  Number(m.seconds),
                                  Number(m.train_images_per_s)};
  for (double alpha : m.alphas) row.push_back(Number(alpha));
  std::ofstream csv(csv_path_, std::ios::app);
  csv << absl::StrJoin(row, ",") << "\n";
  if (!csv) return absl::DataLossError(absl::StrCat(csv_path_, ": write failed"));

  std::string json = absl::StrCat("{\"epoch\":", m.epoch, ",\"lr\":", Number(m.lr),
                                  ",\"quantized\":", m.quantized ? "true" : "false",
                                  ",\"train_loss\":", Number(m.train_loss),
                                  ",\"train_top1\":", Number(m.train_top1));
  if (m.evaluated) {
    absl::StrAppend(&json, ",\"eval_loss\":", Number(m.eval_loss),
                    ",\"eval_top1\":", Number(m.eval_top1), ",\"eval_top5\":", Number(m.eval_top5));
  }
  absl::StrAppend(&json, ",\"seconds\":", Number(m.seconds),
                  ",\"train_images_per_s\":", Number(m.train_images_per_s), ",\"alphas\":{");
  for (size_t i = 0; i < m.alphas.size() && i < alpha_names_.size(); ++i) {
    absl::StrAppend(&json, i == 0 ? "" : ",", JsonName(alpha_names_[i]), ":", Number(m.alphas[i]));
  }
  json += "}}";
  std::ofstream jsonl(jsonl_path_, std::ios::app);
  jsonl << json << "\n";
  if (!jsonl) return absl::DataLossError(absl::StrCat(jsonl_path_, ": write failed"));
  return absl::OkStatus();
}

}  // namespace pact::train
