// A trained run, read back for deployment: its recipe.pbtxt rebuilt into the model and the
// weights of one of its checkpoints loaded. Reads only; the run folder is never written.
#ifndef PACT_DEPLOY_TRAINED_MODEL_H_
#define PACT_DEPLOY_TRAINED_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/model.h"
#include "pact/proto/recipe.pb.h"

namespace pact::deploy {

struct TrainedModel {
  Recipe recipe;
  std::string model_name;                // the registry key ("resnet20")
  std::string checkpoint;                // the file the weights came from
  std::shared_ptr<models::Model> model;  // on the CPU, in evaluation mode
};

// `checkpoint` is "best" or "last" (checkpoints/<it>.pt). NotFound naming the missing file (and
// the checkpoints the run has); InvalidArgument for another `checkpoint`; DataLoss when the
// checkpoint lacks tensors the recipe's model has.
absl::StatusOr<TrainedModel> LoadTrainedModel(const std::string& run_dir,
                                              const std::string& checkpoint);

}  // namespace pact::deploy

#endif  // PACT_DEPLOY_TRAINED_MODEL_H_
