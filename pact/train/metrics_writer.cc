#include "pact/train/metrics_writer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"

namespace pact::train {
namespace {

using google::protobuf::FieldDescriptor;

// Protobuf's JSON spells non-finite doubles as the strings "NaN", "Infinity", "-Infinity".
// EpochMetrics has no string-valued field (metrics_writer_test checks), so these tokens can
// only be such numbers.
constexpr std::pair<absl::string_view, absl::string_view> kNonFinite[] = {
    {":\"NaN\"", ":null"}, {":\"Infinity\"", ":null"}, {":\"-Infinity\"", ":null"}};

std::string Number(double value) { return absl::StrFormat("%.6g", value); }

// The scalar fields, in declaration order (the map of alphas is handled by name).
std::vector<const FieldDescriptor*> ScalarFields() {
  std::vector<const FieldDescriptor*> fields;
  const google::protobuf::Descriptor* d = EpochMetrics::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    if (!d->field(i)->is_repeated()) fields.push_back(d->field(i));
  }
  return fields;
}

std::string CsvCell(const EpochMetrics& m, const FieldDescriptor* f) {
  const google::protobuf::Reflection* r = m.GetReflection();
  if (!r->HasField(m, f)) return "";
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(m, f) ? "1" : "0";
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return Number(r->GetDouble(m, f));
    default:
      LOG(FATAL) << "EpochMetrics." << f->name() << ": no CSV rendering for its type";
  }
  return "";
}

// Reads the metrics.jsonl rows of epochs < first_epoch. A line that does not parse (a row cut
// short by a crash) is dropped with a warning naming it.
std::vector<EpochMetrics> ReadEarlierRows(const std::string& path, int first_epoch) {
  std::vector<EpochMetrics> rows;
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return rows;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    if (line.empty()) continue;
    absl::StatusOr<EpochMetrics> m = ParseMetricsJsonLine(line);
    if (!m.ok()) {
      LOG(WARNING) << path << ":" << line_number << ": dropped an unreadable row ("
                   << m.status().message() << ")";
      continue;
    }
    if (m->epoch() < first_epoch) rows.push_back(*std::move(m));
  }
  return rows;
}

}  // namespace

std::string MetricsJsonLine(const EpochMetrics& metrics) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a message we built cannot fail.
  CHECK(google::protobuf::util::MessageToJsonString(metrics, &json, options).ok());
  for (const auto& [from, to] : kNonFinite) absl::StrReplaceAll({{from, to}}, &json);
  return json;
}

absl::StatusOr<EpochMetrics> ParseMetricsJsonLine(absl::string_view line) {
  // null would clear a singular number (and is refused as a map value): read it as NaN.
  const std::string json = absl::StrReplaceAll(line, {{":null", ":\"NaN\""}});
  EpochMetrics metrics;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &metrics);
  if (!status.ok()) return absl::DataLossError(status.ToString());
  return metrics;
}

std::string MetricsCsvHeader(const std::vector<std::string>& alpha_names) {
  std::vector<std::string> columns;
  for (const FieldDescriptor* f : ScalarFields()) columns.push_back(f->name());
  for (const std::string& name : alpha_names) columns.push_back("alpha:" + name);
  return absl::StrJoin(columns, ",");
}

std::string MetricsCsvRow(const EpochMetrics& m, const std::vector<std::string>& alpha_names) {
  std::vector<std::string> cells;
  for (const FieldDescriptor* f : ScalarFields()) cells.push_back(CsvCell(m, f));
  for (const std::string& name : alpha_names) {
    auto it = m.alphas().find(name);
    cells.push_back(it == m.alphas().end() ? "" : Number(it->second));
  }
  return absl::StrJoin(cells, ",");
}

std::vector<std::pair<std::string, double>> TensorBoardScalars(const EpochMetrics& m) {
  std::vector<std::pair<std::string, double>> scalars;
  const google::protobuf::Reflection* r = m.GetReflection();
  for (const FieldDescriptor* f : ScalarFields()) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_DOUBLE || !r->HasField(m, f)) continue;
    std::string tag = f->name();
    if (absl::StartsWith(tag, "train_") || absl::StartsWith(tag, "eval_")) {
      tag[tag.find('_')] = '/';
    } else {
      tag = "train/" + tag;
    }
    scalars.emplace_back(std::move(tag), r->GetDouble(m, f));
  }
  std::vector<std::pair<std::string, double>> alphas;
  for (const auto& [name, value] : m.alphas()) alphas.emplace_back(name, value);
  std::sort(alphas.begin(), alphas.end());
  for (const auto& [name, value] : alphas) scalars.emplace_back("alpha/" + name, value);
  return scalars;
}

absl::Status MetricsWriter::Open(const std::string& dir,
                                 const std::vector<std::string>& alpha_names, int first_epoch) {
  csv_path_ = JoinPath(dir, "metrics.csv");
  jsonl_path_ = JoinPath(dir, "metrics.jsonl");
  alpha_names_ = alpha_names;
  earlier_ = ReadEarlierRows(jsonl_path_, first_epoch);
  std::string jsonl;
  std::string csv = MetricsCsvHeader(alpha_names_) + "\n";
  for (const EpochMetrics& m : earlier_) {
    absl::StrAppend(&jsonl, MetricsJsonLine(m), "\n");
    absl::StrAppend(&csv, MetricsCsvRow(m, alpha_names_), "\n");
  }
  PACT_RETURN_IF_ERROR(WriteFileAtomically(jsonl_path_, jsonl));
  return WriteFileAtomically(csv_path_, csv);
}

absl::Status MetricsWriter::Write(const EpochMetrics& m) {
  PACT_RETURN_IF_ERROR(AppendToFile(jsonl_path_, MetricsJsonLine(m) + "\n"));
  return AppendToFile(csv_path_, MetricsCsvRow(m, alpha_names_) + "\n");
}

}  // namespace pact::train
