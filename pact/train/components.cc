#include "pact/train/components.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layer_plan.h"
#include "pact/quant/quantizer.h"

namespace pact::train {

int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

torch::Tensor ModelInput(const torch::Tensor& images, torch::Device device) {
  torch::Tensor x = images.to(device);
  if (x.device().is_cpu() && x.dim() == 4) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  return x;
}

absl::StatusOr<StepResult> TrainStep(Components& c, double lambda_alpha,
                                     const torch::Tensor& images_in,
                                     const torch::Tensor& labels_in) {
  const torch::Tensor images = ModelInput(images_in, c.device);
  const torch::Tensor labels = labels_in.to(c.device);
  const torch::Tensor logits = c.model->forward(images);
  const torch::Tensor ce = torch::nn::functional::cross_entropy(logits, labels);
  const double ce_value = ce.item<double>();
  if (!std::isfinite(ce_value)) {
    return absl::DataLossError(absl::StrCat("loss became ", ce_value));
  }
  torch::Tensor loss = ce;
  const torch::Tensor penalty = AlphaPenalty(c.alphas, lambda_alpha);
  if (penalty.defined()) loss = loss + penalty;
  c.optimizer->torch_optimizer->zero_grad();
  loss.backward();
  if (c.after_backward) PACT_RETURN_IF_ERROR(c.after_backward());
  c.optimizer->torch_optimizer->step();
  StepResult result;
  result.loss_sum = ce_value * labels.size(0);
  result.correct = logits.argmax(1).eq(labels).sum().item<int64_t>();
  return result;
}

void EvalStep(models::Model& model, torch::Device device, const torch::Tensor& images_in,
              const torch::Tensor& labels_in, EvalSums& sums) {
  const torch::Tensor images = ModelInput(images_in, device);
  const torch::Tensor labels = labels_in.to(device);
  const torch::Tensor logits = model.forward(images);
  sums.loss_sum +=
      torch::nn::functional::cross_entropy(
          logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
          .item<double>();
  const int64_t k = std::min<int64_t>(5, logits.size(1));
  const torch::Tensor top = std::get<1>(logits.topk(k, 1));
  const torch::Tensor hits = top.eq(labels.unsqueeze(1));
  sums.top1 += hits.select(1, 0).sum().item<int64_t>();
  sums.top5 += hits.any(1).sum().item<int64_t>();
  sums.seen += labels.size(0);
}

absl::Status AverageQuantizerState(
    torch::nn::Module& model, int world_size,
    const std::function<absl::Status(std::vector<double>*)>& all_reduce_sum) {
  if (world_size <= 1) return absl::OkStatus();
  std::vector<torch::Tensor> state;
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (dynamic_cast<const quant::ActivationModule*>(module.get()) == nullptr &&
        dynamic_cast<const quant::WeightQuantModule*>(module.get()) == nullptr) {
      continue;
    }
    for (const torch::Tensor& p : module->parameters(/*recurse=*/false)) state.push_back(p);
    for (const torch::Tensor& b : module->buffers(/*recurse=*/false)) state.push_back(b);
  }
  std::vector<double> values;
  PACT_RETURN_IF_ERROR(TorchCall("reading the quantizer state", [&] {
    for (const torch::Tensor& t : state) {
      const torch::Tensor flat = t.detach().to(torch::kCPU, torch::kDouble).reshape({-1});
      for (int64_t i = 0; i < flat.numel(); ++i) values.push_back(flat[i].item<double>());
    }
  }));
  if (values.empty()) return absl::OkStatus();
  PACT_RETURN_IF_ERROR(all_reduce_sum(&values));
  return TorchCall("writing the averaged quantizer state", [&] {
    torch::NoGradGuard no_grad;
    size_t at = 0;
    for (torch::Tensor& t : state) {
      const int64_t n = t.numel();
      std::vector<double> mean(values.begin() + at, values.begin() + at + n);
      for (double& v : mean) v /= world_size;
      t.copy_(torch::tensor(mean, torch::kDouble).reshape(t.sizes()));
      at += n;
    }
  });
}

double LambdaAlpha(const QuantizationSpec& quantization, const optim::Optimizer& optimizer) {
  return quantization.has_lambda_alpha() ? quantization.lambda_alpha() : optimizer.weight_decay;
}

torch::Tensor AlphaPenalty(const std::vector<torch::Tensor>& alphas, double lambda) {
  if (alphas.empty() || lambda == 0.0) return torch::Tensor();
  return 0.5 * lambda * torch::cat(alphas).pow(2).sum();
}

absl::StatusOr<Components> BuildComponents(const Recipe& recipe, const FieldLocations* locations) {
  Components c;
  if (recipe.train().device() == DEVICE_CUDA) {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          "train.device: DEVICE_CUDA needs a CUDA GPU and a LibTorch built with CUDA (build with "
          "PACT_LIBTORCH=<libtorch with CUDA>, see README); this build or machine has none");
    }
    c.device = torch::Device(torch::kCUDA, 0);
  }
  const QuantizationSpec& q = recipe.quantization();
  quant::QuantizationPolicy policy;
  if (q.has_activation()) policy.activation = q.activation();
  if (q.has_weight()) policy.weight = q.weight();
  policy.quantize_first_last = q.quantize_first_last();
  for (int i = 0; i < q.layer_override_size(); ++i) {
    const std::string path = absl::StrCat("quantization.layer_override[", i, "]");
    policy.rules.push_back(q.layer_override(i));
    policy.rule_labels.push_back(
        absl::StrCat(locations == nullptr ? "" : locations->Prefix(path), path));
  }
  // With per-layer rules the model is built twice (layer_plan.h); each build starts from the
  // recipe's seed, so both initialize the same weights.
  const quant::ModelFactory factory = [&](std::shared_ptr<const quant::LayerBuilder> layers)
      -> absl::StatusOr<std::shared_ptr<torch::nn::Module>> {
    torch::manual_seed(recipe.seed());
    models::BuildContext model_context;
    model_context.layers = std::move(layers);
    PACT_ASSIGN_OR_RETURN(std::shared_ptr<models::Model> model,
                          models::GetModelRegistry().Create(recipe.model(), model_context));
    return std::shared_ptr<torch::nn::Module>(std::move(model));
  };
  PACT_ASSIGN_OR_RETURN(quant::PlannedModel planned, quant::BuildPlannedModel(policy, factory));
  c.layers = std::move(planned.layers);
  c.model = std::dynamic_pointer_cast<models::Model>(planned.model);

  PACT_RETURN_IF_ERROR(TorchCall("moving the model to the device", [&] { c.model->to(c.device); }));

  optim::OptimizerContext optimizer_context;
  for (const auto& item : c.model->named_modules()) {
    const auto* activation = dynamic_cast<const quant::ActivationModule*>(item.value().get());
    if (activation != nullptr && activation->clip_level().defined()) {
      c.alpha_names.push_back(item.key());
      c.alphas.push_back(activation->clip_level());
    }
  }
  for (const auto& param : c.model->parameters()) {
    bool is_alpha = false;
    for (const auto& alpha : c.alphas) is_alpha = is_alpha || param.is_same(alpha);
    (is_alpha ? optimizer_context.not_decayed : optimizer_context.decayed).push_back(param);
  }
  PACT_ASSIGN_OR_RETURN(
      c.optimizer, optim::GetOptimizerRegistry().Create(recipe.optimizer(), optimizer_context));
  if (recipe.has_lr_schedule()) {
    PACT_ASSIGN_OR_RETURN(c.schedule,
                          optim::GetLrScheduleRegistry().Create(recipe.lr_schedule(), {}));
  }
  return c;
}

absl::StatusOr<std::shared_ptr<const datasets::Dataset>> BuildDataset(
    const datasets::DatasetSpec& spec) {
  return datasets::GetDatasetRegistry().Create(spec, datasets::MakeDatasetContext(spec));
}

absl::Status CheckDatasetFitsModel(const datasets::Dataset& dataset, models::Model& model,
                                   absl::string_view which) {
  if (dataset.image_shape() != model.input_shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        which, ": the dataset gives images of shape [", absl::StrJoin(dataset.image_shape(), ", "),
        "] but the model takes [", absl::StrJoin(model.input_shape(), ", "),
        "]; pick a matching model or dataset"));
  }
  if (dataset.num_classes() != model.num_classes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        which, ": the dataset has ", dataset.num_classes(), " classes but the model predicts ",
        model.num_classes(), "; set the model's num_classes"));
  }
  return absl::OkStatus();
}

}  // namespace pact::train
