#include "pact/train/progress.h"

#include <string>

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

}  // namespace
}  // namespace pact::train
