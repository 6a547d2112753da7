// The packed integer model file (`model.pim`), what //tools:export writes and //tools:infer
// runs. Little-endian throughout:
//
//   bytes 0-7    magic "PACTQNT1"
//   bytes 8-11   uint32 H: header length
//   bytes 12-    H bytes of JSON: the IntegerProgram (integer_program.proto, field names as
//                there), which lists every tensor with its dtype, shape, byte offset and size
//   ...          zero padding to a multiple of 64; the data section starts there, every tensor
//                at a multiple of 64 from its start
//
// Tensors: int8 / int32 / int64 / float32 raw, or "packed": k-bit codes, LSB first, in
// row-major order (code i occupies bits [i*k, i*k + k) of the stream; 4-bit: two codes per byte,
// low nibble first; 2-bit: four). Codes map to integers by the tensor's encoding
// (integer_program.proto); weights = v * the op's weight_scale. README.md (Deployment) reads
// one in a few lines of Python.
#ifndef PACT_DEPLOY_PACKED_MODEL_H_
#define PACT_DEPLOY_PACKED_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pact/deploy/engine.h"

namespace pact::deploy {

inline constexpr char kPackedMagic[] = "PACTQNT1";

// The codes of integers `v` (their encoding, k bits each) packed LSB first. InvalidArgument when
// a value has no k-bit code.
absl::StatusOr<std::vector<uint8_t>> PackCodes(const std::vector<int32_t>& v, int bits,
                                               const std::string& encoding);
// The inverse, for `count` codes.
absl::StatusOr<std::vector<int32_t>> UnpackCodes(const uint8_t* data, size_t bytes, int64_t count,
                                                 int bits, const std::string& encoding);

// The file's bytes.
absl::StatusOr<std::string> SerializePackedModel(const Program& program);
// Parses (and Prepare()s) a program; `name` is the file name for messages. DataLoss naming the
// file and what is wrong (magic, truncation, a tensor outside the data section, a size that
// does not match its dtype and shape, ...).
absl::StatusOr<Program> ParsePackedModel(const std::string& bytes, const std::string& name);

absl::Status WritePackedModel(const Program& program, const std::string& path);
absl::StatusOr<Program> ReadPackedModel(const std::string& path);

}  // namespace pact::deploy

#endif  // PACT_DEPLOY_PACKED_MODEL_H_
