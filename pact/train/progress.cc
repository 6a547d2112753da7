#include "pact/train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace pact::train {
namespace {

constexpr int kBarWidth = 24;
constexpr int kMinBarWidth = 8;

int TerminalColumns() {
  struct winsize size;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

std::string FormatProgressBar(absl::string_view line, int64_t step, int64_t steps, int columns) {
  const int room = std::max(columns - 1, 0);
  // "[" bar "] " line
  const int bar = std::min<int64_t>(kBarWidth, room - 3 - static_cast<int64_t>(line.size()));
  if (bar < kMinBarWidth) return std::string(line.substr(0, room));
  const int filled =
      static_cast<int>(bar * std::clamp<int64_t>(step, 0, steps) / std::max<int64_t>(steps, 1));
  return absl::StrCat("[", std::string(filled, '#'), std::string(bar - filled, '.'), "] ", line);
}

void ProgressReporter::Update(const std::string& line, int64_t step, int64_t steps) {
  if (!tty_) {
    if (step % log_every_ == 0) LOG(INFO) << line;
    return;
  }
  // \r redraws in place; ESC[K clears what a longer previous line left.
  std::fprintf(stderr, "\r%s\x1b[K",
               FormatProgressBar(line, step, steps, TerminalColumns()).c_str());
  std::fflush(stderr);
  drawn_ = true;
  if (log_to_file_ && step % log_every_ == 0) log_to_file_(line);
}

void ProgressReporter::Finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace pact::train
