// Collects every problem of a configuration at once, each as
// `<field path>: <what is required>, got <value>`, so a user can fix a recipe in one pass.
//
// A Violations has a field-path prefix; Scoped() gives one with a longer prefix that appends to
// the same list, so a component's validator names only its own fields ("lr") and the caller
// decides where they sit ("optimizer.sgd.lr").
#ifndef PACT_CORE_VIOLATIONS_H_
#define PACT_CORE_VIOLATIONS_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace pact {

class Violations {
 public:
  explicit Violations(absl::string_view prefix = "")
      : prefix_(prefix), list_(std::make_shared<List>()) {}

  // Adds "<path>: <requirement>, got <value>" unless `ok`; `field` is relative to the prefix.
  template <typename T>
  void Check(bool ok, absl::string_view field, absl::string_view requirement, const T& value) {
    if (!ok) Push(Path(field), absl::StrCat(requirement, ", got ", value));
  }

  // Adds "<path>: <problem>"; an empty `field` names the prefix itself.
  void Add(absl::string_view field, absl::string_view problem) { Push(Path(field), problem); }

  // A view with prefix "<prefix>.<field>" that appends to this list.
  Violations Scoped(absl::string_view field) const { return Violations(Path(field), list_); }

  // `<prefix>.<field>` ("a.b", "a[2]" when `field` starts with '[', `field` alone at the top).
  std::string Path(absl::string_view field) const {
    if (prefix_.empty()) return std::string(field);
    if (field.empty()) return prefix_;
    return absl::StrCat(prefix_, field[0] == '[' ? "" : ".", field);
  }

  bool empty() const { return list_->empty(); }
  size_t size() const { return list_->size(); }
  const std::vector<std::string>& list() const { return list_->text; }
  // The field path of each entry of list() (to locate it in the text it came from).
  const std::vector<std::string>& paths() const { return list_->paths; }

  // InvalidArgument "<what> (N problem[s]):\n  <v1>\n  <v2>...", or OK when empty.
  absl::Status ToStatus(absl::string_view what) const {
    if (list_->empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(what, " (", list_->size(), " problem",
                                                   list_->size() == 1 ? "" : "s", "):\n  ",
                                                   absl::StrJoin(list_->text, "\n  ")));
  }

 private:
  struct List {
    std::vector<std::string> text;   // "<path>: <problem>"
    std::vector<std::string> paths;  // <path>
    size_t size() const { return text.size(); }
    bool empty() const { return text.empty(); }
  };

  Violations(std::string prefix, std::shared_ptr<List> list)
      : prefix_(std::move(prefix)), list_(std::move(list)) {}

  void Push(std::string path, absl::string_view problem) {
    list_->text.push_back(absl::StrCat(path, ": ", problem));
    list_->paths.push_back(std::move(path));
  }

  std::string prefix_;
  std::shared_ptr<List> list_;  // shared with Scoped() views
};

}  // namespace pact

#endif  // PACT_CORE_VIOLATIONS_H_
