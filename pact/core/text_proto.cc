#include "pact/core/text_proto.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace pact {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Collects parser errors as "path:line:col: message" (protobuf reports 0-based positions).
// Kept in this one file: protobuf 22 renames AddError to RecordError.
class LocatedErrors : public google::protobuf::io::ErrorCollector {
 public:
  LocatedErrors(absl::string_view path, absl::string_view text) : path_(path), text_(text) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat(path_, ":", line + 1, ":",
                                   StartOfName(line, column, message) + 1, ": ", message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    errors_.push_back(absl::StrCat(path_, ":", line + 1, ":", column + 1, ": ", message));
  }

  absl::Status status() const {
    if (errors_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(errors_, "\n"));
  }

 private:
  // For an unknown field the parser points just past the name; point at the name itself,
  // where the user has to look.
  int StartOfName(int line, int column, const std::string& message) const {
    static constexpr absl::string_view kMarker = "has no field named \"";
    const size_t at = message.find(kMarker.data(), 0, kMarker.size());
    if (at == std::string::npos) return column;
    const size_t begin = at + kMarker.size();
    const size_t end = message.find('"', begin);
    if (end == std::string::npos) return column;
    const absl::string_view name(message.data() + begin, end - begin);
    std::vector<absl::string_view> lines = absl::StrSplit(text_, '\n');
    if (line < 0 || line >= static_cast<int>(lines.size())) return column;
    const absl::string_view text_line = lines[line];
    const size_t found = text_line.rfind(name, std::min<size_t>(column, text_line.size()));
    return found == absl::string_view::npos ? column : static_cast<int>(found);
  }

  std::string path_;
  absl::string_view text_;
  std::vector<std::string> errors_;
};

// Records where every field of `message` (parsed with `tree`) was written.
void RecordLocations(const Message& message,
                     const google::protobuf::TextFormat::ParseInfoTree& tree,
                     const std::string& prefix, absl::string_view source,
                     FieldLocations* locations) {
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const int index = field->is_repeated() ? i : -1;
      const std::string path = absl::StrCat(prefix, prefix.empty() ? "" : ".", field->name(),
                                            field->is_repeated() ? absl::StrCat("[", i, "]") : "");
      const google::protobuf::TextFormat::ParseLocation at = tree.GetLocation(field, index);
      if (at.line >= 0) {
        locations->Set(path, absl::StrCat(source, ":", at.line + 1, ":", at.column + 1));
      }
      if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
      const google::protobuf::TextFormat::ParseInfoTree* nested =
          tree.GetTreeForNested(field, index);
      if (nested == nullptr) continue;
      RecordLocations(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                           : reflection->GetMessage(message, field),
                      *nested, path, source, locations);
    }
  }
}

}  // namespace

std::string FieldLocations::Find(absl::string_view field_path) const {
  std::string path(field_path);
  while (!path.empty()) {
    auto it = locations_.find(path);
    if (it != locations_.end()) return it->second;
    const size_t cut = path.find_last_of(".[");
    if (cut == std::string::npos) break;
    path.resize(cut);
  }
  return "";
}

std::string FieldLocations::Prefix(absl::string_view field_path) const {
  const std::string location = Find(field_path);
  return location.empty() ? "" : absl::StrCat(location, ": ");
}

void FieldLocations::Set(const std::string& field_path, const std::string& location) {
  locations_[field_path] = location;
}

void FieldLocations::Override(const FieldLocations& overrides) {
  for (const auto& [path, location] : overrides.locations_) {
    // "a.b[0]" (an element the overrides set): the merge replaced all of "a.b".
    if (path.empty() || path.back() != ']') continue;
    const std::string elements = path.substr(0, path.rfind('[') + 1);
    for (auto it = locations_.lower_bound(elements);
         it != locations_.end() && it->first.compare(0, elements.size(), elements) == 0;) {
      it = locations_.erase(it);
    }
  }
  for (const auto& [path, location] : overrides.locations_) locations_[path] = location;
}

absl::Status ParseTextProto(absl::string_view text, absl::string_view path, Message* message,
                            FieldLocations* locations) {
  message->Clear();
  const std::string owned(text);
  LocatedErrors errors(path, owned);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  google::protobuf::TextFormat::ParseInfoTree tree;
  if (locations != nullptr) parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(owned, message)) {
    absl::Status status = errors.status();
    if (status.ok()) status = absl::InvalidArgumentError(absl::StrCat(path, ": cannot parse"));
    return status;
  }
  if (locations != nullptr) RecordLocations(*message, tree, "", path, locations);
  return absl::OkStatus();
}

absl::Status ReadTextProtoFile(const std::string& path, Message* message,
                               FieldLocations* locations) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ParseTextProto(text.str(), path, message, locations);
}

void MergeReplacingRepeated(const Message& overrides, Message* message) {
  const Reflection* from = overrides.GetReflection();
  const Reflection* to = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  from->ListFields(overrides, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated()) {
      to->ClearField(message, field);
      for (int i = 0; i < from->FieldSize(overrides, field); ++i) {
        switch (field->cpp_type()) {
#define PACT_COPY_REPEATED_(CPPTYPE, Name)                                       \
  case FieldDescriptor::CPPTYPE:                                                 \
    to->Add##Name(message, field, from->GetRepeated##Name(overrides, field, i)); \
    break;
          PACT_COPY_REPEATED_(CPPTYPE_INT32, Int32)
          PACT_COPY_REPEATED_(CPPTYPE_INT64, Int64)
          PACT_COPY_REPEATED_(CPPTYPE_UINT32, UInt32)
          PACT_COPY_REPEATED_(CPPTYPE_UINT64, UInt64)
          PACT_COPY_REPEATED_(CPPTYPE_FLOAT, Float)
          PACT_COPY_REPEATED_(CPPTYPE_DOUBLE, Double)
          PACT_COPY_REPEATED_(CPPTYPE_BOOL, Bool)
          PACT_COPY_REPEATED_(CPPTYPE_STRING, String)
          PACT_COPY_REPEATED_(CPPTYPE_ENUM, Enum)
#undef PACT_COPY_REPEATED_
          case FieldDescriptor::CPPTYPE_MESSAGE:
            to->AddMessage(message, field)->CopyFrom(from->GetRepeatedMessage(overrides, field, i));
            break;
        }
      }
      continue;
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      // Switching a oneof to another choice clears the old one (MutableMessage does that);
      // staying on the same choice merges its options field by field.
      MergeReplacingRepeated(from->GetMessage(overrides, field),
                             to->MutableMessage(message, field));
      continue;
    }
    switch (field->cpp_type()) {
#define PACT_COPY_SINGULAR_(CPPTYPE, Name)                            \
  case FieldDescriptor::CPPTYPE:                                      \
    to->Set##Name(message, field, from->Get##Name(overrides, field)); \
    break;
      PACT_COPY_SINGULAR_(CPPTYPE_INT32, Int32)
      PACT_COPY_SINGULAR_(CPPTYPE_INT64, Int64)
      PACT_COPY_SINGULAR_(CPPTYPE_UINT32, UInt32)
      PACT_COPY_SINGULAR_(CPPTYPE_UINT64, UInt64)
      PACT_COPY_SINGULAR_(CPPTYPE_FLOAT, Float)
      PACT_COPY_SINGULAR_(CPPTYPE_DOUBLE, Double)
      PACT_COPY_SINGULAR_(CPPTYPE_BOOL, Bool)
      PACT_COPY_SINGULAR_(CPPTYPE_STRING, String)
      PACT_COPY_SINGULAR_(CPPTYPE_ENUM, Enum)
#undef PACT_COPY_SINGULAR_
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;  // handled above
    }
  }
}

absl::Status MergeTextOverrides(absl::string_view overrides, absl::string_view source,
                                Message* message, FieldLocations* locations) {
  std::unique_ptr<Message> parsed(message->New());
  FieldLocations parsed_locations;
  const absl::Status status = ParseTextProto(overrides, source, parsed.get(),
                                             locations == nullptr ? nullptr : &parsed_locations);
  if (!status.ok()) return status;
  MergeReplacingRepeated(*parsed, message);
  if (locations != nullptr) locations->Override(parsed_locations);
  return absl::OkStatus();
}

std::string ToTextProto(const Message& message) {
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.PrintToString(message, &text);
  return text;
}

}  // namespace pact
