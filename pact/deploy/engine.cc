#include "pact/deploy/engine.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"
#include "pact/deploy/int_kernels.h"

namespace pact::deploy {
namespace {

constexpr int64_t kInt16Max = 32767;

// ---------------------------------------------------------------------------------------------
// Compilation.

class Compiler {
 public:
  absl::StatusOr<Program> Run(const IntegerModel& m);

 private:
  // sum_t v_t * mult_t[c] + bias[c] over integer values, or a float value.
  struct Term {
    int value = -1;
    std::vector<double> mult;
  };
  struct Sym {
    int float_value = -1;
    std::vector<Term> terms;
    std::vector<double> bias;
    int64_t channels = 0;
    std::vector<int64_t> spatial;  // {H, W}, or {} for [N, F]
  };

  int AddValue(const std::string& type, std::vector<int64_t> shape, double max_abs) {
    ValueInfo* v = program_.info.add_values();
    v->set_type(type);
    for (int64_t d : shape) v->add_shape(d);
    max_abs_.push_back(max_abs);
    return program_.info.values_size() - 1;
  }
  int AddTensor(torch::Tensor t, const std::string& dtype, int bits = 0,
                const std::string& encoding = "") {
    TensorInfo* info = program_.info.add_tensors();
    info->set_dtype(dtype);
    for (int64_t d : t.sizes()) info->add_shape(d);
    info->set_bits(bits);
    info->set_encoding(encoding);
    program_.tensors.push_back(t.contiguous());
    return program_.info.tensors_size() - 1;
  }
  int FloatTensor(const std::vector<double>& v) {
    return AddTensor(torch::tensor(v, torch::kDouble).to(torch::kFloat), "float32");
  }
  int FloatTensor(const torch::Tensor& t) {
    return AddTensor(t.detach().to(torch::kFloat).clone(), "float32");
  }
  OpInfo& AddOp(const std::string& kind, const std::string& name, std::vector<int> inputs,
                int output) {
    OpInfo* op = program_.info.add_ops();
    op->set_kind(kind);
    op->set_name(name);
    for (int i : inputs) op->add_inputs(i);
    op->set_output(output);
    op->set_weight(-1);
    op->set_bias(-1);
    return *op;
  }

  const std::string& Type(int value) const { return program_.info.values(value).type(); }
  std::vector<int64_t> FloatShape(const Sym& s) const {
    std::vector<int64_t> shape = {s.channels};
    shape.insert(shape.end(), s.spatial.begin(), s.spatial.end());
    return shape;
  }
  std::vector<int64_t> IntShape(const Sym& s) const {
    std::vector<int64_t> shape = s.spatial;
    shape.push_back(s.channels);
    return shape;
  }
  static Sym FloatSym(int value, int64_t channels, std::vector<int64_t> spatial) {
    Sym s;
    s.float_value = value;
    s.channels = channels;
    s.spatial = std::move(spatial);
    return s;
  }
  Sym IntSym(int value, double scale, int64_t channels, std::vector<int64_t> spatial) const {
    Sym s;
    s.terms.push_back({value, std::vector<double>(static_cast<size_t>(channels), scale)});
    s.bias.assign(static_cast<size_t>(channels), 0.0);
    s.channels = channels;
    s.spatial = std::move(spatial);
    return s;
  }
  // One term, no offset, one positive scale for every channel: the value is codes (or sums)
  // times a scale, what a quantized layer takes as input.
  static bool Plain(const Sym& s, double* scale) {
    if (s.float_value >= 0 || s.terms.size() != 1) return false;
    const std::vector<double>& m = s.terms[0].mult;
    for (size_t c = 0; c < m.size(); ++c) {
      if (m[c] != m[0] || s.bias[c] != 0.0) return false;
    }
    *scale = m[0];
    return m[0] > 0;
  }

  // The form evaluated in float ("dequant").
  int Materialize(const Sym& s, const std::string& name) {
    if (s.float_value >= 0) return s.float_value;
    std::vector<int> inputs;
    for (const Term& t : s.terms) inputs.push_back(t.value);
    const int out = AddValue("float", FloatShape(s), 0);
    OpInfo& op = AddOp("dequant", name, inputs, out);
    for (const Term& t : s.terms) op.add_multipliers(FloatTensor(t.mult));
    op.set_offset(FloatTensor(s.bias));
    return out;
  }

  absl::Status Conv(const DeployNode& node, const Sym& x, Sym* y);
  absl::Status Requant(const DeployNode& node, const Sym& x, Sym* y);

  Program program_;
  std::vector<double> max_abs_;  // per value: a bound on |v| (integer values)
};

std::vector<int64_t> Vec(const std::vector<int64_t>& v) { return v; }

int64_t ConvOut(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // PyTorch: with ceil_mode the last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

absl::Status Compiler::Conv(const DeployNode& node, const Sym& x, Sym* y) {
  const bool conv = node.kind == DeployNode::Kind::kConv;
  const torch::Tensor w_float =
      node.weight_quantized
          ? (node.weight.values.to(torch::kDouble) * node.weight.scale).to(torch::kFloat)
          : node.float_weight.to(torch::kFloat);
  const int64_t out_channels = w_float.size(0);
  std::vector<int64_t> spatial;
  if (conv) {
    if (x.spatial.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(node.name, ": a conv needs [C, H, W] input"));
    }
    for (int d = 0; d < 2; ++d) {
      spatial.push_back(ConvOut(x.spatial[d], node.kernel[d], node.stride[d], node.padding[d],
                                node.dilation[d], false));
    }
  }
  // The integer inputs (value, scale) the layer sums over: one, or the network input as two
  // int16 parts (high and low) that together hold it to 2^-21.
  std::vector<std::pair<int, double>> inputs;
  double in_scale = 0;
  if (node.weight_quantized) {
    if (Plain(x, &in_scale)) {
      inputs.push_back({x.terms[0].value, in_scale});
    } else if (x.float_value == 0) {
      for (const char* part : {"high", "low"}) {
        const bool high = std::string(part) == "high";
        const int v = AddValue("i16", IntShape(x), high ? kInt16Max : (1 << kInputSplitBits) - 1);
        OpInfo& op = AddOp("quantize_input", absl::StrCat("input.", part), {0}, v);
        op.set_input_scale(kInputScale);
        op.set_input_part(part);
        op.set_split_bits(kInputSplitBits);
        inputs.push_back({v, high ? kInputScale * (1 << kInputSplitBits) : kInputScale});
      }
    }
  }
  const int in_value = inputs.empty() ? -1 : inputs[0].first;
  if (in_value < 0) {
    // Full precision by recipe, or a quantized layer whose input is not quantized: float,
    // with the dequantized weights (what the trained model computes).
    const int in = Materialize(x, node.name);
    const int out = AddValue(
        "float", conv ? Vec({out_channels, spatial[0], spatial[1]}) : Vec({out_channels}), 0);
    OpInfo& op = AddOp(conv ? "float_conv" : "float_linear", node.name, {in}, out);
    op.set_weight(FloatTensor(w_float));
    if (node.bias.defined()) op.set_bias(FloatTensor(node.bias));
    for (int64_t v : node.kernel) op.add_kernel(v);
    for (int64_t v : node.stride) op.add_stride(v);
    for (int64_t v : node.padding) op.add_padding(v);
    for (int64_t v : node.dilation) op.add_dilation(v);
    op.set_groups(node.groups);
    *y = FloatSym(out, out_channels, spatial);
    return absl::OkStatus();
  }
  if (conv && (node.dilation[0] != 1 || node.dilation[1] != 1)) {
    return absl::UnimplementedError(
        absl::StrCat(node.name, ": dilated convolution has no integer kernel"));
  }
  // Weights as [OC, KH, KW, C] (the NHWC im2col order) or [OUT, IN].
  torch::Tensor v = node.weight.values.to(torch::kInt32);
  if (conv) v = v.permute({0, 2, 3, 1});
  const int64_t fan_in = v[0].numel();
  const double w_max = v.abs().max().item<double>();
  const int weight = AddTensor(v, "packed", node.weight.bits, EncodingName(node.weight.encoding));
  y->channels = out_channels;
  y->spatial = spatial;
  y->terms.clear();
  y->bias.assign(static_cast<size_t>(out_channels), 0.0);
  y->float_value = -1;
  for (const auto& [input, scale] : inputs) {
    // int32 sums must not overflow.
    const double bound = max_abs_[input] * w_max * static_cast<double>(fan_in);
    if (!(bound < 2147483647.0)) {
      return absl::OutOfRangeError(
          absl::StrCat(node.name, ": integer sums could reach ", bound, ", beyond int32"));
    }
    const int out = AddValue(
        "i32", conv ? Vec({spatial[0], spatial[1], out_channels}) : Vec({out_channels}), bound);
    OpInfo& op = AddOp(conv ? "conv" : "linear", node.name, {input}, out);
    op.set_weight(weight);
    op.set_weight_bits(node.weight.bits);
    op.set_weight_quantizer(node.weight_quantizer);
    op.set_weight_scale(node.weight.scale);
    for (int64_t k : node.kernel) op.add_kernel(k);
    for (int64_t k : node.stride) op.add_stride(k);
    for (int64_t k : node.padding) op.add_padding(k);
    op.set_groups(node.groups);
    y->terms.push_back(
        {out, std::vector<double>(static_cast<size_t>(out_channels), scale * node.weight.scale)});
  }
  if (node.bias.defined()) {
    const torch::Tensor b = node.bias.to(torch::kDouble).contiguous();
    y->bias.assign(b.data_ptr<double>(), b.data_ptr<double>() + out_channels);
  }
  return absl::OkStatus();
}

absl::Status Compiler::Requant(const DeployNode& node, const Sym& x, Sym* y) {
  const int64_t channels = x.channels;
  const double inv = 1.0 / node.out_scale;
  std::vector<int> inputs;
  std::vector<torch::Tensor> mults;
  for (const Term& t : x.terms) {
    inputs.push_back(t.value);
    mults.push_back(torch::empty({channels}, torch::kInt32));
  }
  torch::Tensor shift = torch::empty({channels}, torch::kInt32);
  torch::Tensor offset = torch::empty({channels}, torch::kInt64);
  for (int64_t c = 0; c < channels; ++c) {
    double m_max = 0, sum_bound = std::abs(x.bias[c] * inv);
    for (const Term& t : x.terms) {
      m_max = std::max(m_max, std::abs(t.mult[c] * inv));
      sum_bound += std::abs(t.mult[c] * inv) * max_abs_[t.value];
    }
    // The largest shift keeping each multiplier within int32 and the 64-bit sum in range.
    int s = 40;
    while (s > 1 && (m_max * std::ldexp(1.0, s) >= 2147483647.0 ||
                     sum_bound * std::ldexp(1.0, s) >= std::ldexp(1.0, 61))) {
      --s;
    }
    if (m_max * std::ldexp(1.0, s) >= 2147483647.0) {
      return absl::OutOfRangeError(absl::StrCat(node.name, ": requantization multiplier ", m_max,
                                                " does not fit int32 (channel ", c, ")"));
    }
    shift[c] = s;
    for (size_t t = 0; t < x.terms.size(); ++t) {
      mults[t][c] =
          static_cast<int32_t>(std::llround(x.terms[t].mult[c] * inv * std::ldexp(1.0, s)));
    }
    offset[c] = static_cast<int64_t>(std::llround(x.bias[c] * inv * std::ldexp(1.0, s))) +
                (int64_t{1} << (s - 1));
  }
  if (x.terms.size() > static_cast<size_t>(kernels::kMaxRequantTerms)) {
    return absl::UnimplementedError(
        absl::StrCat(node.name, ": more than ", kernels::kMaxRequantTerms, " inputs"));
  }
  const int out = AddValue("u8", IntShape(x), static_cast<double>(node.out_max_code));
  OpInfo& op = AddOp("requant", node.name, inputs, out);
  for (const torch::Tensor& m : mults) op.add_multipliers(AddTensor(m, "int32"));
  op.set_shift(AddTensor(shift, "int32"));
  op.set_offset(AddTensor(offset, "int64"));
  op.set_max_code(node.out_max_code);
  op.set_out_bits(node.out_bits);
  op.set_out_scale(node.out_scale);
  op.set_clip_max(node.clip_max);
  op.set_activation(node.activation);
  *y = IntSym(out, node.out_scale, channels, x.spatial);
  return absl::OkStatus();
}

absl::StatusOr<Program> Compiler::Run(const IntegerModel& m) {
  IntegerProgram& info = program_.info;
  info.set_format("pact-integer-model");
  info.set_version(1);
  info.set_model(m.model);
  for (int64_t d : m.input_shape) info.add_input_shape(d);
  info.set_num_classes(m.num_classes);
  if (m.input_shape.size() != 3) {
    return absl::InvalidArgumentError("the model's input must be [C, H, W]");
  }
  std::vector<Sym> syms;
  for (const DeployNode& node : m.nodes) {
    const auto in = [&](int k) -> const Sym& { return syms[node.inputs[k]]; };
    Sym y;
    switch (node.kind) {
      case DeployNode::Kind::kInput: {
        const int v = AddValue("float", m.input_shape, 0);
        y = FloatSym(v, m.input_shape[0], {m.input_shape[1], m.input_shape[2]});
        break;
      }
      case DeployNode::Kind::kConv:
      case DeployNode::Kind::kLinear:
        PACT_RETURN_IF_ERROR(Conv(node, in(0), &y));
        break;
      case DeployNode::Kind::kBatchNorm: {
        const torch::Tensor s = node.bn_scale.to(torch::kDouble).contiguous();
        const torch::Tensor b = node.bn_shift.to(torch::kDouble).contiguous();
        const double* sp = s.data_ptr<double>();
        const double* bp = b.data_ptr<double>();
        if (s.numel() != in(0).channels) {
          return absl::InvalidArgumentError(absl::StrCat(node.name, ": channel count differs"));
        }
        y = in(0);
        if (y.float_value >= 0) {
          const int out = AddValue("float", FloatShape(y), 0);
          OpInfo& op = AddOp("float_affine", node.name, {y.float_value}, out);
          op.set_scale(FloatTensor(node.bn_scale));
          op.set_offset(FloatTensor(node.bn_shift));
          y.float_value = out;
        } else {
          for (Term& t : y.terms) {
            for (int64_t c = 0; c < y.channels; ++c) t.mult[c] *= sp[c];
          }
          for (int64_t c = 0; c < y.channels; ++c) y.bias[c] = y.bias[c] * sp[c] + bp[c];
        }
        break;
      }
      case DeployNode::Kind::kActivation:
        if (node.out_bits > 0 && in(0).float_value < 0) {
          PACT_RETURN_IF_ERROR(Requant(node, in(0), &y));
        } else if (node.out_bits > 0) {
          const Sym& x = in(0);
          const int out = AddValue("u8", IntShape(x), static_cast<double>(node.out_max_code));
          OpInfo& op = AddOp("float_to_codes", node.name, {x.float_value}, out);
          op.set_activation(node.activation);
          op.set_clip_max(node.clip_max);
          op.set_max_code(node.out_max_code);
          op.set_out_bits(node.out_bits);
          op.set_out_scale(node.out_scale);
          y = IntSym(out, node.out_scale, x.channels, x.spatial);
        } else {
          const Sym& x = in(0);
          const int in_value = Materialize(x, node.name);
          const int out = AddValue("float", FloatShape(x), 0);
          AddOp("float_clip", node.name, {in_value}, out).set_clip_max(node.clip_max);
          y = FloatSym(out, x.channels, x.spatial);
        }
        break;
      case DeployNode::Kind::kAdd: {
        const Sym& a = in(0);
        const Sym& b = in(1);
        if (a.channels != b.channels || a.spatial != b.spatial) {
          return absl::InvalidArgumentError(absl::StrCat(node.name, ": adding different shapes"));
        }
        // A pre-activation ResNet's residual stream gathers one term per block; past
        // kMaxRequantTerms it continues in float (see README, Deployment).
        if (a.float_value < 0 && b.float_value < 0 &&
            a.terms.size() + b.terms.size() <= static_cast<size_t>(kernels::kMaxRequantTerms)) {
          y = a;
          y.terms.insert(y.terms.end(), b.terms.begin(), b.terms.end());
          for (int64_t c = 0; c < y.channels; ++c) y.bias[c] += b.bias[c];
        } else {
          const int va = Materialize(a, node.name), vb = Materialize(b, node.name);
          const int out = AddValue("float", FloatShape(a), 0);
          AddOp("float_add", node.name, {va, vb}, out);
          y = FloatSym(out, a.channels, a.spatial);
        }
        break;
      }
      case DeployNode::Kind::kMaxPool: {
        const Sym& x = in(0);
        std::vector<int64_t> spatial;
        for (int d = 0; d < 2; ++d) {
          spatial.push_back(ConvOut(x.spatial[d], node.kernel[d], node.stride[d], node.padding[d],
                                    1, node.ceil_mode));
        }
        const bool integer = x.float_value < 0 && x.terms.size() == 1;
        const int in_value = integer ? x.terms[0].value : Materialize(x, node.name);
        Sym shaped = x;
        shaped.spatial = spatial;
        const int out = integer ? AddValue(Type(in_value), IntShape(shaped), max_abs_[in_value])
                                : AddValue("float", FloatShape(shaped), 0);
        OpInfo& op = AddOp(integer ? "max_pool" : "float_max_pool", node.name, {in_value}, out);
        for (int64_t k : node.kernel) op.add_kernel(k);
        for (int64_t k : node.stride) op.add_stride(k);
        for (int64_t k : node.padding) op.add_padding(k);
        op.set_ceil_mode(node.ceil_mode);
        if (integer) {
          // Max of v * m + b is the max of v where m > 0, the min where m < 0.
          torch::Tensor negate = torch::zeros({x.channels}, torch::kInt8);
          for (int64_t c = 0; c < x.channels; ++c) negate[c] = x.terms[0].mult[c] < 0 ? 1 : 0;
          op.set_negate(AddTensor(negate, "int8"));
          y = shaped;
          y.terms[0].value = out;
        } else {
          y = FloatSym(out, x.channels, spatial);
        }
        break;
      }
      case DeployNode::Kind::kGlobalAvgPool: {
        const Sym& x = in(0);
        const int64_t area = x.spatial[0] * x.spatial[1];
        if (x.float_value < 0 && x.terms.size() == 1) {
          const int out = AddValue("i32", {x.channels}, max_abs_[x.terms[0].value] * area);
          AddOp("sum_pool", node.name, {x.terms[0].value}, out);
          y = x;
          y.spatial.clear();
          y.terms[0].value = out;
          for (double& m : y.terms[0].mult) m /= static_cast<double>(area);
        } else {
          const int in_value = Materialize(x, node.name);
          const int out = AddValue("float", {x.channels}, 0);
          AddOp("float_mean", node.name, {in_value}, out);
          y = FloatSym(out, x.channels, {});
        }
        break;
      }
      case DeployNode::Kind::kFlatten: {
        const Sym& x = in(0);
        if (x.spatial.empty()) {
          y = x;
          break;
        }
        const int64_t area = x.spatial[0] * x.spatial[1];
        const int64_t features = x.channels * area;
        if (x.float_value < 0 && x.terms.size() == 1) {
          const int out = AddValue(Type(x.terms[0].value), {features}, max_abs_[x.terms[0].value]);
          AddOp("flatten", node.name, {x.terms[0].value}, out);
          y.channels = features;
          y.terms.push_back({out, {}});
          for (int64_t c = 0; c < x.channels; ++c) {
            for (int64_t i = 0; i < area; ++i) {
              y.terms[0].mult.push_back(x.terms[0].mult[c]);
              y.bias.push_back(x.bias[c]);
            }
          }
        } else {
          const int in_value = Materialize(x, node.name);
          const int out = AddValue("float", {features}, 0);
          AddOp("float_flatten", node.name, {in_value}, out);
          y = FloatSym(out, features, {});
        }
        break;
      }
      case DeployNode::Kind::kZeroPadShortcut: {
        const Sym& x = in(0);
        std::vector<int64_t> spatial = {(x.spatial[0] + node.stride[0] - 1) / node.stride[0],
                                        (x.spatial[1] + node.stride[1] - 1) / node.stride[1]};
        const int64_t channels = x.channels + node.pad_before + node.pad_after;
        double scale = 0;
        const bool integer = Plain(x, &scale);
        const int in_value = integer ? x.terms[0].value : Materialize(x, node.name);
        Sym shaped;
        shaped.channels = channels;
        shaped.spatial = spatial;
        const int out = integer ? AddValue(Type(in_value), IntShape(shaped), max_abs_[in_value])
                                : AddValue("float", FloatShape(shaped), 0);
        OpInfo& op = AddOp(integer ? "zero_pad_shortcut" : "float_zero_pad_shortcut", node.name,
                           {in_value}, out);
        for (int64_t s : node.stride) op.add_stride(s);
        op.set_pad_before(node.pad_before);
        op.set_pad_after(node.pad_after);
        y = integer ? IntSym(out, scale, channels, spatial) : FloatSym(out, channels, spatial);
        break;
      }
    }
    syms.push_back(std::move(y));
  }
  const Sym& last = syms.back();
  if (!last.spatial.empty() || last.channels != m.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("the model's last layer gives ", last.channels,
                                                   " values per image, not ", m.num_classes,
                                                   " logits"));
  }
  info.set_output(Materialize(last, "logits"));
  PACT_RETURN_IF_ERROR(Prepare(program_));
  return std::move(program_);
}

}  // namespace

absl::StatusOr<Program> Compile(const IntegerModel& m) {
  return TorchCall("compiling the integer program",
                   [&]() -> absl::StatusOr<Program> { return Compiler().Run(m); });
}

// ---------------------------------------------------------------------------------------------
// Checking and running.

namespace {

const std::vector<std::string>& IntegerKinds() {
  static const auto* kinds = new std::vector<std::string>{
      "quantize_input", "float_to_codes", "conv",    "linear",           "requant",
      "max_pool",       "sum_pool",       "flatten", "zero_pad_shortcut"};
  return *kinds;
}
const std::vector<std::string>& FloatKinds() {
  static const auto* kinds = new std::vector<std::string>{
      "dequant",   "float_conv",     "float_linear", "float_affine",  "float_clip",
      "float_add", "float_max_pool", "float_mean",   "float_flatten", "float_zero_pad_shortcut"};
  return *kinds;
}
bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

torch::Tensor TensorOf(const Program& p, int index) { return p.tensors[index]; }

template <typename T>
void MaxPoolImage(const T* in, int64_t h, int64_t w, int64_t c, const OpInfo& op,
                  const int8_t* negate, int64_t oh, int64_t ow, T* out) {
  const int64_t kh = op.kernel(0), kw = op.kernel(1), sy = op.stride(0), sx = op.stride(1);
  const int64_t py = op.padding(0), px = op.padding(1);
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      T* o = out + (y * ow + x) * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        bool any = false;
        T best = 0;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = y * sy - py + ky;
          if (iy < 0 || iy >= h) continue;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t ix = x * sx - px + kx;
            if (ix < 0 || ix >= w) continue;
            const T v = in[(iy * w + ix) * c + ch];
            if (!any || (negate[ch] ? v < best : v > best)) best = v;
            any = true;
          }
        }
        o[ch] = best;
      }
    }
  }
}

// Integer convolution of one NHWC image with [OC, KH, KW, C] weights, sums in int64 (the wide
// path: int16 input codes or weights beyond int8).
template <typename T>
void WideConvImage(const T* in, int64_t h, int64_t w, int64_t c, const int32_t* weight, int64_t oc,
                   int64_t kh, int64_t kw, const OpInfo& op, int64_t oh, int64_t ow, int32_t* out) {
  const int64_t groups = std::max<int64_t>(1, op.groups());
  const int64_t cg = c / groups, ocg = oc / groups;
  const int64_t sy = op.stride(0), sx = op.stride(1), py = op.padding(0), px = op.padding(1);
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      for (int64_t o = 0; o < oc; ++o) {
        const int64_t c0 = (o / ocg) * cg;
        int64_t sum = 0;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = y * sy - py + ky;
          if (iy < 0 || iy >= h) continue;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t ix = x * sx - px + kx;
            if (ix < 0 || ix >= w) continue;
            const T* a = in + (iy * w + ix) * c + c0;
            const int32_t* wk = weight + ((o * kh + ky) * kw + kx) * cg;
            for (int64_t ch = 0; ch < cg; ++ch) sum += static_cast<int64_t>(a[ch]) * wk[ch];
          }
        }
        out[(y * ow + x) * oc + o] = static_cast<int32_t>(sum);
      }
    }
  }
}

// Rows of K = KH * KW * C input bytes per output pixel, zero-padded to k4.
// Channels [c0, c0 + c) of an image with `stride` channels (one group of a grouped conv).
template <typename T>
void Im2Col(const T* in, int64_t h, int64_t w, int64_t stride, int64_t c0, int64_t c, int64_t kh,
            int64_t kw, const OpInfo& op, int64_t oh, int64_t ow, int64_t k4, T* rows) {
  const int64_t k = kh * kw * c;
  // Read once: protobuf accessors in the loop cost as much as the copies.
  const int64_t sy = op.stride(0), sx = op.stride(1), py = op.padding(0), px = op.padding(1);
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      T* row = rows + (y * ow + x) * k4;
      const int64_t ix0 = x * sx - px;
      for (int64_t ky = 0; ky < kh; ++ky) {
        const int64_t iy = y * sy - py + ky;
        T* dst_row = row + ky * kw * c;
        if (iy < 0 || iy >= h) {
          std::memset(dst_row, 0, static_cast<size_t>(kw * c) * sizeof(T));
          continue;
        }
        if (ix0 >= 0 && ix0 + kw <= w && stride == c) {
          // The kernel row's pixels are consecutive: one copy.
          std::memcpy(dst_row, in + (iy * w + ix0) * c, static_cast<size_t>(kw * c) * sizeof(T));
          continue;
        }
        for (int64_t kx = 0; kx < kw; ++kx) {
          const int64_t ix = ix0 + kx;
          T* dst = dst_row + kx * c;
          if (ix < 0 || ix >= w) {
            std::memset(dst, 0, static_cast<size_t>(c) * sizeof(T));
          } else {
            std::memcpy(dst, in + (iy * w + ix) * stride + c0, static_cast<size_t>(c) * sizeof(T));
          }
        }
      }
      if (k4 > k) std::memset(row + k, 0, static_cast<size_t>(k4 - k) * sizeof(T));
    }
  }
}

// The active kernel build, or the generic one when `op`'s products could overflow its int16 pairs.
const kernels::IntKernels& KernelsFor(const Program& p, int op_index) {
  const kernels::IntKernels& active = kernels::ActiveIntKernels();
  if (p.u8_pair_bound[op_index] <= active.u8_pair_limit) return active;
  return *kernels::SupportedIntKernels().front();
}

torch::Tensor RunIntLinear(const Program& p, int op_index, const torch::Tensor& in) {
  const OpInfo& op = p.info.ops(op_index);
  const torch::Tensor weight = TensorOf(p, op.weight());
  const int64_t n = in.size(0), f = in.size(1), out_features = weight.size(0);
  torch::Tensor out = torch::empty({n, out_features}, torch::kInt32);
  int32_t* out_data = out.data_ptr<int32_t>();
  const std::vector<int8_t>& packed = p.gemm_weights[op_index];
  if (!packed.empty()) {
    const int64_t k4 = kernels::RoundUp(f, 4);
    const int64_t n_pad = kernels::RoundUp(out_features, kernels::kGemmColumns);
    torch::Tensor a = in;
    if (k4 != f) a = torch::constant_pad_nd(in, {0, k4 - f}, 0).contiguous();
    const uint8_t* a_data = a.data_ptr<uint8_t>();
    const kernels::IntKernels& k = KernelsFor(p, op_index);
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      k.gemm_u8s8(a_data + begin * k4, end - begin, k4, packed.data(), k4, out_features, n_pad,
                  out_data + begin * out_features, out_features);
    });
    return out;
  }
  // Wide: a [N, F] x [OUT, F] integer product in int64.
  const torch::Tensor product = torch::matmul(in.to(torch::kInt64), weight.to(torch::kInt64).t());
  return product.to(torch::kInt32);
}

// Requantizes image `i` of `op`'s inputs into `out`; each (value, buffer) of `sums` (one image
// of int32 sums) stands for that input (convolutions fused with their requantization).
void RequantImage(const Program& p, const OpInfo& op, const std::vector<torch::Tensor>& values,
                  int64_t i, int64_t rows, int64_t channels,
                  const std::vector<std::pair<int, const int32_t*>>& sums, torch::Tensor& out) {
  kernels::RequantArgs args;
  args.rows = rows;
  args.channels = channels;
  args.num_terms = op.inputs_size();
  for (int t = 0; t < op.inputs_size(); ++t) {
    kernels::RequantTerm& term = args.terms[t];
    term.stride = channels;
    term.multiplier = p.tensors[op.multipliers(t)].data_ptr<int32_t>();
    const auto sum = std::find_if(sums.begin(), sums.end(),
                                  [&](const auto& s) { return s.first == op.inputs(t); });
    if (sum != sums.end()) {
      term.input = sum->second;
      continue;
    }
    const torch::Tensor& v = values[op.inputs(t)];
    term.is_u8 = v.scalar_type() == torch::kByte;
    term.input = term.is_u8 ? static_cast<const void*>(v.data_ptr<uint8_t>() + i * rows * channels)
                            : static_cast<const void*>(v.data_ptr<int32_t>() + i * rows * channels);
  }
  args.bias = p.tensors[op.offset()].data_ptr<int64_t>();
  args.shift = p.tensors[op.shift()].data_ptr<int32_t>();
  args.max_code = static_cast<int32_t>(op.max_code());
  args.out = out.data_ptr<uint8_t>() + i * rows * channels;
  args.out_stride = channels;
  kernels::ActiveIntKernels().requant(args);
}

torch::Tensor RunRequant(const Program& p, const OpInfo& op,
                         const std::vector<torch::Tensor>& values) {
  const torch::Tensor& first = values[op.inputs(0)];
  const int64_t n = first.size(0);
  const int64_t channels = first.size(first.dim() - 1);
  const int64_t rows = first.numel() / (n * channels);
  torch::Tensor out = torch::empty(first.sizes(), torch::kByte);
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      RequantImage(p, op, values, i, rows, channels, {}, out);
    }
  });
  return out;
}

// One integer convolution op, per image (the kernels' set-up for its shapes and weights).
class ConvRunner {
 public:
  ConvRunner(const Program& p, int op_index, const torch::Tensor& in)
      : op_(p.info.ops(op_index)),
        in_(in),
        weight_(p.tensors[op_.weight()]),
        packed_(p.gemm_weights[op_index]),
        packed16_(p.gemm16_weights[op_index]),
        k_(KernelsFor(p, op_index)) {
    h_ = in.size(1), w_ = in.size(2), c_ = in.size(3);
    oc_ = weight_.size(0), kh_ = weight_.size(1), kw_ = weight_.size(2);
    groups_ = std::max<int64_t>(1, op_.groups());
    cg_ = c_ / groups_, ocg_ = oc_ / groups_;
    const auto& shape = p.info.values(op_.output()).shape();
    oh_ = shape[0], ow_ = shape[1];
    k4_ = kernels::RoundUp(kh_ * kw_ * cg_, 4);
    k2_ = kernels::RoundUp(kh_ * kw_ * cg_, 2);
    n_pad_ = kernels::RoundUp(ocg_, kernels::kGemmColumns);
    direct_ = groups_ == 1 && kh_ == 1 && kw_ == 1 && op_.stride(0) == 1 && op_.stride(1) == 1 &&
              op_.padding(0) == 0 && op_.padding(1) == 0 && c_ % 4 == 0;
    wp_ = w_ + 2 * op_.padding(1);
    // Implicit GEMM on a zero-padded copy (square strides, channels in whole quads).
    implicit_ = !packed_.empty() && !direct_ && groups_ == 1 && c_ % 4 == 0 &&
                op_.stride(0) == op_.stride(1);
  }

  int64_t out_size() const { return oh_ * ow_ * oc_; }
  int64_t pixels() const { return oh_ * ow_; }
  int64_t channels() const { return oc_; }

  // Per-thread buffers.
  struct Scratch {
    std::vector<uint8_t> padded, rows;
    std::vector<int16_t> rows16;
  };
  Scratch MakeScratch() const {
    Scratch s;
    if (implicit_) s.padded.assign(static_cast<size_t>((h_ + 2 * op_.padding(0)) * wp_ * c_), 0);
    if (!packed_.empty() && !direct_ && !implicit_) s.rows.resize(oh_ * ow_ * k4_);
    if (!packed16_.empty()) s.rows16.resize(oh_ * ow_ * k2_);
    return s;
  }

  // The sums of image `i` into acc[pixel][oc].
  void Image(int64_t i, Scratch& s, int32_t* acc) const {
    const int64_t in_image = h_ * w_ * c_;
    if (!packed16_.empty()) {
      const int16_t* image = in_.data_ptr<int16_t>() + i * in_image;
      for (int64_t g = 0; g < groups_; ++g) {
        Im2Col(image, h_, w_, c_, g * cg_, cg_, kh_, kw_, op_, oh_, ow_, k2_, s.rows16.data());
        k_.gemm_s16s16(s.rows16.data(), oh_ * ow_, k2_, packed16_.data() + g * k2_ * n_pad_, k2_,
                       ocg_, n_pad_, acc + g * ocg_, oc_);
      }
    } else if (packed_.empty()) {
      const int32_t* w = weight_.data_ptr<int32_t>();
      if (in_.scalar_type() == torch::kByte) {
        WideConvImage(in_.data_ptr<uint8_t>() + i * in_image, h_, w_, c_, w, oc_, kh_, kw_, op_,
                      oh_, ow_, acc);
      } else if (in_.scalar_type() == torch::kInt16) {
        WideConvImage(in_.data_ptr<int16_t>() + i * in_image, h_, w_, c_, w, oc_, kh_, kw_, op_,
                      oh_, ow_, acc);
      } else {
        WideConvImage(in_.data_ptr<int32_t>() + i * in_image, h_, w_, c_, w, oc_, kh_, kw_, op_,
                      oh_, ow_, acc);
      }
    } else if (implicit_) {
      // Zero-pad the image once; the kernel then reads every window in place.
      const uint8_t* image = in_.data_ptr<uint8_t>() + i * in_image;
      for (int64_t y = 0; y < h_; ++y) {
        std::memcpy(s.padded.data() + ((y + op_.padding(0)) * wp_ + op_.padding(1)) * c_,
                    image + y * w_ * c_, static_cast<size_t>(w_ * c_));
      }
      k_.conv_u8s8(s.padded.data(), wp_, c_, kh_, kw_, op_.stride(0), oh_, ow_, packed_.data(), oc_,
                   n_pad_, acc, oc_);
    } else {
      const uint8_t* image = in_.data_ptr<uint8_t>() + i * in_image;
      for (int64_t g = 0; g < groups_; ++g) {
        const uint8_t* a = image;
        if (!direct_) {
          Im2Col(image, h_, w_, c_, g * cg_, cg_, kh_, kw_, op_, oh_, ow_, k4_, s.rows.data());
          a = s.rows.data();
        }
        k_.gemm_u8s8(a, oh_ * ow_, direct_ ? c_ : k4_, packed_.data() + g * k4_ * n_pad_, k4_, ocg_,
                     n_pad_, acc + g * ocg_, oc_);
      }
    }
  }

 private:
  const OpInfo& op_;
  const torch::Tensor& in_;
  const torch::Tensor weight_;
  const std::vector<int8_t>& packed_;
  const std::vector<int16_t>& packed16_;
  const kernels::IntKernels& k_;
  int64_t h_, w_, c_, oc_, kh_, kw_, groups_, cg_, ocg_, oh_, ow_, k4_, k2_, n_pad_, wp_;
  bool direct_, implicit_;
};

// Integer convolutions ops [first, last] (int32 sums of the one op when first == last and
// `fused` is null). With `fused`, the requant op that alone reads their sums, each image's sums
// stay in per-thread buffers, in cache, and are requantized at once: the result is then that
// op's codes.
torch::Tensor RunIntConvs(const Program& p, int first, int last, const OpInfo* fused,
                          const std::vector<torch::Tensor>& values) {
  std::vector<ConvRunner> convs;
  for (int c = first; c <= last; ++c) {
    convs.emplace_back(p, c, values[p.info.ops(c).inputs(0)]);
  }
  const int64_t n = values[p.info.ops(first).inputs(0)].size(0);
  const ConvRunner& head = convs.front();
  const auto& shape = p.info.values(p.info.ops(first).output()).shape();
  torch::Tensor out =
      torch::empty({n, shape[0], shape[1], head.channels()}, fused ? torch::kByte : torch::kInt32);
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<ConvRunner::Scratch> scratch;
    std::vector<std::vector<int32_t>> local(convs.size());
    for (size_t c = 0; c < convs.size(); ++c) {
      scratch.push_back(convs[c].MakeScratch());
      if (fused) local[c].resize(static_cast<size_t>(convs[c].out_size()));
    }
    std::vector<std::pair<int, const int32_t*>> sums;
    for (int64_t i = begin; i < end; ++i) {
      sums.clear();
      for (size_t c = 0; c < convs.size(); ++c) {
        int32_t* acc = fused ? local[c].data() : out.data_ptr<int32_t>() + i * head.out_size();
        convs[c].Image(i, scratch[c], acc);
        sums.push_back({p.info.ops(first + static_cast<int>(c)).output(), acc});
      }
      if (fused) {
        RequantImage(p, *fused, values, i, head.pixels(), head.channels(), sums, out);
      }
    }
  });
  return out;
}

// `input` (float, NCHW or [N, F]) mapped element by element into an integer tensor in the
// integer layout (NHWC or [N, F]), in one pass.
template <typename Out, typename Fn>
torch::Tensor MapToIntLayout(const torch::Tensor& input, torch::ScalarType type, Fn fn) {
  const torch::Tensor x = input.contiguous();
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t hw = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  torch::Tensor out =
      x.dim() == 4 ? torch::empty({n, x.size(2), x.size(3), c}, type) : torch::empty({n, c}, type);
  const float* in = x.data_ptr<float>();
  Out* o = out.data_ptr<Out>();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* plane = in + (b * c + ch) * hw;
        Out* dst = o + b * hw * c + ch;
        for (int64_t i = 0; i < hw; ++i) dst[i * c] = fn(plane[i]);
      }
    }
  });
  return out;
}

// One int16 part of the input codes q = round(x / input_scale) = high * 2^split_bits + low
// (low in [0, 2^split_bits)), from float NCHW into NHWC in one pass.
torch::Tensor QuantizeInput(const OpInfo& op, const torch::Tensor& input) {
  const double inverse = 1.0 / op.input_scale();
  const int bits = op.split_bits();
  const bool high = op.input_part() == "high";
  return MapToIntLayout<int16_t>(input, torch::kInt16, [&](float x) {
    double v = std::nearbyint(static_cast<double>(x) * inverse);
    if (!(v == v)) v = 0;  // NaN
    const int64_t q = static_cast<int64_t>(std::clamp(v, -1e15, 1e15));
    const int64_t hi = q >> bits;  // floor
    return static_cast<int16_t>(high ? std::clamp<int64_t>(hi, -32768, 32767) : q - (hi << bits));
  });
}

// An activation's codes from float NCHW input (after a full-precision layer), written NHWC in
// one pass: PACT round(clip(x, 0, alpha) * (L / alpha)), LSQ round(clip(x / s, 0, Qp)), both
// rounding half to even in float as the trainer's ops do.
torch::Tensor FloatToCodes(const OpInfo& op, const torch::Tensor& input) {
  const bool lsq = op.activation() == "lsq";
  const float clip = static_cast<float>(op.clip_max());
  const float inverse = static_cast<float>(static_cast<double>(op.max_code()) / op.clip_max());
  const float step = static_cast<float>(op.out_scale());
  const float max_code = static_cast<float>(op.max_code());
  return MapToIntLayout<uint8_t>(input, torch::kByte, [&](float v) {
    float code = lsq ? std::min(std::max(v / step, 0.0f), max_code)
                     : std::min(std::max(v, 0.0f), clip) * inverse;
    code = std::nearbyint(code);       // half to even (the default rounding mode)
    if (!(code >= 0.0f)) code = 0.0f;  // NaN
    return static_cast<uint8_t>(code);
  });
}

// NHWC (or [N, F]) integers -> the float layout (NCHW).
torch::Tensor ToFloatLayout(const torch::Tensor& t) {
  return t.dim() == 4 ? t.permute({0, 3, 1, 2}).contiguous() : t;
}
torch::Tensor ToIntLayout(const torch::Tensor& t) {
  return t.dim() == 4 ? t.permute({0, 2, 3, 1}).contiguous() : t.contiguous();
}

}  // namespace

absl::Status Prepare(Program& p) {
  const IntegerProgram& info = p.info;
  const auto bad = [](const OpInfo& op, int index, const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("op ", index, " (", op.kind(), " '", op.name(), "'): ", what));
  };
  if (static_cast<int>(p.tensors.size()) != info.tensors_size()) {
    return absl::InvalidArgumentError("the program's tensor list and table differ");
  }
  const auto tensor_ok = [&](int t) { return t >= 0 && t < info.tensors_size(); };
  std::vector<bool> defined(static_cast<size_t>(info.values_size()), false);
  if (info.values_size() == 0 || info.values(0).type() != "float") {
    return absl::InvalidArgumentError("value 0 must be the float input");
  }
  defined[0] = true;
  p.gemm_weights.assign(static_cast<size_t>(info.ops_size()), {});
  p.u8_pair_bound.assign(static_cast<size_t>(info.ops_size()), 0);
  // The largest code each u8 value can hold.
  std::vector<int64_t> max_code(static_cast<size_t>(info.values_size()), 255);
  p.gemm16_weights.assign(static_cast<size_t>(info.ops_size()), {});
  for (int i = 0; i < info.ops_size(); ++i) {
    const OpInfo& op = info.ops(i);
    if (!Contains(IntegerKinds(), op.kind()) && !Contains(FloatKinds(), op.kind())) {
      return bad(op, i,
                 absl::StrCat("unknown op; known: ", absl::StrJoin(IntegerKinds(), ", "), ", ",
                              absl::StrJoin(FloatKinds(), ", ")));
    }
    for (int v : op.inputs()) {
      if (v < 0 || v >= info.values_size() || !defined[v]) {
        return bad(op, i, absl::StrCat("input value ", v, " is not computed before it"));
      }
    }
    if (op.inputs_size() == 0) return bad(op, i, "no input");
    if (op.output() <= 0 || op.output() >= info.values_size() || defined[op.output()]) {
      return bad(op, i,
                 absl::StrCat("output value ", op.output(), " is invalid or computed twice"));
    }
    defined[op.output()] = true;
    if (op.kind() == "requant" || op.kind() == "float_to_codes") {
      max_code[op.output()] = std::clamp<int64_t>(op.max_code(), 0, 255);
    } else if (op.kind() == "max_pool" || op.kind() == "flatten" ||
               op.kind() == "zero_pad_shortcut") {
      max_code[op.output()] = max_code[op.inputs(0)];
    }
    for (int t : {op.weight(), op.bias()}) {
      if (t != -1 && !tensor_ok(t)) return bad(op, i, "tensor reference out of range");
    }
    for (int t : op.multipliers()) {
      if (!tensor_ok(t)) return bad(op, i, "multiplier reference out of range");
    }
    // The per-channel tensors each kind reads.
    const bool needs_offset =
        op.kind() == "requant" || op.kind() == "dequant" || op.kind() == "float_affine";
    if ((needs_offset && !tensor_ok(op.offset())) ||
        (op.kind() == "float_affine" && !tensor_ok(op.scale())) ||
        (op.kind() == "max_pool" && !tensor_ok(op.negate())) ||
        (op.kind() == "dequant" && op.multipliers_size() != op.inputs_size())) {
      return bad(op, i, "a tensor it needs is missing or out of range");
    }
    if (op.kind() == "quantize_input" &&
        ((op.input_part() != "high" && op.input_part() != "low") || op.split_bits() < 1 ||
         op.split_bits() > 15 || !(op.input_scale() > 0))) {
      return bad(op, i, "needs input_part high or low, split_bits in [1, 15], input_scale > 0");
    }
    if (op.kind() == "requant") {
      if (op.multipliers_size() != op.inputs_size() || !tensor_ok(op.shift()) ||
          !tensor_ok(op.offset()) || op.inputs_size() > kernels::kMaxRequantTerms) {
        return bad(op, i, "needs one multiplier per input, a shift and an offset");
      }
      if (op.max_code() < 1 || op.max_code() > 255) return bad(op, i, "max_code not in [1, 255]");
      const torch::Tensor shift = p.tensors[op.shift()];
      if (shift.scalar_type() != torch::kInt32 || shift.min().item<int>() < 1 ||
          shift.max().item<int>() > 62) {
        return bad(op, i, "shifts must be int32 in [1, 62]");
      }
    }
    if (op.kind() == "conv" || op.kind() == "linear") {
      if (!tensor_ok(op.weight())) return bad(op, i, "no weights");
      const torch::Tensor w = p.tensors[op.weight()];
      if (w.scalar_type() != torch::kInt32 || w.dim() != (op.kind() == "conv" ? 4 : 2)) {
        return bad(op, i, "weights must be integers [OC, KH, KW, C] or [OUT, IN]");
      }
      if (op.kind() == "conv" && (op.stride_size() != 2 || op.padding_size() != 2)) {
        return bad(op, i, "needs two strides and two paddings");
      }
      const bool u8_input = info.values(op.inputs(0)).type() == "u8";
      const int64_t w_max = w.abs().max().item<int64_t>();
      const int64_t groups = std::max<int64_t>(1, op.groups());
      if (w.size(0) % groups != 0) return bad(op, i, "outputs not divisible by the groups");
      if (op.kind() == "conv" && info.values(op.inputs(0)).type() == "i16" && w_max <= 32767) {
        const torch::Tensor flat = w.reshape({w.size(0), -1}).contiguous();
        const int64_t per_group = flat.size(0) / groups;
        for (int64_t g = 0; g < groups; ++g) {
          const std::vector<int16_t> part = kernels::PackGemmWeights16(
              flat.data_ptr<int32_t>() + g * per_group * flat.size(1), per_group, flat.size(1));
          p.gemm16_weights[i].insert(p.gemm16_weights[i].end(), part.begin(), part.end());
        }
      }
      if (u8_input) {
        p.u8_pair_bound[i] = 2 * max_code[op.inputs(0)] * w_max;
      }
      if (u8_input && w_max <= 127) {
        // One GEMM layout per group, back to back.
        const torch::Tensor flat = w.reshape({w.size(0), -1}).contiguous();
        const int64_t per_group = flat.size(0) / groups;
        for (int64_t g = 0; g < groups; ++g) {
          const std::vector<int8_t> part = kernels::PackGemmWeights(
              flat.data_ptr<int32_t>() + g * per_group * flat.size(1), per_group, flat.size(1));
          p.gemm_weights[i].insert(p.gemm_weights[i].end(), part.begin(), part.end());
        }
      }
    }
  }
  std::vector<int> readers(static_cast<size_t>(info.values_size()), 0);
  for (const OpInfo& op : info.ops()) {
    for (int v : op.inputs()) ++readers[v];
  }
  // Consecutive convs whose sums only the requant right after them reads run fused with it:
  // fused_until[i] is that requant's index for the group's first conv, else -1.
  p.fused_until.assign(static_cast<size_t>(info.ops_size()), -1);
  for (int i = 0; i < info.ops_size(); ++i) {
    int j = i;
    while (j < info.ops_size() && info.ops(j).kind() == "conv" &&
           readers[info.ops(j).output()] == 1 && info.output() != info.ops(j).output()) {
      ++j;
    }
    if (j == i || j >= info.ops_size() || info.ops(j).kind() != "requant") continue;
    bool all_read = true;
    for (int c = i; c < j; ++c) {
      const auto& in = info.ops(j).inputs();
      all_read = all_read && std::find(in.begin(), in.end(), info.ops(c).output()) != in.end();
    }
    if (all_read) p.fused_until[i] = j;
  }
  if (info.output() <= 0 || info.output() >= info.values_size() || !defined[info.output()] ||
      info.values(info.output()).type() != "float") {
    return absl::InvalidArgumentError("the program's output must be a computed float value");
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> RunProgram(const Program& p, const torch::Tensor& images,
                                         std::vector<double>* op_seconds) {
  const IntegerProgram& info = p.info;
  if (images.dim() != 4 || images.size(1) != info.input_shape(0) ||
      images.size(2) != info.input_shape(1) || images.size(3) != info.input_shape(2)) {
    return absl::InvalidArgumentError(absl::StrCat("images must be [N, ",
                                                   absl::StrJoin(info.input_shape(), ", "),
                                                   "], got ", absl::StrJoin(images.sizes(), ", ")));
  }
  return TorchCall("running the integer program", [&]() -> absl::StatusOr<torch::Tensor> {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> values(static_cast<size_t>(info.values_size()));
    values[0] = images.to(torch::kFloat).contiguous();
    if (op_seconds != nullptr) op_seconds->resize(static_cast<size_t>(info.ops_size()), 0.0);
    auto start = std::chrono::steady_clock::now();
    const auto clock = [&](int i) {
      if (op_seconds == nullptr) return;
      const auto now = std::chrono::steady_clock::now();
      (*op_seconds)[i] += std::chrono::duration<double>(now - start).count();
      start = now;
    };
    for (int i = 0; i < info.ops_size(); ++i) {
      const OpInfo& op = info.ops(i);
      const auto in = [&](int k) -> const torch::Tensor& { return values[op.inputs(k)]; };
      const auto tensor = [&](int t) { return TensorOf(p, t); };
      const std::string& kind = op.kind();
      torch::Tensor y;
      if (kind == "quantize_input") {
        y = QuantizeInput(op, in(0));
      } else if (kind == "float_to_codes") {
        y = FloatToCodes(op, in(0));
      } else if (kind == "conv" && p.fused_until[i] >= 0) {
        const int requant = p.fused_until[i];
        values[info.ops(requant).output()] =
            RunIntConvs(p, i, requant - 1, &info.ops(requant), values);
        clock(i);
        i = requant;  // the group and its requant are done
        continue;
      } else if (kind == "conv") {
        y = RunIntConvs(p, i, i, nullptr, values);
      } else if (kind == "linear") {
        y = RunIntLinear(p, i, in(0));
      } else if (kind == "requant") {
        y = RunRequant(p, op, values);
      } else if (kind == "max_pool") {
        const torch::Tensor& x = in(0);
        const auto& shape = info.values(op.output()).shape();
        const int64_t n = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
        y = torch::empty({n, shape[0], shape[1], c}, x.options());
        const int8_t* negate = tensor(op.negate()).data_ptr<int8_t>();
        at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
          for (int64_t b = begin; b < end; ++b) {
            if (x.scalar_type() == torch::kByte) {
              MaxPoolImage(x.data_ptr<uint8_t>() + b * h * w * c, h, w, c, op, negate, shape[0],
                           shape[1], y.data_ptr<uint8_t>() + b * shape[0] * shape[1] * c);
            } else {
              MaxPoolImage(x.data_ptr<int32_t>() + b * h * w * c, h, w, c, op, negate, shape[0],
                           shape[1], y.data_ptr<int32_t>() + b * shape[0] * shape[1] * c);
            }
          }
        });
      } else if (kind == "sum_pool") {
        y = in(0).sum({1, 2}, /*keepdim=*/false, torch::kInt64).to(torch::kInt32);
      } else if (kind == "flatten") {
        y = in(0).permute({0, 3, 1, 2}).reshape({in(0).size(0), -1}).contiguous();
      } else if (kind == "zero_pad_shortcut") {
        y = in(0).slice(1, 0, c10::nullopt, op.stride(0)).slice(2, 0, c10::nullopt, op.stride(1));
        y = torch::constant_pad_nd(y, {op.pad_before(), op.pad_after()}, 0).contiguous();
      } else if (kind == "dequant") {
        // Float math: the result feeds float layers or is the logits.
        torch::Tensor sum = tensor(op.offset());
        for (int t = 0; t < op.inputs_size(); ++t) {
          sum = sum + in(t).to(torch::kFloat) * tensor(op.multipliers(t));
        }
        y = ToFloatLayout(sum);
      } else if (kind == "float_conv") {
        const torch::Tensor bias = op.bias() >= 0 ? tensor(op.bias()) : torch::Tensor();
        y = torch::conv2d(in(0), tensor(op.weight()), bias, {op.stride(0), op.stride(1)},
                          {op.padding(0), op.padding(1)}, {op.dilation(0), op.dilation(1)},
                          std::max<int64_t>(1, op.groups()));
      } else if (kind == "float_linear") {
        const torch::Tensor bias = op.bias() >= 0 ? tensor(op.bias()) : torch::Tensor();
        y = torch::linear(in(0), tensor(op.weight()), bias);
      } else if (kind == "float_affine") {
        std::vector<int64_t> shape(static_cast<size_t>(in(0).dim()), 1);
        shape[1] = -1;
        y = in(0) * tensor(op.scale()).view(shape) + tensor(op.offset()).view(shape);
      } else if (kind == "float_clip") {
        y = torch::clamp(in(0), 0.0, op.clip_max());
      } else if (kind == "float_add") {
        y = in(0) + in(1);
      } else if (kind == "float_max_pool") {
        y = torch::max_pool2d(in(0), {op.kernel(0), op.kernel(1)}, {op.stride(0), op.stride(1)},
                              {op.padding(0), op.padding(1)}, /*dilation=*/1, op.ceil_mode());
      } else if (kind == "float_mean") {
        y = in(0).mean({2, 3});
      } else if (kind == "float_flatten") {
        y = in(0).flatten(1);
      } else if (kind == "float_zero_pad_shortcut") {
        y = in(0).slice(2, 0, c10::nullopt, op.stride(0)).slice(3, 0, c10::nullopt, op.stride(1));
        y = torch::constant_pad_nd(y, {0, 0, 0, 0, op.pad_before(), op.pad_after()}, 0);
      }
      values[op.output()] = y;
      clock(i);
    }
    return values[info.output()];
  });
}

}  // namespace pact::deploy
