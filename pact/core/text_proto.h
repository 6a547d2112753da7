// Text-format protos (recipes) with located errors and replace-style overrides.
//
// Parse errors read `path:line:col: message` (1-based). Overrides (`--recipe_overrides`) are
// parsed on their own and merged so that every field they set replaces the recipe's value,
// repeated fields included: plain TextFormat merging would append (milestones [60, 120]
// overridden by [30] would become [60, 120, 30]).
#ifndef PACT_CORE_TEXT_PROTO_H_
#define PACT_CORE_TEXT_PROTO_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace pact {

// Where the fields of a message were written, by field path ("optimizer.sgd.lr",
// "quantization.layer_override[1]"): "<file>:<line>:<col>" (1-based) for text, or a flag name
// ("--lr") for values a command line set. Problems found after parsing (validation, building
// a model) use it to point at the text that caused them.
class FieldLocations {
 public:
  // The location of `field_path`, else of its nearest recorded ancestor
  // ("a.b[2].c", then "a.b[2]", "a.b", "a"); empty when there is none.
  std::string Find(absl::string_view field_path) const;
  // "<location>: " for `field_path`, or "" when unknown (an error-message prefix).
  std::string Prefix(absl::string_view field_path) const;
  void Set(const std::string& field_path, const std::string& location);
  // Takes `overrides`' locations (of text merged with MergeTextOverrides), first dropping the
  // elements of every repeated field it sets, which the merge replaced.
  void Override(const FieldLocations& overrides);
  bool empty() const { return locations_.empty(); }

 private:
  std::map<std::string, std::string> locations_;
};

// Parses `text` into `message` (cleared first). `path` names the source in errors. With
// `locations`, records where each field was written.
absl::Status ParseTextProto(absl::string_view text, absl::string_view path,
                            google::protobuf::Message* message,
                            FieldLocations* locations = nullptr);

// Reads and parses a text-format file. NotFound when the file cannot be read.
absl::Status ReadTextProtoFile(const std::string& path, google::protobuf::Message* message,
                               FieldLocations* locations = nullptr);

// Parses `overrides` (text format for the same message type) and merges it into `message`:
// singular fields and oneof choices set in `overrides` replace those of `message`, repeated
// fields set there replace the whole repeated field, sub-messages merge recursively. A oneof
// switched to another choice drops the old choice's options.
absl::Status MergeTextOverrides(absl::string_view overrides, absl::string_view source,
                                google::protobuf::Message* message,
                                FieldLocations* locations = nullptr);

// Merges an already-parsed `overrides` into `message` with the same replace semantics.
void MergeReplacingRepeated(const google::protobuf::Message& overrides,
                            google::protobuf::Message* message);

// Text format of `message` (for printing and writing the resolved recipe).
std::string ToTextProto(const google::protobuf::Message& message);

}  // namespace pact

#endif  // PACT_CORE_TEXT_PROTO_H_
