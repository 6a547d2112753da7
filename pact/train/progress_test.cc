#include "pact/train/progress.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pact::train {
namespace {

TEST(FormatProgressBarTest, FullBarWhenThereIsRoom) {
  EXPECT_EQ(FormatProgressBar("epoch 1/2 step 6/12", 6, 12, 200),
            "[############............] epoch 1/2 step 6/12");
  EXPECT_EQ(FormatProgressBar("x", 12, 12, 200), "[########################] x");
  EXPECT_EQ(FormatProgressBar("x", 0, 0, 200), "[........................] x");
}

TEST(FormatProgressBarTest, FitsTheWindowLeavingTheLastColumnFree) {
  const std::string line(50, 'a');
  for (int columns : {80, 70, 62, 61, 50, 30, 1, 0}) {
    const std::string bar = FormatProgressBar(line, 3, 4, columns);
    EXPECT_LE(static_cast<int>(bar.size()), std::max(columns - 1, 0)) << columns;
  }
  // The bar shrinks before the line is cut...
  EXPECT_EQ(FormatProgressBar(line, 4, 4, 63), "[#########] " + line);
  // ...and goes when it would be narrower than 8; then the line is cut.
  EXPECT_EQ(FormatProgressBar(line, 4, 4, 61), line);
  EXPECT_EQ(FormatProgressBar(line, 4, 4, 30), std::string(29, 'a'));
}

TEST(ProgressReporterTest, OnATerminalLinesAlsoGoToTheLogFileEveryLogEverySteps) {
  std::vector<std::string> logged;
  {
    ProgressReporter progress(/*tty=*/true, /*log_every=*/3,
                              [&](const std::string& line) { logged.push_back(line); });
    for (int step = 1; step <= 7; ++step) progress.Update("step " + std::to_string(step), step, 7);
  }
  EXPECT_EQ(logged, (std::vector<std::string>{"step 3", "step 6"}));
  // Without a terminal the log line is the only output; the hook is not needed.
  logged.clear();
  ProgressReporter plain(/*tty=*/false, 3,
                         [&](const std::string& line) { logged.push_back(line); });
  plain.Update("step 3", 3, 7);
  EXPECT_TRUE(logged.empty());
}

}  // namespace
}  // namespace pact::train
