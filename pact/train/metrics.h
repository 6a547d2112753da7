// What the trainer reports for each epoch (metrics files, TensorBoard, the curves plot).
#ifndef PACT_TRAIN_METRICS_H_
#define PACT_TRAIN_METRICS_H_

#include <vector>

namespace pact::train {

struct EpochMetrics {
  int epoch = 0;  // 0-based
  double lr = 0.0;
  bool quantized = true;
  double train_loss = 0.0;  // mean cross-entropy (without the alpha penalty)
  double train_top1 = 0.0;  // percent
  bool evaluated = false;
  double eval_loss = 0.0;
  double eval_top1 = 0.0;
  double eval_top5 = 0.0;
  double seconds = 0.0;  // training + evaluation wall time of the epoch
  double train_images_per_s = 0.0;
  std::vector<double> alphas;  // every PACT alpha at the end of the epoch
};

}  // namespace pact::train

#endif  // PACT_TRAIN_METRICS_H_
