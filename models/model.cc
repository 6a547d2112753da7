#include "models/model.h"

#include <algorithm>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "pact/quant/layers.h"

namespace pact::models {
namespace {

// Parameters owned by `module` itself (not its children).
int64_t OwnParams(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const torch::Tensor& p : module.parameters(/*recurse=*/false)) count += p.numel();
  return count;
}

// 1234567 -> "1,234,567".
std::string WithThousands(int64_t value) {
  std::string digits = absl::StrCat(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? absl::StrCat("-", out) : out;
}

// Per-sample shape ("16x32x32"): the batch dimension is dropped; "-" before any forward.
std::string ShapeString(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "-";
  if (shape.size() == 1) return absl::StrCat(shape[0]);
  return absl::StrJoin(shape.begin() + 1, shape.end(), "x");
}

bool IsWeightLayer(const LayerSummary& row) { return row.kind == "conv" || row.kind == "linear"; }

// DoReFa reads 0 and 32 bits as full precision.
bool WeightsQuantized(int bits) { return bits > 0 && bits < quant::kFullPrecisionBits; }

std::string WeightBitsString(const LayerSummary& row) {
  if (!IsWeightLayer(row)) return "";
  return WeightsQuantized(row.weight_bits) ? absl::StrCat(row.weight_bits) : "fp";
}

std::string ActivationBitsString(const LayerSummary& row) {
  if (IsWeightLayer(row)) return "";
  if (row.activation_bits == 0) return "clip";
  if (row.activation_bits >= quant::kFullPrecisionBits) return "fp";
  return absl::StrCat(row.activation_bits);
}

}  // namespace

absl::StatusOr<InferenceGraph> Model::Graph() const {
  return absl::UnimplementedError(
      absl::StrCat("model ", name(), " does not describe its inference graph (Model::Graph)"));
}

ModelRegistry& GetModelRegistry() {
  static auto* registry = new ModelRegistry("model", "//models:all_models");
  return *registry;
}

std::vector<LayerSummary> SummarizeLayers(Model& model) {
  std::vector<LayerSummary> rows;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    torch::nn::Module* module = item.value().get();
    LayerSummary row;
    row.name = item.key();
    if (auto* conv = dynamic_cast<quant::QuantConv2dImpl*>(module)) {
      row.kind = "conv";
      row.output_shape = conv->last_output_shape();
      row.weight_bits = conv->weight_bits();
    } else if (auto* linear = dynamic_cast<quant::QuantLinearImpl*>(module)) {
      row.kind = "linear";
      row.output_shape = linear->last_output_shape();
      row.weight_bits = linear->weight_bits();
    } else if (auto* activation = dynamic_cast<quant::ActivationModule*>(module)) {
      row.kind = activation->kind();
      row.output_shape = activation->last_output_shape();
      row.activation_bits = activation->bits();
    } else {
      continue;
    }
    row.params = OwnParams(*module);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string FormatSummary(Model& model) {
  const std::vector<LayerSummary> rows = SummarizeLayers(model);
  const std::vector<std::string> header = {"name",   "kind",        "output shape",
                                           "params", "weight bits", "activation bits"};
  std::vector<std::vector<std::string>> cells;
  int weight_layers = 0, quantized_weight_layers = 0;
  int activations = 0, quantized_activations = 0;
  for (const LayerSummary& row : rows) {
    cells.push_back({row.name, row.kind, ShapeString(row.output_shape), WithThousands(row.params),
                     WeightBitsString(row), ActivationBitsString(row)});
    if (IsWeightLayer(row)) {
      ++weight_layers;
      if (WeightsQuantized(row.weight_bits)) ++quantized_weight_layers;
    } else {
      ++activations;
      if (row.activation_bits > 0 && row.activation_bits < quant::kFullPrecisionBits) {
        ++quantized_activations;
      }
    }
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& line : cells) width[c] = std::max(width[c], line[c].size());
  }
  // Text columns left-aligned, numbers right-aligned.
  const auto format_line = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t c = 0; c < line.size(); ++c) {
      const int w = static_cast<int>(width[c]);
      absl::StrAppend(
          &out, c == 0 ? "" : "  ",
          c == 3 ? absl::StrFormat("%*s", w, line[c]) : absl::StrFormat("%-*s", w, line[c]));
    }
    out.erase(out.find_last_not_of(' ') + 1);
    return absl::StrCat(out, "\n");
  };
  size_t total_width = 2 * (header.size() - 1);
  for (size_t w : width) total_width += w;

  std::string out = format_line(header);
  absl::StrAppend(&out, std::string(total_width, '-'), "\n");
  for (const auto& line : cells) absl::StrAppend(&out, format_line(line));
  absl::StrAppend(&out, std::string(total_width, '-'), "\n");
  int64_t all = 0;
  for (const torch::Tensor& p : model.parameters(/*recurse=*/true)) all += p.numel();
  const int64_t weights = CountWeights(model);
  absl::StrAppend(&out, "weights: ", WithThousands(weights),
                  "; quantizer parameters (PACT alphas, LSQ steps): ", all - weights,
                  "; quantized weight layers: ", quantized_weight_layers, "/", weight_layers,
                  "; quantized activations: ", quantized_activations, "/", activations, "\n");
  absl::StrAppend(&out, "(bits: fp = full precision, clip = PACT clipping without rounding)\n");
  return out;
}

int64_t CountWeights(Model& model) {
  // What the quantizers own: activation modules (PACT's alpha, LSQ's step) and weight
  // transforms with state (LSQ's "weight_quant.step").
  std::unordered_set<const void*> quantizer_params;
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (dynamic_cast<const quant::ActivationModule*>(module.get()) == nullptr &&
        dynamic_cast<const quant::WeightQuantModule*>(module.get()) == nullptr) {
      continue;
    }
    for (const torch::Tensor& p : module->parameters(/*recurse=*/true)) {
      quantizer_params.insert(p.unsafeGetTensorImpl());
    }
  }
  int64_t count = 0;
  for (const torch::Tensor& p : model.parameters(/*recurse=*/true)) {
    if (quantizer_params.count(p.unsafeGetTensorImpl()) == 0) count += p.numel();
  }
  return count;
}

}  // namespace pact::models
