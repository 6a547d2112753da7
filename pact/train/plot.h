// A PNG of the training curves (loss and top-1 per epoch, train and eval), drawn with a tiny
// rasterizer and written with libpng, so a run can be judged at a glance without Python.
#ifndef PACT_TRAIN_PLOT_H_
#define PACT_TRAIN_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "pact/train/run_state.pb.h"

namespace pact::train {

// Writes `path` (atomically). Needs at least one epoch.
absl::Status WriteCurvesPng(const std::string& path, const std::vector<EpochMetrics>& history);

}  // namespace pact::train

#endif  // PACT_TRAIN_PLOT_H_
