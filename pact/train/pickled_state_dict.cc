#include "pact/train/pickled_state_dict.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "pact/core/torch_status.h"

namespace pact::train {
namespace {

// One opcode of a pickle: where it starts and ends, and its first argument byte(s) decoded
// where this file needs them (memo slots).
struct Op {
  unsigned char code = 0;
  size_t begin = 0;
  size_t end = 0;
};

uint64_t LittleEndian(const std::string& s, size_t at, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(s[at + i]);
  return value;
}

// The length of the opcode at `at` (code and argument), or 0 for an opcode this walker does not
// know or an argument that runs past the end. The set is what pickle protocol 2 writers
// (Python's torch.save, LibTorch's pickle_save) emit.
size_t OpLength(const std::string& s, size_t at) {
  const auto fixed = [&](size_t n) { return at + 1 + n <= s.size() ? 1 + n : 0; };
  const auto counted = [&](int width) -> size_t {
    if (at + 1 + width > s.size()) return 0;
    const uint64_t n = LittleEndian(s, at + 1, width);
    return n <= s.size() && at + 1 + width + n <= s.size() ? 1 + width + n : 0;
  };
  switch (static_cast<unsigned char>(s[at])) {
    case '(':
    case '.':
    case 'N':
    case 0x88:
    case 0x89:
    case ')':
    case 't':
    case 0x85:
    case 0x86:
    case 0x87:
    case ']':
    case 'a':
    case 'e':
    case '}':
    case 's':
    case 'u':
    case 'b':
    case 'R':
    case 'Q':
    case '0':
    case 0x81:
      return 1;
    case 'K':
    case 'q':
    case 'h':
    case 0x80:
      return fixed(1);
    case 'M':
      return fixed(2);
    case 'J':
    case 'r':
    case 'j':
      return fixed(4);
    case 'G':
      return fixed(8);
    case 'U':
    case 'C':
    case 0x8a:
    case 0x8c:
      return counted(1);
    case 'T':
    case 'X':
    case 'B':
      return counted(4);
    case 'c': {
      const size_t first = s.find('\n', at + 1);
      const size_t second = first == std::string::npos ? first : s.find('\n', first + 1);
      return second == std::string::npos ? 0 : second + 1 - at;
    }
    default:
      return 0;
  }
}

// The change in stack depth an opcode makes (MARKs count as items); `mark_depth` is the depth
// the innermost MARK was pushed at (for the opcodes that pop to it).
int DepthAfter(unsigned char code, int depth, std::vector<int>* marks) {
  const auto pop_mark = [&] {
    const int at = marks->empty() ? 0 : marks->back();
    if (!marks->empty()) marks->pop_back();
    return at;
  };
  switch (code) {
    case '(':
      marks->push_back(depth);
      return depth + 1;
    case 't':
      return pop_mark() + 1;
    case 'u':
    case 'e':
      return pop_mark();
    case 0x80:
    case 'q':
    case 'r':
    case 'Q':
    case 0x85:
    case '.':
      return depth;
    case 'R':
    case 0x86:
    case 'a':
    case 'b':
    case '0':
    case 0x81:
      return depth - 1;
    case 0x87:
    case 's':
      return depth - 2;
    default:
      return depth + 1;  // every other known opcode pushes one value
  }
}

}  // namespace

std::string PatchOrderedDicts(std::string pickle) {
  static constexpr absl::string_view kOrderedDict = "ccollections\nOrderedDict\n";
  std::vector<Op> ops;
  for (size_t at = 0; at < pickle.size();) {
    const size_t length = OpLength(pickle, at);
    if (length == 0) return pickle;
    ops.push_back({static_cast<unsigned char>(pickle[at]), at, at + length});
    at += length;
    if (ops.back().code == '.') break;
  }
  if (ops.empty() || ops.back().code != '.') return pickle;
  const auto text = [&](const Op& op) {
    return absl::string_view(pickle).substr(op.begin, op.end - op.begin);
  };
  const auto slot = [&](const Op& op) {
    return LittleEndian(pickle, op.begin + 1, op.code == 'q' || op.code == 'h' ? 1 : 4);
  };

  // Each OrderedDict() call, [first, last] op indexes: the class (GLOBAL, or a GET of the memo
  // slot a GLOBAL put it in; a PUT after the GLOBAL), EMPTY_TUPLE, REDUCE.
  std::set<uint64_t> class_slots;
  std::vector<std::pair<size_t, size_t>> calls;
  for (size_t i = 0; i < ops.size(); ++i) {
    const bool global = text(ops[i]) == kOrderedDict;
    const bool get = (ops[i].code == 'h' || ops[i].code == 'j') && class_slots.count(slot(ops[i]));
    if (!global && !get) continue;
    size_t j = i + 1;
    if (global && j < ops.size() && (ops[j].code == 'q' || ops[j].code == 'r')) {
      class_slots.insert(slot(ops[j]));
      ++j;
    }
    if (j + 1 >= ops.size() || ops[j].code != ')' || ops[j + 1].code != 'R') return pickle;
    calls.emplace_back(i, j + 1);
    i = j + 1;
  }
  if (calls.empty()) return pickle;

  // A BUILD right before STOP sets attributes on the top-level object (a state_dict()'s
  // _metadata): find where its state argument starts (the last op to raise the stack from one
  // item to two) and drop both.
  size_t state_begin = ops.size();
  const size_t build =
      ops.size() >= 2 && ops[ops.size() - 2].code == 'b' ? ops.size() - 2 : ops.size();
  std::vector<int> marks;
  int depth = 0;
  size_t call = 0;
  for (size_t i = 0; i < build; ++i) {
    int after;
    size_t last = i;
    if (call < calls.size() && calls[call].first == i) {
      after = depth + 1;  // a whole call pushes one dict
      last = calls[call++].second;
    } else {
      after = DepthAfter(ops[i].code, depth, &marks);
    }
    if (depth == 1 && after == 2) state_begin = i;
    depth = after;
    i = last;
  }
  const bool drop_state = build < ops.size() && depth == 2 && state_begin < build;

  std::string out;
  out.reserve(pickle.size());
  call = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (drop_state && i >= state_begin && i <= build) continue;
    if (call < calls.size() && calls[call].first == i) {
      out += '}';  // EMPTY_DICT in place of OrderedDict()
      i = calls[call++].second;
      continue;
    }
    const absl::string_view bytes = text(ops[i]);
    out.append(bytes.data(), bytes.size());
  }
  return out;
}

absl::StatusOr<std::map<std::string, torch::Tensor>> ReadPickledStateDict(const std::string& path) {
  std::map<std::string, torch::Tensor> tensors;
  const absl::Status status = TorchCall("unpickling", [&] {
    caffe2::serialize::PyTorchStreamReader reader(path);
    at::DataPtr data;
    size_t size = 0;
    std::tie(data, size) = reader.getRecord("data.pkl");
    const std::string pickle =
        PatchOrderedDicts(std::string(static_cast<const char*>(data.get()), size));
    size_t offset = 0;
    torch::jit::Unpickler unpickler(
        [&](char* buffer, size_t n) {
          const size_t take = std::min(n, pickle.size() - offset);
          std::memcpy(buffer, pickle.data() + offset, take);
          offset += take;
          return take;
        },
        /*type_resolver=*/nullptr, /*obj_loader=*/nullptr,
        [&](const std::string& name) { return std::get<0>(reader.getRecord("data/" + name)); },
        /*device=*/c10::nullopt);
    unpickler.set_version(reader.version());
    const c10::IValue value = unpickler.parse_ivalue();
    TORCH_CHECK(value.isGenericDict(), "it holds a ", value.tagKind(), ", not a dict of tensors");
    for (const auto& item : value.toGenericDict()) {
      TORCH_CHECK(item.key().isString(), "a state dict's keys are tensor names, found a ",
                  item.key().tagKind());
      if (item.value().isTensor()) tensors[item.key().toStringRef()] = item.value().toTensor();
    }
  });
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, " is not a pickled state dict: ", status.message()));
  }
  return tensors;
}

}  // namespace pact::train
