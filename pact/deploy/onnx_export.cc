#include "pact/deploy/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx-ml.pb.h>
#include <onnx/shape_inference/implementation.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"

namespace pact::deploy {
namespace {

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  std::string FloatInit(const std::string& name, const torch::Tensor& t,
                        std::vector<int64_t> dims) {
    const torch::Tensor c = t.to(torch::kFloat).contiguous();
    onnx::TensorProto* init = NewInit(name, onnx::TensorProto::FLOAT, dims);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.numel() * 4));
    return name;
  }
  std::string FloatScalar(const std::string& name, double v) {
    return FloatInit(name, torch::tensor({static_cast<float>(v)}), {});
  }
  std::string IntInit(const std::string& name, const torch::Tensor& t, std::vector<int64_t> dims,
                      int elem_type) {
    torch::ScalarType type = elem_type == onnx::TensorProto::INT8    ? torch::kInt8
                             : elem_type == onnx::TensorProto::UINT8 ? torch::kByte
                             : elem_type == onnx::TensorProto::INT32 ? torch::kInt32
                                                                     : torch::kInt64;
    const torch::Tensor c = t.to(type).contiguous();
    onnx::TensorProto* init = NewInit(name, elem_type, dims);
    init->set_raw_data(
        std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
    return name;
  }
  std::string Int64s(const std::string& name, const std::vector<int64_t>& v) {
    return IntInit(name, torch::tensor(v, torch::kInt64), {static_cast<int64_t>(v.size())},
                   onnx::TensorProto::INT64);
  }

  onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& output, const std::string& name) {
    onnx::NodeProto* node = graph_->add_node();
    node->set_op_type(op);
    node->set_name(name);
    for (const std::string& in : inputs) node->add_input(in);
    node->add_output(output);
    return node;
  }
  static void Ints(onnx::NodeProto* node, const std::string& name, std::vector<int64_t> v) {
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void Int(onnx::NodeProto* node, const std::string& name, int64_t v) {
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void Str(onnx::NodeProto* node, const std::string& name, const std::string& v) {
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }

 private:
  onnx::TensorProto* NewInit(const std::string& name, int elem_type,
                             const std::vector<int64_t>& dims) {
    onnx::TensorProto* init = graph_->add_initializer();
    init->set_name(name);
    init->set_data_type(elem_type);
    for (int64_t d : dims) init->add_dims(d);
    return init;
  }

  onnx::GraphProto* graph_;
};

void SetTensorType(onnx::ValueInfoProto* v, const std::string& name,
                   const std::vector<int64_t>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = t->mutable_shape();
  for (int64_t d : dims) {
    if (d < 0) {
      shape->add_dim()->set_dim_param("N");
    } else {
      shape->add_dim()->set_dim_value(d);
    }
  }
}

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const IntegerModel& m, const std::string& source) {
  onnx::ModelProto model;
  model.set_ir_version(7);
  model.set_producer_name("pact-qat");
  model.set_producer_version("1");
  model.set_doc_string(absl::StrCat(m.model, " exported from ", source));
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(13);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(m.model);
  GraphBuilder g(graph);
  std::vector<int64_t> input_dims = {-1};
  input_dims.insert(input_dims.end(), m.input_shape.begin(), m.input_shape.end());
  SetTensorType(graph->add_input(), "input", input_dims);

  std::vector<std::string> names;  // per node, its output tensor
  std::vector<int> ranks;          // per node, the rank of its output
  const absl::Status status = [&]() -> absl::Status {
    for (size_t i = 0; i < m.nodes.size(); ++i) {
      const DeployNode& node = m.nodes[i];
      const std::string out = i + 1 == m.nodes.size() ? "logits" : node.name;
      const auto in = [&](int k) { return names[node.inputs[k]]; };
      const auto rank = [&](int k) { return ranks[node.inputs[k]]; };
      int out_rank = 4;
      switch (node.kind) {
        case DeployNode::Kind::kInput:
          names.push_back("input");
          ranks.push_back(4);
          continue;
        case DeployNode::Kind::kConv:
        case DeployNode::Kind::kLinear: {
          const bool conv = node.kind == DeployNode::Kind::kConv;
          std::vector<int64_t> dims;
          std::string weight;
          if (node.weight_quantized) {
            const torch::Tensor v = node.weight.values;
            dims.assign(v.sizes().begin(), v.sizes().end());
            const bool fits = v.abs().max().item<int64_t>() <= 127;
            std::vector<std::string> dq = {
                g.IntInit(node.name + ".weight_codes", v, dims,
                          fits ? onnx::TensorProto::INT8 : onnx::TensorProto::INT32),
                g.FloatScalar(node.name + ".weight_scale", node.weight.scale)};
            if (fits) {
              dq.push_back(g.IntInit(node.name + ".weight_zero_point", torch::zeros({1}), {},
                                     onnx::TensorProto::INT8));
            }
            weight = node.name + ".weight";
            g.Node("DequantizeLinear", dq, weight, node.name + "/dequantize_weight");
          } else {
            const torch::Tensor w = node.float_weight;
            dims.assign(w.sizes().begin(), w.sizes().end());
            weight = g.FloatInit(node.name + ".weight", w, dims);
          }
          std::vector<std::string> inputs = {in(0), weight};
          if (node.bias.defined()) {
            inputs.push_back(g.FloatInit(node.name + ".bias", node.bias, {node.bias.numel()}));
          }
          if (conv) {
            onnx::NodeProto* n = g.Node("Conv", inputs, out, node.name);
            GraphBuilder::Ints(n, "kernel_shape", node.kernel);
            GraphBuilder::Ints(n, "strides", node.stride);
            GraphBuilder::Ints(
                n, "pads", {node.padding[0], node.padding[1], node.padding[0], node.padding[1]});
            GraphBuilder::Ints(n, "dilations", node.dilation);
            GraphBuilder::Int(n, "group", node.groups);
          } else {
            if (rank(0) != 2) {
              return absl::InvalidArgumentError(
                  absl::StrCat(node.name, ": linear on rank ", rank(0), " input"));
            }
            GraphBuilder::Int(g.Node("Gemm", inputs, out, node.name), "transB", 1);
            out_rank = 2;
          }
          break;
        }
        case DeployNode::Kind::kBatchNorm: {
          out_rank = rank(0);
          std::vector<int64_t> dims(static_cast<size_t>(out_rank), 1);
          dims[1] = node.bn_scale.numel();
          const std::string mul = node.name + "/scaled";
          g.Node("Mul", {in(0), g.FloatInit(node.name + ".scale", node.bn_scale, dims)}, mul,
                 node.name + "/mul");
          g.Node("Add", {mul, g.FloatInit(node.name + ".shift", node.bn_shift, dims)}, out,
                 node.name);
          break;
        }
        case DeployNode::Kind::kActivation: {
          out_rank = rank(0);
          if (node.out_bits == 0 && std::isinf(node.clip_max)) {
            g.Node("Relu", {in(0)}, out, node.name);
            break;
          }
          const std::string clipped = node.out_bits > 0 ? node.name + "/clipped" : out;
          g.Node("Clip",
                 {in(0), g.FloatScalar(node.name + ".clip_min", 0.0),
                  g.FloatScalar(node.name + ".clip_max", node.clip_max)},
                 clipped, node.out_bits > 0 ? node.name + "/clip" : node.name);
          if (node.out_bits > 0) {
            const std::string scale = g.FloatScalar(node.name + ".step", node.out_scale);
            const std::string zero = g.IntInit(node.name + ".zero_point", torch::zeros({1}), {},
                                               onnx::TensorProto::UINT8);
            const std::string codes = node.name + "/codes";
            g.Node("QuantizeLinear", {clipped, scale, zero}, codes, node.name + "/quantize");
            g.Node("DequantizeLinear", {codes, scale, zero}, out, node.name);
          }
          break;
        }
        case DeployNode::Kind::kAdd:
          out_rank = rank(0);
          g.Node("Add", {in(0), in(1)}, out, node.name);
          break;
        case DeployNode::Kind::kMaxPool: {
          onnx::NodeProto* n = g.Node("MaxPool", {in(0)}, out, node.name);
          GraphBuilder::Ints(n, "kernel_shape", node.kernel);
          GraphBuilder::Ints(n, "strides", node.stride);
          GraphBuilder::Ints(n, "pads",
                             {node.padding[0], node.padding[1], node.padding[0], node.padding[1]});
          GraphBuilder::Int(n, "ceil_mode", node.ceil_mode ? 1 : 0);
          break;
        }
        case DeployNode::Kind::kGlobalAvgPool: {
          const std::string pooled = node.name + "/pooled";
          g.Node("GlobalAveragePool", {in(0)}, pooled, node.name + "/pool");
          GraphBuilder::Int(g.Node("Flatten", {pooled}, out, node.name), "axis", 1);
          out_rank = 2;
          break;
        }
        case DeployNode::Kind::kFlatten:
          GraphBuilder::Int(g.Node("Flatten", {in(0)}, out, node.name), "axis", 1);
          out_rank = 2;
          break;
        case DeployNode::Kind::kZeroPadShortcut: {
          const std::string sliced = node.name + "/subsampled";
          const int64_t end = std::numeric_limits<int64_t>::max();
          g.Node("Slice",
                 {in(0), g.Int64s(node.name + ".starts", {0, 0}),
                  g.Int64s(node.name + ".ends", {end, end}), g.Int64s(node.name + ".axes", {2, 3}),
                  g.Int64s(node.name + ".steps", {node.stride[0], node.stride[1]})},
                 sliced, node.name + "/slice");
          onnx::NodeProto* n = g.Node(
              "Pad",
              {sliced,
               g.Int64s(node.name + ".pads", {0, node.pad_before, 0, 0, 0, node.pad_after, 0, 0})},
              out, node.name);
          GraphBuilder::Str(n, "mode", "constant");
          break;
        }
      }
      names.push_back(out);
      ranks.push_back(out_rank);
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) return status;
  SetTensorType(graph->add_output(), "logits", {-1, m.num_classes});
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    return absl::InternalError("cannot serialize the ONNX model");
  return bytes;
}

absl::StatusOr<OnnxCheckResult> CheckOnnx(const std::string& serialized) {
  onnx::ModelProto model;
  if (!model.ParseFromString(serialized)) {
    return absl::InvalidArgumentError("not a serialized onnx.ModelProto");
  }
  try {
    onnx::checker::check_model(model);
    onnx::shape_inference::InferShapes(
        model, onnx::OpSchemaRegistry::Instance(),
        onnx::ShapeInferenceOptions(/*check_type_val=*/true, /*strict_mode_val=*/1,
                                    /*data_prop_val=*/true));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("ONNX check failed: ", e.what()));
  }
  OnnxCheckResult result;
  result.nodes = model.graph().node_size();
  std::set<std::string> ops;
  for (const onnx::NodeProto& n : model.graph().node()) ops.insert(n.op_type());
  result.op_types.assign(ops.begin(), ops.end());
  // Every node output must have an inferred shape of known rank; the logits' is reported.
  std::set<std::string> inferred;
  for (const onnx::ValueInfoProto& v : model.graph().value_info()) {
    if (v.type().tensor_type().has_shape()) inferred.insert(v.name());
  }
  for (const onnx::NodeProto& n : model.graph().node()) {
    for (const std::string& out : n.output()) {
      if (out != "logits" && inferred.count(out) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("shape inference left ", out, " (", n.op_type(), ") without a shape"));
      }
    }
  }
  for (const onnx::TensorShapeProto_Dimension& d :
       model.graph().output(0).type().tensor_type().shape().dim()) {
    result.output_shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return result;
}

}  // namespace pact::deploy
