#include "pact/deploy/packed_model.h"

#include <torch/torch.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"
#include "pact/core/torch_status.h"

namespace pact::deploy {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kMagicBytes = 8;

size_t Aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Bytes per element of a raw dtype, 0 for an unknown one.
size_t ElementBytes(const std::string& dtype) {
  if (dtype == "int8") return 1;
  if (dtype == "int32" || dtype == "float32") return 4;
  if (dtype == "int64") return 8;
  return 0;
}

torch::ScalarType ScalarTypeOf(const std::string& dtype) {
  if (dtype == "int8") return torch::kInt8;
  if (dtype == "int32") return torch::kInt32;
  if (dtype == "int64") return torch::kInt64;
  return torch::kFloat;
}

int64_t Numel(const TensorInfo& t) {
  int64_t n = 1;
  for (int64_t d : t.shape()) n *= d;
  return n;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> PackCodes(const std::vector<int32_t>& v, int bits,
                                               const std::string& encoding) {
  if (bits < 1 || bits > 8) return absl::InvalidArgumentError(absl::StrCat("bits ", bits));
  const int64_t levels = (int64_t{1} << bits) - 1;
  std::vector<uint8_t> out((v.size() * static_cast<size_t>(bits) + 7) / 8, 0);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t code;
    if (encoding == "unsigned") {
      code = v[i];
    } else if (encoding == "signed") {
      code = v[i] >= -(levels + 1) / 2 && v[i] <= levels / 2 ? (v[i] & levels) : -1;
    } else if (encoding == "dorefa") {
      code = (v[i] + levels) % 2 == 0 ? (v[i] + levels) / 2 : -1;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown encoding '", encoding, "'"));
    }
    if (code < 0 || code > levels) {
      return absl::InvalidArgumentError(
          absl::StrCat("value ", v[i], " has no ", bits, "-bit ", encoding, " code"));
    }
    const size_t bit = i * static_cast<size_t>(bits);
    for (int b = 0; b < bits; ++b) {
      if ((code >> b) & 1) out[(bit + b) / 8] |= static_cast<uint8_t>(1u << ((bit + b) % 8));
    }
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> UnpackCodes(const uint8_t* data, size_t bytes, int64_t count,
                                                 int bits, const std::string& encoding) {
  if (bits < 1 || bits > 8) return absl::InvalidArgumentError(absl::StrCat("bits ", bits));
  if (bytes * 8 < static_cast<size_t>(count) * static_cast<size_t>(bits)) {
    return absl::InvalidArgumentError("too few bytes for the codes");
  }
  const int32_t levels = (1 << bits) - 1;
  std::vector<int32_t> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const size_t bit = static_cast<size_t>(i) * static_cast<size_t>(bits);
    int32_t code = 0;
    for (int b = 0; b < bits; ++b) code |= ((data[(bit + b) / 8] >> ((bit + b) % 8)) & 1) << b;
    if (encoding == "unsigned") {
      v[i] = code;
    } else if (encoding == "signed") {
      v[i] = code > levels / 2 ? code - levels - 1 : code;
    } else if (encoding == "dorefa") {
      v[i] = 2 * code - levels;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown encoding '", encoding, "'"));
    }
  }
  return v;
}

absl::StatusOr<std::string> SerializePackedModel(const Program& program) {
  IntegerProgram info = program.info;
  std::string data;
  for (int i = 0; i < info.tensors_size(); ++i) {
    TensorInfo& t = *info.mutable_tensors(i);
    const torch::Tensor tensor = program.tensors[i].contiguous();
    std::string bytes;
    if (t.dtype() == "packed") {
      const torch::Tensor v = tensor.to(torch::kInt32).contiguous();
      std::vector<int32_t> values(v.data_ptr<int32_t>(), v.data_ptr<int32_t>() + v.numel());
      absl::StatusOr<std::vector<uint8_t>> packed = PackCodes(values, t.bits(), t.encoding());
      if (!packed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", i, ": ", packed.status().message()));
      }
      bytes.assign(packed->begin(), packed->end());
    } else {
      const size_t element = ElementBytes(t.dtype());
      if (element == 0 || tensor.scalar_type() != ScalarTypeOf(t.dtype())) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", i, ": dtype '", t.dtype(), "' does not match its data"));
      }
      bytes.assign(static_cast<const char*>(tensor.data_ptr()),
                   static_cast<size_t>(tensor.numel()) * element);
    }
    data.resize(Aligned(data.size()), '\0');
    t.set_offset(data.size());
    t.set_bytes(bytes.size());
    data += bytes;
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const auto status = google::protobuf::util::MessageToJsonString(info, &json, options);
  if (!status.ok()) return absl::InternalError(status.message().as_string());
  std::string out(kPackedMagic, kMagicBytes);
  const uint32_t header = static_cast<uint32_t>(json.size());
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((header >> (8 * b)) & 0xFF));
  out += json;
  out.resize(Aligned(out.size()), '\0');
  out += data;
  return out;
}

absl::StatusOr<Program> ParsePackedModel(const std::string& bytes, const std::string& name) {
  const auto loss = [&](const std::string& what) {
    return absl::DataLossError(absl::StrCat(name, ": ", what));
  };
  if (bytes.size() < kMagicBytes + 4 || bytes.compare(0, kMagicBytes, kPackedMagic) != 0) {
    return loss(absl::StrCat("not a packed integer model (expected the magic \"", kPackedMagic,
                             "\" at its start)"));
  }
  uint32_t header = 0;
  for (int b = 0; b < 4; ++b) {
    header |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[kMagicBytes + b])) << (8 * b);
  }
  const size_t json_start = kMagicBytes + 4;
  if (json_start + header > bytes.size()) {
    return loss(absl::StrCat("truncated: the header needs ", header, " bytes, the file has ",
                             bytes.size() - json_start, " after the magic"));
  }
  Program program;
  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(bytes.substr(json_start, header),
                                                                  &program.info, options);
  if (!status.ok()) return loss(absl::StrCat("bad header: ", status.message().as_string()));
  if (program.info.format() != "pact-integer-model" || program.info.version() != 1) {
    return loss(absl::StrCat("format '", program.info.format(), "' version ",
                             program.info.version(), "; this build reads pact-integer-model 1"));
  }
  const size_t data_start = Aligned(json_start + header);
  const size_t data_size = bytes.size() > data_start ? bytes.size() - data_start : 0;
  for (int i = 0; i < program.info.tensors_size(); ++i) {
    const TensorInfo& t = program.info.tensors(i);
    if (t.offset() > data_size || t.bytes() > data_size - t.offset()) {
      return loss(absl::StrCat("tensor ", i, " (", t.offset(), "+", t.bytes(),
                               " bytes) lies past the end of the data section (", data_size,
                               " bytes): the file is truncated"));
    }
    const int64_t numel = Numel(t);
    std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
    const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data()) + data_start + t.offset();
    if (t.dtype() == "packed") {
      const size_t expected = (static_cast<size_t>(numel) * static_cast<size_t>(t.bits()) + 7) / 8;
      if (t.bytes() != expected) {
        return loss(absl::StrCat("tensor ", i, ": ", t.bytes(), " bytes, expected ", expected,
                                 " for ", numel, " codes of ", t.bits(), " bits"));
      }
      absl::StatusOr<std::vector<int32_t>> v =
          UnpackCodes(p, t.bytes(), numel, t.bits(), t.encoding());
      if (!v.ok()) return loss(absl::StrCat("tensor ", i, ": ", v.status().message()));
      program.tensors.push_back(torch::tensor(*v, torch::kInt32).reshape(shape));
    } else {
      const size_t element = ElementBytes(t.dtype());
      if (element == 0)
        return loss(absl::StrCat("tensor ", i, ": unknown dtype '", t.dtype(), "'"));
      if (t.bytes() != static_cast<size_t>(numel) * element) {
        return loss(absl::StrCat("tensor ", i, ": ", t.bytes(), " bytes, expected ",
                                 numel * static_cast<int64_t>(element), " for ", t.dtype(), " [",
                                 absl::StrJoin(shape, ", "), "]"));
      }
      torch::Tensor tensor = torch::empty(shape, ScalarTypeOf(t.dtype()));
      std::memcpy(tensor.data_ptr(), p, t.bytes());
      program.tensors.push_back(tensor);
    }
  }
  const absl::Status prepared = TorchCall("checking the program", [&] { return Prepare(program); });
  if (!prepared.ok()) return loss(std::string(prepared.message()));
  return program;
}

absl::Status WritePackedModel(const Program& program, const std::string& path) {
  PACT_ASSIGN_OR_RETURN(const std::string bytes, SerializePackedModel(program));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<Program> ReadPackedModel(const std::string& path) {
  PACT_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
  return ParsePackedModel(bytes, path);
}

}  // namespace pact::deploy
