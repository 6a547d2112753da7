// The training step line: on a terminal a bar redrawn in place that fits the window, otherwise
// a log line every `log_every` steps.
#ifndef PACT_TRAIN_PROGRESS_H_
#define PACT_TRAIN_PROGRESS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace pact::train {

// "[####....] <line>" in at most `columns - 1` characters (the last column stays free so the
// terminal never wraps): the bar shrinks first, then goes, then the line is cut.
std::string FormatProgressBar(absl::string_view line, int64_t step, int64_t steps, int columns);

class ProgressReporter {
 public:
  // `tty`: draw the bar on stderr; `log_every` > 0. `log_to_file` (may be empty): where a
  // terminal's lines also go every `log_every` steps, so the run's log file keeps them.
  ProgressReporter(bool tty, int log_every,
                   std::function<void(const std::string&)> log_to_file = nullptr)
      : tty_(tty), log_every_(log_every), log_to_file_(std::move(log_to_file)) {}
  // Finish()es, so every way out of an epoch leaves the terminal clean.
  ~ProgressReporter() { Finish(); }
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  void Update(const std::string& line, int64_t step, int64_t steps);
  // Ends the bar's line (once), before anything else is printed.
  void Finish();

 private:
  const bool tty_;
  const int log_every_;
  const std::function<void(const std::string&)> log_to_file_;
  bool drawn_ = false;
};

}  // namespace pact::train

#endif  // PACT_TRAIN_PROGRESS_H_
