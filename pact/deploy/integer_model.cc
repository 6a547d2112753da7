#include "pact/deploy/integer_model.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "models/inference_graph.h"
#include "models/model.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/quant/layers.h"
#include "pact/quant/lsq.h"
#include "pact/quant/pact_ops.h"

namespace pact::deploy {
namespace {

using models::GraphNode;

// float(v): the value training computes with.
double AsFloat(double v) { return static_cast<float>(v); }

std::vector<int64_t> Pair(torch::ExpandingArray<2> a) { return {(*a)[0], (*a)[1]}; }

// DoReFa's integers: w_q = 2 i / L - 1, i in [0, L] -> v = 2 i - L, scale 1 / L.
QuantTensor DorefaCodes(const torch::Tensor& w_q, int bits) {
  const double levels = std::ldexp(1.0, bits) - 1;
  const torch::Tensor i = torch::round((w_q.to(torch::kDouble) + 1) * (levels / 2));
  QuantTensor t;
  t.values = (2 * i - levels).to(torch::kInt32);
  t.scale = 1.0 / levels;
  t.bits = bits;
  t.encoding = Encoding::kDorefa;
  return t;
}

// LSQ's integers: w_q = q * s, q in [-Qn, Qp].
QuantTensor LsqCodes(const torch::Tensor& w_q, double step, int bits) {
  QuantTensor t;
  t.values = torch::round(w_q.to(torch::kDouble) / step).to(torch::kInt32);
  t.scale = step;
  t.bits = bits;
  t.encoding = Encoding::kSigned;
  return t;
}

// The weights of a conv/linear layer as integers, or float for a full-precision one.
template <typename Layer>
absl::Status LowerWeights(const Layer& layer, const std::string& path, DeployNode& node) {
  const std::string kind = layer.quantizer().kind();
  node.weight_quantizer = kind;
  const torch::Tensor w_q = layer.QuantizedWeight().detach();
  if (layer.bias.defined()) node.bias = layer.bias.detach().clone();
  const int bits = layer.weight_bits();
  if (kind == "none" || bits <= 0 || bits >= quant::kFullPrecisionBits) {
    node.float_weight = w_q.clone();
    return absl::OkStatus();
  }
  if (kind == "dorefa") {
    node.weight = DorefaCodes(w_q, bits);
  } else if (kind == "lsq") {
    const auto* lsq = dynamic_cast<const quant::LsqWeight*>(&layer.weight_quant());
    if (lsq == nullptr) return absl::InternalError(absl::StrCat(path, ": LSQ without its step"));
    const double step = lsq->step.item<double>();
    node.weight = LsqCodes(w_q, AsFloat(step >= lsq->step_min() ? step : lsq->step_min()), bits);
  } else {
    return absl::UnimplementedError(
        absl::StrCat(path, ": weight quantizer '", kind, "' has no integer lowering"));
  }
  // The integers must give back the weights the model computes with.
  const double error =
      (node.weight.values.to(torch::kDouble) * node.weight.scale - w_q.to(torch::kDouble))
          .abs()
          .max()
          .item<double>();
  if (!(error <= 1e-6 * std::max(1.0, w_q.abs().max().item<double>()))) {
    return absl::InternalError(absl::StrCat(path, ": the ", kind, " weights are not on the ", bits,
                                            "-bit grid (off by ", error, ")"));
  }
  node.weight_quantized = true;
  return absl::OkStatus();
}

absl::Status LowerActivation(const quant::ActivationModule& act, const std::string& path,
                             DeployNode& node) {
  node.activation = act.kind();
  if (const auto* pact = dynamic_cast<const quant::PactActivation*>(&act)) {
    const int bits = pact->bits();
    // PACT's forward alpha: max(alpha, alpha_min), rounded to float (pact_ops.h).
    node.clip_max =
        quant::PactForwardAlpha(pact->alpha.detach(), bits, pact->alpha_min(), torch::kFloat);
    if (bits > 0) {
      const double levels = std::ldexp(1.0, bits) - 1;
      node.out_bits = bits;
      node.out_max_code = static_cast<int64_t>(levels);
      node.out_scale = AsFloat(node.clip_max / levels);
    }
    return absl::OkStatus();
  }
  if (const auto* lsq = dynamic_cast<const quant::LsqActivation*>(&act)) {
    const double step = lsq->step.item<double>();
    node.out_scale = AsFloat(step >= lsq->step_min() ? step : lsq->step_min());
    node.out_bits = lsq->bits();
    node.out_max_code = lsq->range().qp;
    node.clip_max = node.out_scale * static_cast<double>(node.out_max_code);
    return absl::OkStatus();
  }
  if (act.kind() == "relu") return absl::OkStatus();
  return absl::UnimplementedError(
      absl::StrCat(path, ": activation '", act.kind(), "' has no integer lowering"));
}

}  // namespace

const char* EncodingName(Encoding encoding) {
  switch (encoding) {
    case Encoding::kUnsigned:
      return "unsigned";
    case Encoding::kSigned:
      return "signed";
    case Encoding::kDorefa:
      return "dorefa";
  }
  return "?";
}

const char* KindName(DeployNode::Kind kind) {
  switch (kind) {
    case DeployNode::Kind::kInput:
      return "input";
    case DeployNode::Kind::kConv:
      return "conv";
    case DeployNode::Kind::kLinear:
      return "linear";
    case DeployNode::Kind::kBatchNorm:
      return "batch_norm";
    case DeployNode::Kind::kActivation:
      return "activation";
    case DeployNode::Kind::kAdd:
      return "add";
    case DeployNode::Kind::kMaxPool:
      return "max_pool";
    case DeployNode::Kind::kGlobalAvgPool:
      return "global_avg_pool";
    case DeployNode::Kind::kFlatten:
      return "flatten";
    case DeployNode::Kind::kZeroPadShortcut:
      return "zero_pad_shortcut";
  }
  return "?";
}

absl::StatusOr<IntegerModel> Lower(models::Model& model, const std::string& name) {
  PACT_ASSIGN_OR_RETURN(const models::InferenceGraph graph, model.Graph());
  std::map<std::string, torch::nn::Module*> modules;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    modules.emplace(item.key(), item.value().get());
  }
  IntegerModel m;
  m.model = name;
  m.input_shape = model.input_shape();
  m.num_classes = model.num_classes();
  // Graph node index -> deploy node index (dropout nodes alias their input).
  std::vector<int> index(graph.nodes().size(), -1);
  bool anything_quantized = false;
  const absl::Status status = TorchCall("lowering the model", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < graph.nodes().size(); ++i) {
      const GraphNode& g = graph.nodes()[i];
      DeployNode node;
      for (int input : g.inputs) node.inputs.push_back(index[input]);
      switch (g.op) {
        case GraphNode::Op::kInput:
          node.kind = DeployNode::Kind::kInput;
          break;
        case GraphNode::Op::kAdd:
          node.kind = DeployNode::Kind::kAdd;
          break;
        case GraphNode::Op::kFlatten:
          node.kind = DeployNode::Kind::kFlatten;
          break;
        case GraphNode::Op::kGlobalAvgPool:
          node.kind = DeployNode::Kind::kGlobalAvgPool;
          break;
        case GraphNode::Op::kZeroPadShortcut:
          node.kind = DeployNode::Kind::kZeroPadShortcut;
          node.stride = {g.stride, g.stride};
          node.pad_before = g.pad_before;
          node.pad_after = g.pad_after;
          break;
        case GraphNode::Op::kModule: {
          node.name = g.module;
          torch::nn::Module* module = modules.at(g.module);
          if (auto* conv = dynamic_cast<quant::QuantConv2dImpl*>(module)) {
            node.kind = DeployNode::Kind::kConv;
            const auto& o = conv->options();
            const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
            if (pad == nullptr) {
              return absl::UnimplementedError(
                  absl::StrCat(g.module, ": only explicit conv padding can be exported"));
            }
            node.kernel = Pair(o.kernel_size());
            node.stride = Pair(o.stride());
            node.padding = Pair(*pad);
            node.dilation = Pair(o.dilation());
            node.groups = o.groups();
            PACT_RETURN_IF_ERROR(LowerWeights(*conv, g.module, node));
          } else if (auto* linear = dynamic_cast<quant::QuantLinearImpl*>(module)) {
            node.kind = DeployNode::Kind::kLinear;
            PACT_RETURN_IF_ERROR(LowerWeights(*linear, g.module, node));
          } else if (auto* act = dynamic_cast<quant::ActivationModule*>(module)) {
            node.kind = DeployNode::Kind::kActivation;
            PACT_RETURN_IF_ERROR(LowerActivation(*act, g.module, node));
          } else if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(module) != nullptr ||
                     dynamic_cast<torch::nn::BatchNorm1dImpl*>(module) != nullptr) {
            auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(module);
            auto* bn1d = dynamic_cast<torch::nn::BatchNorm1dImpl*>(module);
            const torch::Tensor mean = bn ? bn->running_mean : bn1d->running_mean;
            const torch::Tensor var = bn ? bn->running_var : bn1d->running_var;
            const torch::Tensor weight = bn ? bn->weight : bn1d->weight;
            const torch::Tensor bias = bn ? bn->bias : bn1d->bias;
            const double eps = bn ? bn->options.eps() : bn1d->options.eps();
            node.kind = DeployNode::Kind::kBatchNorm;
            const torch::Tensor scale =
                weight.to(torch::kDouble) / torch::sqrt(var.to(torch::kDouble) + eps);
            node.bn_scale = scale.to(torch::kFloat);
            node.bn_shift =
                (bias.to(torch::kDouble) - mean.to(torch::kDouble) * scale).to(torch::kFloat);
          } else if (auto* pool = dynamic_cast<torch::nn::MaxPool2dImpl*>(module)) {
            const auto& o = pool->options;
            if ((*o.dilation())[0] != 1 || (*o.dilation())[1] != 1) {
              return absl::UnimplementedError(
                  absl::StrCat(g.module, ": max pooling with dilation"));
            }
            node.kind = DeployNode::Kind::kMaxPool;
            node.ceil_mode = o.ceil_mode();
            node.kernel = Pair(o.kernel_size());
            node.stride = Pair(o.stride());
            node.padding = Pair(o.padding());
          } else if (dynamic_cast<torch::nn::DropoutImpl*>(module) != nullptr) {
            index[i] = index[g.inputs[0]];  // the identity at inference
            continue;
          } else {
            return absl::UnimplementedError(
                absl::StrCat(g.module, ": ", module->name(), " has no lowering for deployment"));
          }
          break;
        }
      }
      if (node.name.empty()) node.name = absl::StrCat(KindName(node.kind), i);
      anything_quantized = anything_quantized || node.weight_quantized || node.out_bits > 0;
      m.nodes.push_back(std::move(node));
      index[i] = static_cast<int>(m.nodes.size()) - 1;
    }
    return absl::OkStatus();
  });
  PACT_RETURN_IF_ERROR(status);
  if (!anything_quantized) {
    return absl::FailedPreconditionError(
        "the model quantizes no weight and no activation: there is nothing to deploy as "
        "integers (was the run trained without quantization?)");
  }
  return m;
}

absl::StatusOr<torch::Tensor> RunDequantized(const IntegerModel& m, const torch::Tensor& images) {
  return TorchCall("running the lowered model", [&]() -> absl::StatusOr<torch::Tensor> {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> values;
    for (const DeployNode& node : m.nodes) {
      const auto in = [&](int k) { return values[node.inputs[k]]; };
      torch::Tensor y;
      switch (node.kind) {
        case DeployNode::Kind::kInput:
          y = images.to(torch::kFloat);
          break;
        case DeployNode::Kind::kConv:
        case DeployNode::Kind::kLinear: {
          const torch::Tensor w =
              node.weight_quantized
                  ? (node.weight.values.to(torch::kDouble) * node.weight.scale).to(torch::kFloat)
                  : node.float_weight;
          y = node.kind == DeployNode::Kind::kConv
                  ? torch::conv2d(in(0), w, node.bias, node.stride, node.padding, node.dilation,
                                  node.groups)
                  : torch::linear(in(0), w, node.bias);
          break;
        }
        case DeployNode::Kind::kBatchNorm: {
          std::vector<int64_t> shape(in(0).dim(), 1);
          shape[1] = -1;
          y = in(0) * node.bn_scale.view(shape) + node.bn_shift.view(shape);
          break;
        }
        case DeployNode::Kind::kActivation:
          if (node.out_bits == 0) {
            y = torch::clamp(in(0), 0.0, node.clip_max);
          } else if (node.activation == "lsq") {
            // round(clip(x / s, 0, Qp)) * s, as LSQ computes it (lsq_ops.h).
            y = torch::round(torch::clamp(in(0) / static_cast<float>(node.out_scale), 0.0,
                                          static_cast<double>(node.out_max_code))) *
                static_cast<float>(node.out_scale);
          } else {
            // round(clip(x, 0, alpha) * (L / alpha)) * (alpha / L), as PACT computes it.
            const float inverse =
                static_cast<float>(static_cast<double>(node.out_max_code) / node.clip_max);
            y = torch::round(torch::clamp(in(0), 0.0, node.clip_max) * inverse) *
                static_cast<float>(node.out_scale);
          }
          break;
        case DeployNode::Kind::kAdd:
          y = in(0) + in(1);
          break;
        case DeployNode::Kind::kMaxPool:
          y = torch::max_pool2d(in(0), node.kernel, node.stride, node.padding, /*dilation=*/1,
                                node.ceil_mode);
          break;
        case DeployNode::Kind::kGlobalAvgPool:
          y = in(0).mean({2, 3});
          break;
        case DeployNode::Kind::kFlatten:
          y = in(0).flatten(1);
          break;
        case DeployNode::Kind::kZeroPadShortcut:
          y = in(0)
                  .slice(2, 0, c10::nullopt, node.stride[0])
                  .slice(3, 0, c10::nullopt, node.stride[1]);
          y = torch::constant_pad_nd(y, {0, 0, 0, 0, node.pad_before, node.pad_after}, 0);
          break;
      }
      values.push_back(y);
    }
    return values.back();
  });
}

}  // namespace pact::deploy
